#include "lathe/model/config.h"

#include <cmath>

#include "lathe/core/error.h"
#include "lathe/core/json_int.h"
#include "lathe/core/sys.h"

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

// Range of each int field of ModelConfig: the one table both the parsers (config_set_int) and
// config_validate check against.
struct IntField {
  int ModelConfig::*member;
  std::string ConfigKeys::*key;
  int64_t lo, hi;
};
const IntField kIntFields[] = {
    {&ModelConfig::vocab_size, &ConfigKeys::vocab_size, 1, kMaxVocabSize},
    {&ModelConfig::hidden_size, &ConfigKeys::hidden_size, 1, kMaxHiddenSize},
    {&ModelConfig::intermediate_size, &ConfigKeys::intermediate_size, 1, kMaxIntermediateSize},
    {&ModelConfig::num_hidden_layers, &ConfigKeys::num_hidden_layers, 1, kMaxLayers},
    {&ModelConfig::num_attention_heads, &ConfigKeys::num_attention_heads, 1, kMaxHeads},
    {&ModelConfig::num_key_value_heads, &ConfigKeys::num_key_value_heads, 1, kMaxHeads},
    {&ModelConfig::head_dim, &ConfigKeys::head_dim, 1, kMaxHeadDim},
    {&ModelConfig::max_position_embeddings, &ConfigKeys::max_position_embeddings, 1, kMaxContextLength},
    // -1 = not set; the upper bound against the actual vocabulary is a cross-field check.
    {&ModelConfig::bos_token_id, &ConfigKeys::bos_token_id, -1, kMaxVocabSize - 1},
    {&ModelConfig::eos_token_id, &ConfigKeys::eos_token_id, -1, kMaxVocabSize - 1},
};

const IntField& int_field(int ModelConfig::*member) {
  for (const auto& f : kIntFields)
    if (f.member == member) return f;
  fail("config", "internal: config field without a range");
}

void check_int_range(int64_t v, const IntField& f, const std::string& source, const std::string& key) {
  if (v >= f.lo && v <= f.hi) return;
  if (f.lo == 1 && v < 1) fail("config", "{}: {} must be positive, got {}", source, key, v);
  fail("config", "{}: {} = {} is outside the supported range [{}, {}]", source, key, v, f.lo, f.hi);
}

