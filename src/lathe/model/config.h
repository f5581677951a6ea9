// Architecture of a Llama-family decoder, read from an HF config.json or GGUF metadata.
// One struct for all families: the family only decides which optional pieces exist
// (Qwen2: q/k/v bias; Qwen3: per-head q_norm/k_norm).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace lathe {

enum class Arch { Llama, Mistral, Qwen2, Qwen3 };

struct RopeScaling {
  enum Type { None, Linear, Llama3 } type = None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  int vocab_size = 0;               // V
  int hidden_size = 0;              // C
  int intermediate_size = 0;        // F
  int num_hidden_layers = 0;        // L
  int num_attention_heads = 0;      // H
  int num_key_value_heads = 0;      // Hkv
  int head_dim = 0;                 // D (given, or C / H)
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;      // q/k/v bias (always for Qwen2)
  bool qk_norm = false;             // Qwen3
  RopeScaling rope_scaling;
  int bos_token_id = -1;
  int eos_token_id = -1;
  std::string torch_dtype = "float32";

  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
  // Parameter count of the model as stored (tied embeddings counted once).
  int64_t num_parameters() const;
};

const char* arch_hf_name(Arch a);  // "LlamaForCausalLM", ...
const char* arch_short_name(Arch a);  // "llama", ...
bool arch_from_short_name(const std::string& s, Arch* out);

// Parses config.json. `source` names the file in errors. Throws "[config] ..." for unknown
// architectures or missing / inconsistent fields.
ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& source);
nlohmann::json config_to_hf_json(const ModelConfig& c);
// Checks invariants (heads divide, head_dim even, ...); throws "[config] source: ...".
void config_validate(const ModelConfig& c, const std::string& source);

}  // namespace lathe
