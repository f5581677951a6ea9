#include "lathe/model/config.h"

#include "lathe/core/error.h"

namespace lathe {

namespace {
struct ArchName {
  Arch arch;
  const char* hf;
  const char* shortname;
};
constexpr ArchName kArchNames[] = {
    {Arch::Llama, "LlamaForCausalLM", "llama"},
    {Arch::Mistral, "MistralForCausalLM", "mistral"},
    {Arch::Qwen2, "Qwen2ForCausalLM", "qwen2"},
    {Arch::Qwen3, "Qwen3ForCausalLM", "qwen3"},
};

template <class T>
T get_required(const nlohmann::json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) fail("config", "{}: missing field '{}'", source, key);
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("config", "{}: field '{}' has the wrong type ({})", source, key, j[key].dump());
  }
}

template <class T>
T get_or(const nlohmann::json& j, const char* key, T def, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return def;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("config", "{}: field '{}' has the wrong type ({})", source, key, j[key].dump());
  }
}
}  // namespace

const char* arch_hf_name(Arch a) {
  for (auto& n : kArchNames)
    if (n.arch == a) return n.hf;
  return "?";
}
const char* arch_short_name(Arch a) {
  for (auto& n : kArchNames)
    if (n.arch == a) return n.shortname;
  return "?";
}
bool arch_from_short_name(const std::string& s, Arch* out) {
  for (auto& n : kArchNames)
    if (s == n.shortname) {
      *out = n.arch;
      return true;
    }
  return false;
}

int64_t ModelConfig::num_parameters() const {
  int64_t C = hidden_size, F = intermediate_size, V = vocab_size, D = head_dim;
  int64_t per_layer = 2 * C + C * q_dim() + 2 * C * kv_dim() + q_dim() * C + 3 * C * F;
  if (attention_bias) per_layer += q_dim() + 2 * kv_dim();
  if (qk_norm) per_layer += 2 * D;
  return V * C * (tie_word_embeddings ? 1 : 2) + C + per_layer * num_hidden_layers;
}

ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("config", "{}: expected a JSON object", source);
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    arch = j["architectures"][0].get<std::string>();
  else
    fail("config", "{}: missing 'architectures'", source);
  bool found = false;
  for (auto& n : kArchNames)
    if (arch == n.hf) {
      c.arch = n.arch;
      found = true;
    }
  if (!found)
    fail("config", "{}: unsupported architecture '{}' (supported: LlamaForCausalLM, MistralForCausalLM, "
         "Qwen2ForCausalLM, Qwen3ForCausalLM)", source, arch);
  c.vocab_size = get_required<int>(j, "vocab_size", source);
  c.hidden_size = get_required<int>(j, "hidden_size", source);
  c.intermediate_size = get_required<int>(j, "intermediate_size", source);
  c.num_hidden_layers = get_required<int>(j, "num_hidden_layers", source);
  c.num_attention_heads = get_required<int>(j, "num_attention_heads", source);
  c.num_key_value_heads = get_or<int>(j, "num_key_value_heads", c.num_attention_heads, source);
  if (c.num_attention_heads <= 0) fail("config", "{}: num_attention_heads must be positive", source);
  c.head_dim = get_or<int>(j, "head_dim", c.hidden_size / c.num_attention_heads, source);
  c.rms_norm_eps = get_or<float>(j, "rms_norm_eps", 1e-6f, source);
  c.rope_theta = get_or<float>(j, "rope_theta", 10000.0f, source);
  c.max_position_embeddings = get_or<int>(j, "max_position_embeddings", 2048, source);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, source);
  c.attention_bias = c.arch == Arch::Qwen2 ? true : get_or<bool>(j, "attention_bias", false, source);
  c.qk_norm = c.arch == Arch::Qwen3;
  c.torch_dtype = get_or<std::string>(j, "torch_dtype", "float32", source);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"];
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer()) c.eos_token_id = j["eos_token_id"];
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array() && !j["eos_token_id"].empty())
    c.eos_token_id = j["eos_token_id"][0];
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const auto& rs = j["rope_scaling"];
    std::string type = get_or<std::string>(rs, "rope_type", get_or<std::string>(rs, "type", "default", source), source);
    RopeScaling& r = c.rope_scaling;
    if (type == "linear") {
      r.type = RopeScaling::Linear;
      r.factor = get_required<float>(rs, "factor", source + " rope_scaling");
    } else if (type == "llama3") {
      r.type = RopeScaling::Llama3;
      r.factor = get_required<float>(rs, "factor", source + " rope_scaling");
      r.low_freq_factor = get_or<float>(rs, "low_freq_factor", 1.0f, source);
      r.high_freq_factor = get_or<float>(rs, "high_freq_factor", 4.0f, source);
      r.original_max_position_embeddings = get_or<int>(rs, "original_max_position_embeddings", 8192, source);
    } else if (type != "default") {
      fail("config", "{}: unsupported rope_scaling type '{}' (supported: linear, llama3)", source, type);
    }
  }
  config_validate(c, source);
  return c;
}

void config_validate(const ModelConfig& c, const std::string& source) {
  auto positive = [&](int v, const char* name) {
    if (v <= 0) fail("config", "{}: {} must be positive, got {}", source, name, v);
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_hidden_layers, "num_hidden_layers");
  positive(c.num_attention_heads, "num_attention_heads");
  positive(c.num_key_value_heads, "num_key_value_heads");
  positive(c.head_dim, "head_dim");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("config", "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source,
         c.num_attention_heads, c.num_key_value_heads);
  if (c.head_dim % 2 != 0) fail("config", "{}: head_dim must be even for RoPE, got {}", source, c.head_dim);
  if (c.rope_scaling.type != RopeScaling::None && c.rope_scaling.factor <= 0)
    fail("config", "{}: rope_scaling.factor must be positive", source);
}

nlohmann::json config_to_hf_json(const ModelConfig& c) {
  nlohmann::json j;
  j["architectures"] = {arch_hf_name(c.arch)};
  j["model_type"] = arch_short_name(c.arch);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.arch != Arch::Qwen2) j["attention_bias"] = c.attention_bias;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
  j["torch_dtype"] = c.torch_dtype;
  if (c.rope_scaling.type == RopeScaling::Linear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
  } else if (c.rope_scaling.type == RopeScaling::Llama3) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  return j;
}

}  // namespace lathe