const nlohmann::json* find_value(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// An integer from config.json as int64, or a type error naming the key (floats included: 1e12 and
// 3.5 are not layer counts).
int64_t json_int(const nlohmann::json& v, const std::string& source, const std::string& key) {
  int64_t out;
  if (!json_to_int64(v, &out)) fail("config", "{}: {} must be an integer, got {}", source, key, json_int_problem(v));
  return out;
}

void set_int(ModelConfig& c, int ModelConfig::*field, const nlohmann::json& j, const char* key, bool required,
             int64_t def, const std::string& source) {
  const nlohmann::json* v = find_value(j, key);
  if (!v && required) fail("config", "{}: missing field '{}'", source, key);
  config_set_int(c, field, v ? json_int(*v, source, key) : def, source, key);
}

double get_number(const nlohmann::json& j, const char* key, double def, const std::string& source,
                  const std::string& prefix = "", bool required = false) {
  const nlohmann::json* v = find_value(j, key);
  if (!v) {
    if (required) fail("config", "{}: missing field '{}{}'", source, prefix, key);
    return def;
  }
  if (!v->is_number()) fail("config", "{}: {}{} must be a number, got {}", source, prefix, key, v->dump());
  return v->get<double>();
}

template <class T>
T get_or(const nlohmann::json& j, const char* key, T def, const std::string& source) {
  const nlohmann::json* v = find_value(j, key);
  if (!v) return def;
  try {
    return v->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("config", "{}: field '{}' has the wrong type ({})", source, key, v->dump());
  }
}

// A token id field that may be an integer or a list (HF allows eos_token_id: [1, 2]; the first is
// the model's own). Every entry is checked; anything else set there is an error, not ignored.
void set_token_id(ModelConfig& c, int ModelConfig::*field, const nlohmann::json& j, const char* key,
                  const std::string& source) {
  const nlohmann::json* v = find_value(j, key);
  if (!v) return;
  if (v->is_array()) {
    for (size_t i = v->size(); i-- > 0;) {  // backwards, so the first entry is what stays
      std::string k = fmt::format("{}[{}]", key, i);
      config_set_int(c, field, json_int((*v)[i], source, k), source, k);
      // Only the first is kept in ModelConfig, so config_validate cannot see the others: check here.
      if (c.*field >= c.vocab_size)
        fail("config", "{}: {} = {} is outside the vocabulary [0, {})", source, k, c.*field, c.vocab_size);
    }
    return;
  }
  config_set_int(c, field, json_int(*v, source, key), source, key);
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

ConfigKeys config_keys_gguf(const std::string& arch) {
  ConfigKeys k;
  k.vocab_size = "token_embd.weight rows (vocabulary size)";
  k.hidden_size = arch + ".embedding_length";
  k.intermediate_size = arch + ".feed_forward_length";
  k.num_hidden_layers = arch + ".block_count";
  k.num_attention_heads = arch + ".attention.head_count";
  k.num_key_value_heads = arch + ".attention.head_count_kv";
  k.head_dim = arch + ".attention.key_length";
  k.rms_norm_eps = arch + ".attention.layer_norm_rms_epsilon";
  k.rope_theta = arch + ".rope.freq_base";
  k.max_position_embeddings = arch + ".context_length";
  k.bos_token_id = "tokenizer.ggml.bos_token_id";
  k.eos_token_id = "tokenizer.ggml.eos_token_id";
  k.rope_factor = arch + ".rope.scaling.factor";
  return k;
}

void config_set_int(ModelConfig& c, int ModelConfig::*field, int64_t value, const std::string& source,
                    const std::string& key) {
  check_int_range(value, int_field(field), source, key);
  c.*field = int(value);  // in range, and every cap is below INT_MAX
}

ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("config", "{}: expected a JSON object", source);
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  else
    fail("config", "{}: missing 'architectures' (a list whose first entry names the model class)", source);
  bool found = false;
  for (auto& n : kArchNames)
    if (arch == n.hf) {
      c.arch = n.arch;
      found = true;
    }
  if (!found)
    fail("config", "{}: unsupported architecture '{}' (supported: LlamaForCausalLM, MistralForCausalLM, "
         "Qwen2ForCausalLM, Qwen3ForCausalLM)", source, arch);
  // Every integer goes through config_set_int (64-bit read, range check, then narrowing), and the
  // head count is validated there before head_dim's default divides by it.
  set_int(c, &ModelConfig::vocab_size, j, "vocab_size", true, 0, source);
  set_int(c, &ModelConfig::hidden_size, j, "hidden_size", true, 0, source);
  set_int(c, &ModelConfig::intermediate_size, j, "intermediate_size", true, 0, source);
  set_int(c, &ModelConfig::num_hidden_layers, j, "num_hidden_layers", true, 0, source);
  set_int(c, &ModelConfig::num_attention_heads, j, "num_attention_heads", true, 0, source);
  set_int(c, &ModelConfig::num_key_value_heads, j, "num_key_value_heads", false, c.num_attention_heads, source);
  set_int(c, &ModelConfig::head_dim, j, "head_dim", false, c.hidden_size / c.num_attention_heads, source);
  set_int(c, &ModelConfig::max_position_embeddings, j, "max_position_embeddings", false, 2048, source);
  c.rms_norm_eps = float(get_number(j, "rms_norm_eps", 1e-6, source));
  c.rope_theta = float(get_number(j, "rope_theta", 10000.0, source));
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, source);
  c.attention_bias = c.arch == Arch::Qwen2 ? true : get_or<bool>(j, "attention_bias", false, source);
  c.qk_norm = c.arch == Arch::Qwen3;
  c.torch_dtype = get_or<std::string>(j, "torch_dtype", "float32", source);
  set_token_id(c, &ModelConfig::bos_token_id, j, "bos_token_id", source);
  set_token_id(c, &ModelConfig::eos_token_id, j, "eos_token_id", source);
  if (const nlohmann::json* rsp = find_value(j, "rope_scaling")) {
    if (!rsp->is_object()) fail("config", "{}: rope_scaling must be an object or null, got {}", source, rsp->dump());
    const auto& rs = *rsp;
    std::string type = get_or<std::string>(rs, "rope_type", get_or<std::string>(rs, "type", "default", source), source);
    RopeScaling& r = c.rope_scaling;
    const std::string pre = "rope_scaling.";
    if (type == "linear") {
      r.type = RopeScaling::Linear;
      r.factor = float(get_number(rs, "factor", 1.0, source, pre, true));
    } else if (type == "llama3") {
      r.type = RopeScaling::Llama3;
      r.factor = float(get_number(rs, "factor", 1.0, source, pre, true));
      r.low_freq_factor = float(get_number(rs, "low_freq_factor", 1.0, source, pre));
      r.high_freq_factor = float(get_number(rs, "high_freq_factor", 4.0, source, pre));
      int64_t orig = 8192;
      if (const nlohmann::json* o = find_value(rs, "original_max_position_embeddings"))
        orig = json_int(*o, source, pre + "original_max_position_embeddings");
      if (orig < 1 || orig > kMaxContextLength)
        fail("config", "{}: {}original_max_position_embeddings = {} is outside the supported range [1, {}]", source,
             pre, orig, kMaxContextLength);
      r.original_max_position_embeddings = int(orig);
    } else if (type != "default") {
      fail("config", "{}: unsupported rope_scaling type '{}' (supported: linear, llama3)", source, type);
    }
  }
  config_validate(c, source);
  return c;
}

