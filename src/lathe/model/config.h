// Architecture of a decoder-only transformer, read from an HF config.json or GGUF metadata.
// One struct for all families: the family only decides which optional pieces exist (Qwen2: q/k/v
// bias; Qwen3: per-head q_norm/k_norm; Gemma: (1 + w) norms, sandwich norms, GeGLU, soft-capping,
// sliding-window layers; Phi-3: fused projections, partial rotary, longrope; SmolLM3 / EXAONE 4:
// layers without RoPE). The block (model/block.cpp) switches on these fields, never on `arch`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe {

enum class Arch { Llama, Mistral, Qwen2, Qwen3, Gemma2, Gemma3, Phi3, SmolLM3, Exaone, Exaone4 };

// The MLP's gate activation: SwiGLU (silu) or GeGLU with tanh-approximated GELU (Gemma's
// "gelu_pytorch_tanh").
enum class Activation { SiLU, GeluTanh };

struct RopeScaling {
  enum Type { None, Linear, Llama3, LongRope } type = None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
  // longrope (Phi-3): per-frequency divisors, one per rotary pair; `long_factor` applies once a
  // sequence runs past original_max_position_embeddings. cos/sin are multiplied by
  // attention_factor (HF: sqrt(1 + ln(factor) / ln(original)) unless the config gives it).
  std::vector<float> short_factor, long_factor;
  float attention_factor = 1.0f;
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
  bool qk_norm = false;             // Qwen3, Gemma 3, EXAONE 4
  RopeScaling rope_scaling;
  int bos_token_id = -1;
  int eos_token_id = -1;
  std::string torch_dtype = "float32";

  // ---- family features (defaults: Llama) ----
  Activation hidden_act = Activation::SiLU;
  bool norm_plus_one = false;   // Gemma: every RMSNorm scales by (1 + w); the file stores w
  bool embed_scale = false;     // Gemma: embeddings x sqrt(hidden), rounded to torch_dtype
  bool pre_attn_norm = true;    // input_layernorm before attention (EXAONE 4: none)
  bool pre_ffn_norm = true;     // a norm before the MLP (EXAONE 4: none)
  bool post_attn_norm = false;  // a norm on the attention output before the residual (Gemma 2/3, EXAONE 4)
  bool post_ffn_norm = false;   // a norm on the MLP output before the residual (Gemma 2/3, EXAONE 4)
  bool fused_qkv = false;       // Phi-3: one qkv_proj [q; k; v]
  bool fused_gate_up = false;   // Phi-3: one gate_up_proj [gate; up]
  float query_pre_attn_scalar = 0.0f;   // attention scale 1/sqrt(this); 0: 1/sqrt(head_dim)
  float attn_logit_softcapping = 0.0f;  // Gemma 2: scores -> cap * tanh(scores / cap); 0: off
  float final_logit_softcapping = 0.0f; // Gemma 2: logits -> cap * tanh(logits / cap); 0: off
  int sliding_window = 0;               // keys a sliding layer sees (itself included); 0: none
  std::vector<uint8_t> layer_sliding;   // [L] 1: sliding-window layer; empty: every layer when sliding_window > 0
  std::vector<uint8_t> layer_rope;      // [L] 0: the layer skips RoPE (SmolLM3, EXAONE 4 global); empty: all use it
  float rope_local_theta = 0.0f;        // Gemma 3: RoPE base of sliding layers (unscaled); 0: as global
  float partial_rotary_factor = 1.0f;   // Phi-3 / Phi-4-mini: RoPE on the first head_dim * this channels

  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
  // Channels of each head that RoPE rotates (even; head_dim unless partial_rotary_factor < 1).
  int rotary_dim() const;
  bool layer_is_sliding(int l) const {
    return sliding_window > 0 && (layer_sliding.empty() || layer_sliding[size_t(l)] != 0);
  }
  bool layer_uses_rope(int l) const { return layer_rope.empty() || layer_rope[size_t(l)] != 0; }
  // Sliding layers of Gemma 3 have their own RoPE table (rope_local_theta, no scaling).
  bool layer_uses_local_rope(int l) const { return rope_local_theta > 0 && layer_is_sliding(l); }
  float attention_scale() const;
  // Parameter count of the model as stored (tied embeddings counted once).
  int64_t num_parameters() const;
};

