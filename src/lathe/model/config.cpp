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
    {Arch::Gemma2, "Gemma2ForCausalLM", "gemma2"},
    {Arch::Gemma3, "Gemma3ForCausalLM", "gemma3"},
    {Arch::Phi3, "Phi3ForCausalLM", "phi3"},
    {Arch::SmolLM3, "SmolLM3ForCausalLM", "smollm3"},
    {Arch::Exaone, "ExaoneForCausalLM", "exaone"},
    {Arch::Exaone4, "Exaone4ForCausalLM", "exaone4"},
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


// rope_scaling (or v5 rope_parameters) of any family: linear, llama3, longrope (Phi-3).
void read_rope_scaling(ModelConfig& c, const nlohmann::json& j, const nlohmann::json& rs, const std::string& pre,
                       const std::string& source) {
  if (!rs.is_object()) fail("config", "{}: rope_scaling must be an object or null, got {}", source, rs.dump());
  std::string type = get_or<std::string>(rs, "rope_type", get_or<std::string>(rs, "type", "default", source), source);
  RopeScaling& r = c.rope_scaling;
  auto original_max = [&](const nlohmann::json& where, const std::string& prefix, int64_t def) {
    int64_t orig = def;
    if (const nlohmann::json* o = find_value(where, "original_max_position_embeddings"))
      orig = json_int(*o, source, prefix + "original_max_position_embeddings");
    if (orig < 1 || orig > kMaxContextLength)
      fail("config", "{}: {}original_max_position_embeddings = {} is outside the supported range [1, {}]", source,
           prefix, orig, kMaxContextLength);
    return int(orig);
  };
  if (type == "linear") {
    r.type = RopeScaling::Linear;
    r.factor = float(get_number(rs, "factor", 1.0, source, pre, true));
  } else if (type == "llama3") {
    r.type = RopeScaling::Llama3;
    r.factor = float(get_number(rs, "factor", 1.0, source, pre, true));
    r.low_freq_factor = float(get_number(rs, "low_freq_factor", 1.0, source, pre));
    r.high_freq_factor = float(get_number(rs, "high_freq_factor", 4.0, source, pre));
    r.original_max_position_embeddings = original_max(rs, pre, 8192);
  } else if (type == "longrope" || type == "su") {
    // Phi-3 keeps original_max_position_embeddings at the top of config.json.
    r.type = RopeScaling::LongRope;
    r.original_max_position_embeddings =
        find_value(rs, "original_max_position_embeddings") ? original_max(rs, pre, 4096) : original_max(j, "", 4096);
    for (auto [key, out] : {std::pair{"short_factor", &r.short_factor}, std::pair{"long_factor", &r.long_factor}}) {
      const nlohmann::json* v = find_value(rs, key);
      if (!v || !v->is_array()) fail("config", "{}: {}{} must be a list of numbers", source, pre, key);
      out->clear();
      for (size_t i = 0; i < v->size(); i++) {
        if (!(*v)[i].is_number()) fail("config", "{}: {}{}[{}] must be a number, got {}", source, pre, key, i, (*v)[i].dump());
        out->push_back((*v)[i].get<float>());
      }
    }
    r.factor = float(double(c.max_position_embeddings) / r.original_max_position_embeddings);
    const double dflt = r.factor <= 1.0f ? 1.0
                                         : std::sqrt(1.0 + std::log(double(r.factor)) /
                                                               std::log(double(r.original_max_position_embeddings)));
    r.attention_factor = float(get_number(rs, "attention_factor", dflt, source, pre));
  } else if (type != "default") {
    fail("config", "{}: unsupported {}rope_type '{}' (supported: linear, llama3, longrope)", source, pre, type);
  }
}

// A per-layer list of 0/1 flags (SmolLM3 no_rope_layers) or of layer types (layer_types:
// "sliding_attention" / "full_attention"); false when the key is absent.
bool read_layer_flags(const nlohmann::json& j, const char* key, int L, const std::string& source,
                      std::vector<uint8_t>* out) {
  const nlohmann::json* v = find_value(j, key);
  if (!v) return false;
  if (!v->is_array() || int64_t(v->size()) != L)
    fail("config", "{}: {} must be a list of {} entries (one per layer), got {}", source, key, L,
         v->is_array() ? std::to_string(v->size()) + " entries" : v->dump());
  out->assign(size_t(L), 0);
  for (int i = 0; i < L; i++) {
    const nlohmann::json& e = (*v)[size_t(i)];
    if (e.is_string() && (e == "sliding_attention" || e == "full_attention"))
      (*out)[size_t(i)] = e == "sliding_attention";
    else if (e.is_number_integer() && (e == 0 || e == 1))
      (*out)[size_t(i)] = uint8_t(e.get<int>());
    else
      fail("config", "{}: {}[{}] = {} is not one of \"sliding_attention\", \"full_attention\", 0, 1", source, key, i,
           e.dump());
  }
  return true;
}