uint64_t config_weight_bytes_f32(const ModelConfig& c, const std::string& source) {
  // The caps make overflow impossible for a validated config; the checks keep this honest for
  // any ModelConfig a caller builds.
  bool bad = false;
  auto mul = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    bad |= a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r);
    return r;
  };
  auto add = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    bad |= __builtin_add_overflow(a, b, &r);
    return r;
  };
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
  const int64_t Q = mul(c.num_attention_heads, D), KV = mul(c.num_key_value_heads, D);
  int64_t per_layer = add(add(add(mul(2, C), mul(C, Q)), mul(mul(2, C), KV)), add(mul(Q, C), mul(mul(3, C), F)));
  if (c.attention_bias) per_layer = add(per_layer, add(Q, mul(2, KV)));
  if (c.qk_norm) per_layer = add(per_layer, mul(2, D));
  int64_t params = add(add(mul(mul(V, C), c.tie_word_embeddings ? 1 : 2), C), mul(per_layer, c.num_hidden_layers));
  int64_t bytes = mul(params, int64_t(sizeof(float)));
  if (bad) fail("config", "{}: the model's size overflows 64 bits (hidden_size {}, vocab_size {}, num_hidden_layers {})",
                source, c.hidden_size, c.vocab_size, c.num_hidden_layers);
  return uint64_t(bytes);
}

void config_validate(const ModelConfig& c, const std::string& source, const ConfigKeys& keys) {
  for (const auto& f : kIntFields) check_int_range(c.*f.member, f, source, keys.*f.key);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("config", "{}: {} ({}) must be a multiple of {} ({})", source, keys.num_attention_heads,
         c.num_attention_heads, keys.num_key_value_heads, c.num_key_value_heads);
  if (c.head_dim % 2 != 0) fail("config", "{}: {} must be even for RoPE, got {}", source, keys.head_dim, c.head_dim);
  if (int64_t(c.num_attention_heads) * c.head_dim > kMaxProjectionDim)
    fail("config", "{}: {} x {} = {} is larger than the supported {}", source, keys.num_attention_heads, keys.head_dim,
         int64_t(c.num_attention_heads) * c.head_dim, kMaxProjectionDim);
  // NaN fails every comparison, so each test is written to reject it.
  if (!(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0 && c.rms_norm_eps < 1))
    fail("config", "{}: {} must be a finite number in (0, 1), got {}", source, keys.rms_norm_eps, c.rms_norm_eps);
  if (!(std::isfinite(c.rope_theta) && c.rope_theta > 0))
    fail("config", "{}: {} must be a finite positive number, got {}", source, keys.rope_theta, c.rope_theta);
  for (auto [id, key] : {std::pair{c.bos_token_id, &keys.bos_token_id}, std::pair{c.eos_token_id, &keys.eos_token_id}})
    if (id >= c.vocab_size)
      fail("config", "{}: {} = {} is outside the vocabulary [0, {})", source, *key, id, c.vocab_size);
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type != RopeScaling::None && !(std::isfinite(rs.factor) && rs.factor > 0))
    fail("config", "{}: {} must be a finite positive number, got {}", source, keys.rope_factor, rs.factor);
  if (rs.type == RopeScaling::Llama3) {
    // rope_inv_freq divides by both factors and by their difference.
    if (!(std::isfinite(rs.low_freq_factor) && rs.low_freq_factor > 0))
      fail("config", "{}: {} must be a finite positive number, got {}", source, keys.rope_low_freq_factor,
           rs.low_freq_factor);
    if (!(std::isfinite(rs.high_freq_factor) && rs.high_freq_factor > rs.low_freq_factor))
      fail("config", "{}: {} ({}) must be larger than {} ({})", source, keys.rope_high_freq_factor, rs.high_freq_factor,
           keys.rope_low_freq_factor, rs.low_freq_factor);
    if (rs.original_max_position_embeddings < 1 || rs.original_max_position_embeddings > kMaxContextLength)
      fail("config", "{}: {} = {} is outside the supported range [1, {}]", source,
           keys.rope_original_max_position_embeddings, rs.original_max_position_embeddings, kMaxContextLength);
  }
  // Last, the size: refuse before the loader allocates (or maps and converts) what cannot fit.
  const uint64_t need = config_weight_bytes_f32(c, source);
  const uint64_t avail = available_memory_bytes();
  if (avail > 0 && need > avail)
    fail("config", "{}: the model needs {:.1f} MiB for its f32 weights ({} parameters: {} {}, {} {}, {} {}, {} {}) "
         "but only {:.1f} MiB of memory is available", source, double(need) / 1048576.0, need / sizeof(float),
         keys.num_hidden_layers, c.num_hidden_layers, keys.hidden_size, c.hidden_size, keys.intermediate_size,
         c.intermediate_size, keys.vocab_size, c.vocab_size, double(avail) / 1048576.0);
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