// Upper caps on what a config file (config.json or GGUF metadata) may declare. Generous: each is
// several times the largest open model of 2026 (noted after it), so no real model is refused, but a
// hostile value is rejected by name before any arithmetic or allocation. They also keep every product
// the code forms (q_dim, kv_dim, tensor sizes in 64-bit) far from overflow.
inline constexpr int64_t kMaxVocabSize = int64_t(1) << 24;         // 16,777,216 ids (Gemma 3: 262,144)
inline constexpr int64_t kMaxHiddenSize = int64_t(1) << 16;        // 65,536 (Llama 3.1 405B: 16,384)
inline constexpr int64_t kMaxIntermediateSize = int64_t(1) << 19;  // 524,288 (Llama 3.1 405B: 53,248)
inline constexpr int64_t kMaxLayers = 1024;                        // (Llama 3.1 405B: 126)
inline constexpr int64_t kMaxHeads = 1024;                         // attention and kv heads (405B: 128)
inline constexpr int64_t kMaxHeadDim = 1024;                       // (Gemma 2: 256)
inline constexpr int64_t kMaxProjectionDim = int64_t(1) << 17;     // heads x head_dim (405B: 16,384)
inline constexpr int64_t kMaxContextLength = int64_t(1) << 24;     // 16,777,216 positions (Llama 4 Scout: 10M)

// Names of the config fields as the source file spells them, so validation errors point at the
// key the user must fix (HF config.json names by default; config_keys_gguf for GGUF metadata).
struct ConfigKeys {
  std::string vocab_size = "vocab_size";
  std::string hidden_size = "hidden_size";
  std::string intermediate_size = "intermediate_size";
  std::string num_hidden_layers = "num_hidden_layers";
  std::string num_attention_heads = "num_attention_heads";
  std::string num_key_value_heads = "num_key_value_heads";
  std::string head_dim = "head_dim";
  std::string rms_norm_eps = "rms_norm_eps";
  std::string rope_theta = "rope_theta";
  std::string max_position_embeddings = "max_position_embeddings";
  std::string bos_token_id = "bos_token_id";
  std::string eos_token_id = "eos_token_id";
  std::string rope_factor = "rope_scaling.factor";
  std::string rope_low_freq_factor = "rope_scaling.low_freq_factor";
  std::string rope_high_freq_factor = "rope_scaling.high_freq_factor";
  std::string rope_original_max_position_embeddings = "rope_scaling.original_max_position_embeddings";
};
ConfigKeys config_keys_gguf(const std::string& arch);  // "llama.embedding_length", ...

// Sets the structural flags that follow from c.arch alone (norm layout, activation, q/k norm,
// fused projections, Qwen2's bias); config.json / GGUF readers and init-model call it.
void config_set_family_flags(ModelConfig& c);
// RMSNorm weight vectors per layer (2 for Llama, 4 for Gemma's sandwich norms, 2 for EXAONE 4's post-norms).
int config_norms_per_layer(const ModelConfig& c);

const char* arch_hf_name(Arch a);  // "LlamaForCausalLM", ...
const char* arch_short_name(Arch a);  // "llama", ...
bool arch_from_short_name(const std::string& s, Arch* out);

// Parses config.json. `source` names the file in errors. Throws "[config] ..." for unknown
// architectures or missing / inconsistent fields. Integers are read as 64-bit and range-checked
// before they are narrowed; a float where an integer is needed is an error naming the key.
ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& source);
nlohmann::json config_to_hf_json(const ModelConfig& c);

// Stores an integer read from a file into the int field `field` of `c` after checking it against
// that field's range (1..cap for sizes, -1..cap for bos/eos ids): the only way parsers narrow a
// 64-bit file value, so 4294967360 can never become 64. Throws "[config] source: key ...".
void config_set_int(ModelConfig& c, int ModelConfig::*field, int64_t value, const std::string& source,
                    const std::string& key);

// The one validation step every model config passes (config.json, GGUF metadata, init-model)
// before anything divides by a head count or allocates a tensor: every integer within its range
// and cap, heads divisible by kv heads, head_dim even, heads x head_dim within kMaxProjectionDim,
// rms_norm_eps and rope_theta finite and positive, context positive, bos/eos ids inside the
// vocabulary, rope scaling factors sane, and the f32 weights (num_parameters() x 4, computed with
// overflow checks) within the memory this machine has available. Errors name `source` and the
// offending key as spelled in `keys`. Throws "[config] source: ...".
void config_validate(const ModelConfig& c, const std::string& source, const ConfigKeys& keys = {});

// Bytes of the model's weights held as f32 (what lathe computes in), with overflow checks; throws
// naming `source` when the product does not fit in 64 bits.
uint64_t config_weight_bytes_f32(const ModelConfig& c, const std::string& source);

}  // namespace lathe