// The window of a sliding layer; a family's default applies when the key is absent, and an
// explicit null turns sliding off.
int read_sliding_window(const nlohmann::json& j, int64_t def, const std::string& source) {
  auto it = j.find("sliding_window");
  if (it == j.end()) return int(def);
  if (it->is_null()) return 0;
  int64_t w = json_int(*it, source, "sliding_window");
  if (w < 0 || w > kMaxContextLength)
    fail("config", "{}: sliding_window = {} is outside the supported range [0, {}]", source, w, kMaxContextLength);
  return int(w);
}

// Per-layer sliding flags from a period: every `period`-th layer is global (Gemma 3 / EXAONE 4:
// (i + 1) % period != 0 slides; Gemma 2: period 2).
std::vector<uint8_t> sliding_every(int L, int64_t period) {
  std::vector<uint8_t> out(size_t(L), 0);
  for (int i = 0; i < L; i++) out[size_t(i)] = period > 0 && (i + 1) % period != 0;
  return out;
}

// What config.json says beyond the common fields, per family (HF modeling_*.py defaults).
void read_family(ModelConfig& c, const nlohmann::json& j, const std::string& source) {
  config_set_family_flags(c);
  const int L = c.num_hidden_layers;
  switch (c.arch) {
    case Arch::Mistral:
      c.sliding_window = read_sliding_window(j, 0, source);
      break;
    case Arch::Qwen2:
    case Arch::Qwen3:
      // Sliding only when use_sliding_window, and then on layers from max_window_layers on.
      if (get_or<bool>(j, "use_sliding_window", false, source)) {
        c.sliding_window = read_sliding_window(j, 0, source);
        int64_t from = L;
        if (const nlohmann::json* v = find_value(j, "max_window_layers")) from = json_int(*v, source, "max_window_layers");
        c.layer_sliding.assign(size_t(L), 0);
        for (int i = 0; i < L; i++) c.layer_sliding[size_t(i)] = i >= from;
      }
      break;
    case Arch::Gemma2:
    case Arch::Gemma3: {
      const bool g3 = c.arch == Arch::Gemma3;
      std::string act = get_or<std::string>(j, "hidden_activation", get_or<std::string>(j, "hidden_act", "gelu_pytorch_tanh", source), source);
      if (act != "gelu_pytorch_tanh" && act != "gelu_tanh")
        fail("config", "{}: hidden_activation '{}' is not supported for {} (gelu_pytorch_tanh)", source, act,
             arch_hf_name(c.arch));
      c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", true, source);
      c.query_pre_attn_scalar = float(get_number(j, "query_pre_attn_scalar", 256.0, source));
      c.attn_logit_softcapping = float(get_number(j, "attn_logit_softcapping", g3 ? 0.0 : 50.0, source));
      c.final_logit_softcapping = float(get_number(j, "final_logit_softcapping", g3 ? 0.0 : 30.0, source));
      c.sliding_window = read_sliding_window(j, 4096, source);
      if (!read_layer_flags(j, "layer_types", L, source, &c.layer_sliding)) {
        int64_t period = 2;
        if (g3) {
          period = 6;
          if (const nlohmann::json* v = find_value(j, "sliding_window_pattern"))
            period = json_int(*v, source, "sliding_window_pattern");
        }
        c.layer_sliding = sliding_every(L, period);
      }
      if (g3 && c.rope_local_theta == 0.0f) c.rope_local_theta = float(get_number(j, "rope_local_base_freq", 10000.0, source));
      break;
    }
    case Arch::Phi3:
      c.partial_rotary_factor = float(get_number(j, "partial_rotary_factor", 1.0, source));
      c.sliding_window = read_sliding_window(j, 0, source);
      break;
    case Arch::SmolLM3:
      if (!read_layer_flags(j, "no_rope_layers", L, source, &c.layer_rope)) {
        int64_t interval = 4;
        if (const nlohmann::json* v = find_value(j, "no_rope_layer_interval"))
          interval = json_int(*v, source, "no_rope_layer_interval");
        if (interval < 1) fail("config", "{}: no_rope_layer_interval must be positive, got {}", source, interval);
        c.layer_rope = sliding_every(L, interval);  // the same rule: every interval-th layer skips RoPE
      }
      if (get_or<bool>(j, "use_sliding_window", false, source)) c.sliding_window = read_sliding_window(j, 0, source);
      break;
    case Arch::Exaone: {
      std::string act = get_or<std::string>(j, "activation_function", "silu", source);
      if (act != "silu") fail("config", "{}: activation_function '{}' is not supported (silu)", source, act);
      c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", true, source);
      break;
    }
    case Arch::Exaone4: {
      c.sliding_window = read_sliding_window(j, 4096, source);
      if (c.sliding_window > 0 && !read_layer_flags(j, "layer_types", L, source, &c.layer_sliding)) {
        const nlohmann::json* p = find_value(j, "sliding_window_pattern");
        c.layer_sliding.assign(size_t(L), 0);
        if (p && p->is_string()) {  // "LLLG": layer i is local where the pattern, repeated, says L
          std::string pat = p->get<std::string>();
          if (pat.empty() || pat.find_first_not_of("LG") != std::string::npos)
            fail("config", "{}: sliding_window_pattern '{}' must be a string of L and G", source, pat);
          for (int i = 0; i < L; i++) c.layer_sliding[size_t(i)] = pat[size_t(i) % pat.size()] == 'L';
        } else {
          c.layer_sliding = sliding_every(L, p ? json_int(*p, source, "sliding_window_pattern") : 4);
        }
      }
      // Hybrid models use no RoPE on their global layers (HF: rope iff no window or the layer slides).
      if (c.sliding_window > 0) {
        c.layer_rope.assign(size_t(L), 0);
        for (int i = 0; i < L; i++) c.layer_rope[size_t(i)] = c.layer_is_sliding(i);
      }
      break;
    }
    default:
      break;
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

void config_set_family_flags(ModelConfig& c) {
  const Arch a = c.arch;
  const bool gemma = a == Arch::Gemma2 || a == Arch::Gemma3;
  if (a == Arch::Qwen2) c.attention_bias = true;
  c.qk_norm = a == Arch::Qwen3 || a == Arch::Gemma3 || a == Arch::Exaone4;
  c.hidden_act = gemma ? Activation::GeluTanh : Activation::SiLU;
  c.norm_plus_one = gemma;
  c.embed_scale = gemma;
  c.pre_attn_norm = c.pre_ffn_norm = a != Arch::Exaone4;
  c.post_attn_norm = c.post_ffn_norm = gemma || a == Arch::Exaone4;
  c.fused_qkv = c.fused_gate_up = a == Arch::Phi3;
}

int config_norms_per_layer(const ModelConfig& c) {
  return int(c.pre_attn_norm) + int(c.pre_ffn_norm) + int(c.post_attn_norm) + int(c.post_ffn_norm);
}

int ModelConfig::rotary_dim() const {
  if (partial_rotary_factor >= 1.0f) return head_dim;
  return int(float(head_dim) * partial_rotary_factor) & ~1;
}

float ModelConfig::attention_scale() const {
  return 1.0f / std::sqrt(query_pre_attn_scalar > 0.0f ? query_pre_attn_scalar : float(head_dim));
}

int64_t ModelConfig::num_parameters() const {
  int64_t C = hidden_size, F = intermediate_size, V = vocab_size, D = head_dim;
  int64_t per_layer = config_norms_per_layer(*this) * C + C * q_dim() + 2 * C * kv_dim() + q_dim() * C + 3 * C * F;
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
  if (!found) {
    std::string names;
    for (auto& n : kArchNames) names += std::string(names.empty() ? "" : ", ") + n.hf;
    fail("config", "{}: unsupported architecture '{}' (supported: {})", source, arch, names);
  }
  // EXAONE 3.x (remote code) spells two keys its own way.
  const bool exaone = c.arch == Arch::Exaone;
  const char* layers_key = exaone ? "num_layers" : "num_hidden_layers";
  const char* eps_key = exaone ? "layer_norm_epsilon" : "rms_norm_eps";
  // Every integer goes through config_set_int (64-bit read, range check, then narrowing), and the
  // head count is validated there before head_dim's default divides by it.
  set_int(c, &ModelConfig::vocab_size, j, "vocab_size", true, 0, source);
  set_int(c, &ModelConfig::hidden_size, j, "hidden_size", true, 0, source);
  set_int(c, &ModelConfig::intermediate_size, j, "intermediate_size", true, 0, source);
  set_int(c, &ModelConfig::num_hidden_layers, j, layers_key, true, 0, source);
  set_int(c, &ModelConfig::num_attention_heads, j, "num_attention_heads", true, 0, source);
  set_int(c, &ModelConfig::num_key_value_heads, j, "num_key_value_heads", false, c.num_attention_heads, source);
  set_int(c, &ModelConfig::head_dim, j, "head_dim", false, c.hidden_size / c.num_attention_heads, source);
  set_int(c, &ModelConfig::max_position_embeddings, j, "max_position_embeddings", false, 2048, source);
  c.rms_norm_eps = float(get_number(j, eps_key, 1e-6, source));
  c.rope_theta = float(get_number(j, "rope_theta", 10000.0, source));
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, source);
  c.attention_bias = c.arch == Arch::Qwen2 ? true : get_or<bool>(j, "attention_bias", false, source);
  c.torch_dtype = get_or<std::string>(j, "torch_dtype", "float32", source);
  set_token_id(c, &ModelConfig::bos_token_id, j, "bos_token_id", source);
  set_token_id(c, &ModelConfig::eos_token_id, j, "eos_token_id", source);
  // transformers v5 writes rope_parameters (with rope_theta inside; Gemma 3 one per layer type).
  const nlohmann::json* rsp = find_value(j, "rope_scaling");
  const char* rope_key = "rope_scaling";
  if (const nlohmann::json* rp = find_value(j, "rope_parameters")) {
    if (!rp->is_object()) fail("config", "{}: rope_parameters must be an object, got {}", source, rp->dump());
    rope_key = "rope_parameters";
    rsp = rp;
    if (const nlohmann::json* full = find_value(*rp, "full_attention")) {
      if (const nlohmann::json* local = find_value(*rp, "sliding_attention"))
        c.rope_local_theta = float(get_number(*local, "rope_theta", 10000.0, source, "rope_parameters.sliding_attention."));
      rsp = full;
      rope_key = "rope_parameters.full_attention";
    }
    c.rope_theta = float(get_number(*rsp, "rope_theta", c.rope_theta, source, std::string(rope_key) + "."));
  }
  if (rsp) read_rope_scaling(c, j, *rsp, std::string(rope_key) + ".", source);
  read_family(c, j, source);
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
  int64_t per_layer = add(add(add(mul(config_norms_per_layer(c), C), mul(C, Q)), mul(mul(2, C), KV)),
                          add(mul(Q, C), mul(mul(3, C), F)));
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
  if (rs.type == RopeScaling::LongRope) {
    const size_t half = size_t(c.rotary_dim() / 2);
    if (rs.short_factor.size() != half || rs.long_factor.size() != half)
      fail("config", "{}: rope_scaling short_factor / long_factor have {} / {} entries; the rotary dimension {} needs {}",
           source, rs.short_factor.size(), rs.long_factor.size(), c.rotary_dim(), half);
    for (const std::vector<float>* f : {&rs.short_factor, &rs.long_factor})
      for (float x : *f)
        if (!(std::isfinite(x) && x > 0))
          fail("config", "{}: rope_scaling factors must be finite positive numbers, got {}", source, x);
    if (!(std::isfinite(rs.attention_factor) && rs.attention_factor > 0))
      fail("config", "{}: rope_scaling.attention_factor must be a finite positive number, got {}", source,
           rs.attention_factor);
  }
  // Family features: each number finite and in range, each per-layer list one entry per layer.
  if (!(c.partial_rotary_factor > 0.0f && c.partial_rotary_factor <= 1.0f) || c.rotary_dim() < 2)
    fail("config", "{}: partial_rotary_factor must be in (0, 1] and leave at least 2 rotary channels, got {}", source,
         c.partial_rotary_factor);
  for (auto [v, key] : {std::pair{c.query_pre_attn_scalar, "query_pre_attn_scalar"},
                        std::pair{c.attn_logit_softcapping, "attn_logit_softcapping"},
                        std::pair{c.final_logit_softcapping, "final_logit_softcapping"},
                        std::pair{c.rope_local_theta, "rope_local_base_freq"}})
    if (!(std::isfinite(v) && v >= 0.0f))
      fail("config", "{}: {} must be a finite number >= 0, got {}", source, key, v);
  if (c.sliding_window < 0 || c.sliding_window > kMaxContextLength)
    fail("config", "{}: sliding_window = {} is outside [0, {}]", source, c.sliding_window, kMaxContextLength);
  for (auto [v, key] : {std::pair{&c.layer_sliding, "layer_types"}, std::pair{&c.layer_rope, "no_rope_layers"}})
    if (!v->empty() && int64_t(v->size()) != c.num_hidden_layers)
      fail("config", "{}: {} has {} entries for {} layers", source, key, v->size(), c.num_hidden_layers);
  // Last, the size: refuse before the loader allocates (or maps and converts) what cannot fit.
  const uint64_t need = config_weight_bytes_f32(c, source);
  const uint64_t avail = available_memory_bytes();
  if (avail > 0 && need > avail)
    fail("config", "{}: the model needs {:.1f} MiB for its f32 weights ({} parameters: {} {}, {} {}, {} {}, {} {}) "
         "but only {:.1f} MiB of memory is available", source, double(need) / 1048576.0, need / sizeof(float),
         keys.num_hidden_layers, c.num_hidden_layers, keys.hidden_size, c.hidden_size, keys.intermediate_size,
         c.intermediate_size, keys.vocab_size, c.vocab_size, double(avail) / 1048576.0);
}

namespace {
std::vector<std::string> layer_types_of(const ModelConfig& c) {
  std::vector<std::string> out;
  for (int i = 0; i < c.num_hidden_layers; i++) out.push_back(c.layer_is_sliding(i) ? "sliding_attention" : "full_attention");
  return out;
}

// The family keys of config.json, as the family's HF config class reads them back.
void write_family(const ModelConfig& c, nlohmann::json& j) {
  switch (c.arch) {
    case Arch::Mistral:
      j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json();
      break;
    case Arch::Gemma2:
    case Arch::Gemma3:
      j["hidden_activation"] = "gelu_pytorch_tanh";
      j["hidden_act"] = "gelu_pytorch_tanh";
      j["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
      j["attn_logit_softcapping"] = c.attn_logit_softcapping > 0 ? nlohmann::json(c.attn_logit_softcapping) : nlohmann::json();
      j["final_logit_softcapping"] =
          c.final_logit_softcapping > 0 ? nlohmann::json(c.final_logit_softcapping) : nlohmann::json();
      j["sliding_window"] = c.sliding_window;
      j["layer_types"] = layer_types_of(c);
      if (c.arch == Arch::Gemma3) {
        j["model_type"] = "gemma3_text";
        j["rope_local_base_freq"] = c.rope_local_theta;
      }
      break;
    case Arch::Phi3:
      j["partial_rotary_factor"] = c.partial_rotary_factor;
      j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json();
      break;
    case Arch::SmolLM3: {
      std::vector<int> flags;
      for (int i = 0; i < c.num_hidden_layers; i++) flags.push_back(c.layer_uses_rope(i));
      j["no_rope_layers"] = flags;
      break;
    }
    case Arch::Exaone:  // its remote code's names
      j["num_layers"] = j["num_hidden_layers"];
      j["layer_norm_epsilon"] = j["rms_norm_eps"];
      j["activation_function"] = "silu";
      j.erase("num_hidden_layers");
      j.erase("rms_norm_eps");
      j.erase("hidden_act");
      break;
    case Arch::Exaone4:
      j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json();
      if (c.sliding_window > 0) j["layer_types"] = layer_types_of(c);
      break;
    default:
      break;
  }
}
}  // namespace

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
  } else if (c.rope_scaling.type == RopeScaling::LongRope) {
    j["rope_scaling"] = {{"rope_type", "longrope"},
                         {"short_factor", c.rope_scaling.short_factor},
                         {"long_factor", c.rope_scaling.long_factor},
                         {"attention_factor", c.rope_scaling.attention_factor}};
    j["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
  } else {
    j["rope_scaling"] = nullptr;
  }
  write_family(c, j);
  return j;
}

}  // namespace lathe
