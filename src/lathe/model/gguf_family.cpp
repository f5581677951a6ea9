#include "lathe/model/gguf_family.h"

#include <cmath>

#include "lathe/core/error.h"

namespace lathe {

namespace {

struct GgufArch {
  Arch arch;
  const char* name;
  bool permuted;   // LLAMA_ROPE_TYPE_NORM in llama.cpp: the converter permutes q/k
  bool rope_freqs; // the loader reads rope_freqs.weight (Llama 3 scaling)
};
constexpr GgufArch kGgufArchs[] = {
    {Arch::Llama, "llama", true, true},       {Arch::Mistral, "llama", true, true},
    {Arch::Qwen2, "qwen2", false, false},     {Arch::Qwen3, "qwen3", false, false},
    {Arch::Gemma2, "gemma2", false, false},   {Arch::Gemma3, "gemma3", false, false},
    {Arch::Phi3, "phi3", false, false},       {Arch::SmolLM3, "smollm3", true, false},
    {Arch::Exaone, "exaone", false, true},    {Arch::Exaone4, "exaone4", false, true},
};

const GgufArch& gguf_arch(Arch a) {
  for (const auto& g : kGgufArchs)
    if (g.arch == a) return g;
  fail("export", "architecture {} has no GGUF name", arch_short_name(a));
}

bool gemma(const ModelConfig& c) { return c.arch == Arch::Gemma2 || c.arch == Arch::Gemma3; }

// llama.cpp has no key for Gemma's query_pre_attn_scalar: it scales by 1/sqrt(head_dim), or by
// 1/sqrt(hidden / heads) for the 27B models, which it recognises by their layer count.
float llamacpp_gemma_scalar(const ModelConfig& c) {
  const bool big = (c.arch == Arch::Gemma2 && c.num_hidden_layers == 46) ||
                   (c.arch == Arch::Gemma3 && c.num_hidden_layers == 62);
  return float(big ? c.hidden_size / c.num_attention_heads : c.head_dim);
}

bool gemma_scale_differs(const ModelConfig& c) {
  return gemma(c) && c.attention_scale() != 1.0f / std::sqrt(llamacpp_gemma_scalar(c));
}

std::vector<bool> sliding_flags(const ModelConfig& c) {
  std::vector<bool> out(size_t(c.num_hidden_layers));
  for (int i = 0; i < c.num_hidden_layers; i++) out[size_t(i)] = c.layer_is_sliding(i);
  return out;
}

// llama.cpp's set_swa_pattern(n): layer i slides iff i % n < n - 1 (n = 0: every layer slides).
std::vector<bool> period_flags(int L, uint32_t n) {
  std::vector<bool> out(static_cast<size_t>(L));
  for (int i = 0; i < L; i++) out[size_t(i)] = n == 0 || uint32_t(i) % n < n - 1;
  return out;
}

// The period that describes the sliding layers, or -1 when no period does.
int64_t sliding_period(const ModelConfig& c) {
  const std::vector<bool> want = sliding_flags(c);
  if (period_flags(c.num_hidden_layers, 0) == want) return 0;
  for (uint32_t n = 1; n <= uint32_t(c.num_hidden_layers) + 1; n++)
    if (period_flags(c.num_hidden_layers, n) == want) return n;
  return -1;
}

bool any_sliding(const ModelConfig& c) {
  for (int i = 0; i < c.num_hidden_layers; i++)
    if (c.layer_is_sliding(i)) return true;
  return false;
}

// SmolLM3 in llama.cpp: every 4th layer ((i + 1) % 4 == 0) skips RoPE; there is no key for it.
bool smollm3_rope_differs(const ModelConfig& c) {
  for (int i = 0; i < c.num_hidden_layers; i++)
    if (c.layer_uses_rope(i) != ((i + 1) % 4 != 0)) return true;
  return false;
}

// The per-frequency divisors llama.cpp's converter writes as rope_freqs for Llama 3 scaling (one
// per rotary pair; f32 arithmetic as the converter does it on float32 tensors).
std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  const int R = c.rotary_dim();
  const float orig = float(r.original_max_position_embeddings);
  const float low_wavelen = orig / r.low_freq_factor, high_wavelen = orig / r.high_freq_factor;
  std::vector<float> out;
  for (int i = 0; i < R / 2; i++) {
    const float freq = 1.0f / std::pow(c.rope_theta, float(2 * i) / float(R));
    const float wavelen = 2.0f * float(M_PI) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(r.factor);
    } else {
      const float smooth = (orig / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      out.push_back(1.0f / ((1.0f - smooth) / r.factor + smooth));
    }
  }
  return out;
}

// A file's rope_freqs read back as what it is for lathe: per-frequency divisors that apply at every
// position, i.e. longrope whose short and long factors are the same and whose attention factor is 1.
bool is_plain_factors(const RopeScaling& r) {
  return r.type == RopeScaling::LongRope && r.short_factor == r.long_factor && r.attention_factor == 1.0f;
}

void add_f32_vector(GgufWriter& w, const std::string& name, const std::vector<float>& v) {
  Tensor t = Tensor::empty(DType::F32, {int64_t(v.size())});
  for (size_t i = 0; i < v.size(); i++) t.f32()[i] = v[i];
  w.add_tensor(name, t, GgmlType::F32);  // the writer keeps `t` alive (shared storage)
}

std::vector<float> read_f32_vector(const GgufFile& g, const std::string& name, int64_t n, const std::string& path) {
  if (!g.has_tensor(name)) fail("model", "{}: missing tensor '{}'", path, name);
  const std::vector<int64_t> shape = g.tensor_info(name).shape();
  if (shape != std::vector<int64_t>{n})
    fail("model", "{}: tensor '{}' has shape {}, expected [{}] (rope.dimension_count / 2)", path, name,
         shape_to_string(shape), n);
  Tensor t = g.tensor_f32(name);
  return std::vector<float>(t.f32(), t.f32() + n);
}

// Per-layer flags from a GGUF key that holds either llama.cpp's period (u32) or one bool per layer.
std::vector<uint8_t> read_layer_pattern(const GgufFile& g, const std::string& key, int L, const std::string& path) {
  std::vector<uint8_t> out(static_cast<size_t>(L));
  if (g.get(key).is_array()) {
    std::vector<int64_t> v = g.get_int_array(key);
    if (int64_t(v.size()) != L)
      fail("model", "{}: {} has {} entries for {} layers", path, key, v.size(), L);
    for (int i = 0; i < L; i++) {
      if (v[size_t(i)] != 0 && v[size_t(i)] != 1)
        fail("model", "{}: {}[{}] = {} is not a flag (0 or 1)", path, key, i, v[size_t(i)]);
      out[size_t(i)] = uint8_t(v[size_t(i)]);
    }
    return out;
  }
  const int64_t n = g.get_int(key, 0);
  if (n < 0 || n > int64_t(kMaxLayers)) fail("model", "{}: {} = {} is not a layer period", path, key, n);
  std::vector<bool> f = period_flags(L, uint32_t(n));
  for (int i = 0; i < L; i++) out[size_t(i)] = f[size_t(i)];
  return out;
}

std::vector<uint8_t> read_layer_pattern_default(int L, uint32_t period) {
  std::vector<bool> f = period_flags(L, period);
  return std::vector<uint8_t>(f.begin(), f.end());
}

float positive_float(const GgufFile& g, const std::string& key, double def, const std::string& path) {
  const double v = g.get_float(key, def);
  if (!(std::isfinite(v) && v >= 0)) fail("model", "{}: {} must be a finite number >= 0, got {}", path, key, v);
  return float(v);
}

}  // namespace

std::string gguf_arch_name(const ModelConfig& c) {
  const GgufArch& g = gguf_arch(c.arch);
  // llama.cpp's qwen2, phi3 and exaone4 loaders fix attn_q or attn_output at hidden x hidden,
  // so such a file would not load there ("wrong shape").
  if ((c.arch == Arch::Qwen2 || c.arch == Arch::Phi3 || c.arch == Arch::Exaone4) && c.head_dim * c.num_attention_heads != c.hidden_size)
    fail("export", "GGUF export of a {} model with head_dim {} x {} heads != hidden_size {} is not supported "
         "(llama.cpp's {} architecture cannot load it)", g.name, c.head_dim, c.num_attention_heads, c.hidden_size,
         g.name);
  const RopeScaling& r = c.rope_scaling;
  if ((r.type == RopeScaling::Llama3 || is_plain_factors(r)) && !g.rope_freqs)
    fail("export", "GGUF export of Llama 3 RoPE scaling on a {} model is not supported (llama.cpp's {} loader "
         "reads no rope_freqs tensor)", g.name, g.name);
  if (r.type == RopeScaling::LongRope && !is_plain_factors(r) && c.arch != Arch::Phi3)
    fail("export", "GGUF export of longrope scaling is supported for phi3 only, not {}", g.name);
  return g.name;
}

bool gguf_arch_from_name(const std::string& name, Arch* out) {
  if (name == "llama") return *out = Arch::Llama, true;  // Mistral is stored as llama
  for (const auto& g : kGgufArchs)
    if (name == g.name) return *out = g.arch, true;
  return false;
}

bool gguf_rope_permuted(const ModelConfig& c) { return gguf_arch(c.arch).permuted; }

float gguf_norm_shift(const ModelConfig& c) { return c.norm_plus_one ? 1.0f : 0.0f; }

void gguf_write_family(const ModelConfig& c, const std::string& arch, GgufWriter& w) {
  auto k = [&](const char* key) { return arch + "." + key; };
  const RopeScaling& r = c.rope_scaling;
  // Extra RoPE tensors (one per model; llama.cpp shares them across layers).
  if (r.type == RopeScaling::Llama3) {
    add_f32_vector(w, "rope_freqs.weight", llama3_rope_factors(c));
    // llama.cpp needs only the factors; lathe keeps the parameters to read back the exact config.
    w.set_f32("lathe.rope.llama3.factor", r.factor);
    w.set_f32("lathe.rope.llama3.low_freq_factor", r.low_freq_factor);
    w.set_f32("lathe.rope.llama3.high_freq_factor", r.high_freq_factor);
    w.set_u32("lathe.rope.llama3.original_context_length", uint32_t(r.original_max_position_embeddings));
  } else if (is_plain_factors(r)) {
    add_f32_vector(w, "rope_freqs.weight", r.short_factor);
  } else if (r.type == RopeScaling::LongRope) {
    w.set_string(k("rope.scaling.type"), "longrope");
    w.set_u32(k("rope.scaling.original_context_length"), uint32_t(r.original_max_position_embeddings));
    w.set_f32(k("rope.scaling.attn_factor"), r.attention_factor);
    add_f32_vector(w, "rope_factors_long.weight", r.long_factor);
    add_f32_vector(w, "rope_factors_short.weight", r.short_factor);
  }
  switch (c.arch) {
    case Arch::Gemma2:
    case Arch::Gemma3: {
      const bool g2 = c.arch == Arch::Gemma2;
      if (g2 || c.attn_logit_softcapping > 0) w.set_f32(k("attn_logit_softcapping"), c.attn_logit_softcapping);
      if (g2 || c.final_logit_softcapping > 0) w.set_f32(k("final_logit_softcapping"), c.final_logit_softcapping);
      // Gemma 3 without sliding layers: no window key (llama.cpp then attends globally everywhere);
      // Gemma 2 always slides in llama.cpp, so "none" is the period 1 (no layer slides).
      if (any_sliding(c)) {
        w.set_u32(k("attention.sliding_window"), uint32_t(c.sliding_window));
        const int64_t p = sliding_period(c);
        if (p >= 0) w.set_u32(k("attention.sliding_window_pattern"), uint32_t(p));
        else w.set_bool_array(k("attention.sliding_window_pattern"), sliding_flags(c));
        if (c.rope_local_theta > 0) w.set_f32(k("rope.freq_base_swa"), c.rope_local_theta);
      } else if (g2) {
        w.set_u32(k("attention.sliding_window_pattern"), 1);
      }
      if (gemma_scale_differs(c)) w.set_f32("lathe.query_pre_attn_scalar", c.query_pre_attn_scalar);
      break;
    }
    case Arch::Phi3:
      // The converter writes 0 for "no window" (Phi-4); llama.cpp ignores any window for phi3.
      w.set_u32(k("attention.sliding_window"), uint32_t(c.sliding_window));
      break;
    case Arch::SmolLM3:
      if (smollm3_rope_differs(c)) {
        std::vector<bool> rope;
        for (int i = 0; i < c.num_hidden_layers; i++) rope.push_back(c.layer_uses_rope(i));
        w.set_bool_array("lathe.no_rope_layers", rope);  // HF's no_rope_layers: 1 = the layer uses RoPE
      }
      if (any_sliding(c)) w.set_u32(k("attention.sliding_window"), uint32_t(c.sliding_window));
      break;
    case Arch::Exaone4:
      // As llama.cpp's converter: the window and one flag per layer.
      if (c.sliding_window > 0) {
        w.set_u32(k("attention.sliding_window"), uint32_t(c.sliding_window));
        w.set_bool_array(k("attention.sliding_window_pattern"), sliding_flags(c));
      }
      break;
    default:
      if (c.sliding_window > 0) w.set_u32(k("attention.sliding_window"), uint32_t(c.sliding_window));
      break;
  }
}

void gguf_read_family(ModelConfig& c, const GgufFile& g, const std::string& arch, const std::string& path) {
  auto k = [&](const char* key) { return arch + "." + key; };
  const int L = c.num_hidden_layers;
  // rope.dimension_count: partial rotary (Phi-3) rotates fewer channels than head_dim. Other
  // families must rotate all of them; Model::load_gguf checks that after the tensor shapes
  // (gguf_check_rope_dimensions), so a file whose sizes are wrong says so first.
  const std::string rot_key = k("rope.dimension_count");
  const int64_t n_rot = g.has(rot_key) && c.arch == Arch::Phi3 ? g.get_int(rot_key, 0) : c.head_dim;
  if (n_rot < 2 || n_rot > c.head_dim || n_rot % 2 != 0)
    fail("model", "{}: {} = {} must be even and in [2, head_dim {}]", path, rot_key, n_rot, c.head_dim);
  if (n_rot != c.head_dim) {
    c.partial_rotary_factor = float(n_rot) / float(c.head_dim);
    while (c.rotary_dim() < n_rot) c.partial_rotary_factor = std::nextafter(c.partial_rotary_factor, 2.0f);
  }
  // Extra RoPE tensors.
  RopeScaling& r = c.rope_scaling;
  if (g.has_tensor("rope_freqs.weight")) {
    if (r.type != RopeScaling::None)
      fail("model", "{}: rope_freqs.weight together with {} scaling", path, g.get_string(k("rope.scaling.type"), ""));
    std::vector<float> f = read_f32_vector(g, "rope_freqs.weight", n_rot / 2, path);
    bool exact = false;
    if (g.has("lathe.rope.llama3.factor")) {  // written by lathe: the Llama 3 parameters themselves
      r.type = RopeScaling::Llama3;
      r.factor = positive_float(g, "lathe.rope.llama3.factor", 1.0, path);
      r.low_freq_factor = positive_float(g, "lathe.rope.llama3.low_freq_factor", 1.0, path);
      r.high_freq_factor = positive_float(g, "lathe.rope.llama3.high_freq_factor", 4.0, path);
      const int64_t orig = g.get_int("lathe.rope.llama3.original_context_length", 8192);
      if (orig < 1 || orig > kMaxContextLength)
        fail("model", "{}: lathe.rope.llama3.original_context_length = {} is out of range", path, orig);
      r.original_max_position_embeddings = int(orig);
      exact = r.high_freq_factor > r.low_freq_factor && r.factor > 0 && llama3_rope_factors(c) == f;
    }
    if (!exact) {  // what llama.cpp does with the tensor: divide each frequency by its factor
      r = RopeScaling{};
      r.type = RopeScaling::LongRope;
      r.short_factor = r.long_factor = f;
      r.original_max_position_embeddings = c.max_position_embeddings;
      r.attention_factor = 1.0f;
    }
  }
  if (g.has("lathe.rope.llama3.factor") && !g.has_tensor("rope_freqs.weight"))
    fail("model", "{}: lathe.rope.llama3.factor is set but the tensor 'rope_freqs.weight' is missing", path);
  const std::string scaling = g.get_string(k("rope.scaling.type"), "none");
  if (scaling == "longrope") {
    if (c.arch != Arch::Phi3) fail("model", "{}: {} = longrope is supported for phi3 only", path, k("rope.scaling.type"));
    const std::string orig_key = k("rope.scaling.original_context_length");
    const int64_t orig = g.has(orig_key) ? g.get_int(orig_key, 0) : c.max_position_embeddings;
    if (orig < 1 || orig > kMaxContextLength)
      fail("model", "{}: {} = {} is outside [1, {}]", path, orig_key, orig, kMaxContextLength);
    r.type = RopeScaling::LongRope;
    r.original_max_position_embeddings = int(orig);
    r.factor = float(double(c.max_position_embeddings) / double(orig));
    r.attention_factor = positive_float(g, k("rope.scaling.attn_factor"), 1.0, path);
    r.long_factor = read_f32_vector(g, "rope_factors_long.weight", n_rot / 2, path);
    r.short_factor = read_f32_vector(g, "rope_factors_short.weight", n_rot / 2, path);
  } else if (scaling != "none" && scaling != "linear") {
    fail("model", "{}: {} = '{}' is not supported (none, linear, longrope)", path, k("rope.scaling.type"), scaling);
  }
  const std::string swa_key = k("attention.sliding_window"), pattern_key = k("attention.sliding_window_pattern");
  auto window = [&](int64_t def) {
    const int64_t v = g.has(swa_key) ? g.get_int(swa_key, 0) : def;
    if (v < 0 || v > kMaxContextLength) fail("model", "{}: {} = {} is outside [0, {}]", path, swa_key, v, kMaxContextLength);
    return int(v);
  };
  switch (c.arch) {
    case Arch::Gemma2:
    case Arch::Gemma3: {
      const bool g2 = c.arch == Arch::Gemma2;
      c.attn_logit_softcapping = positive_float(g, k("attn_logit_softcapping"), g2 ? 50.0 : 0.0, path);
      c.final_logit_softcapping = positive_float(g, k("final_logit_softcapping"), g2 ? 30.0 : 0.0, path);
      // llama.cpp: Gemma 2 slides with window 4096 and period 2 unless told otherwise; Gemma 3
      // slides (period 6, sliding layers at RoPE base 10000, unscaled) only when a window is given.
      c.sliding_window = window(g2 ? 4096 : 0);
      if (c.sliding_window > 0) {
        c.layer_sliding = g.has(pattern_key) ? read_layer_pattern(g, pattern_key, L, path)
                                             : read_layer_pattern_default(L, g2 ? 2 : 6);
        if (!g2) c.rope_local_theta = positive_float(g, k("rope.freq_base_swa"), 10000.0, path);
      }
      c.query_pre_attn_scalar = g.has("lathe.query_pre_attn_scalar")
                                    ? positive_float(g, "lathe.query_pre_attn_scalar", 0.0, path)
                                    : llamacpp_gemma_scalar(c);
      break;
    }
    case Arch::SmolLM3:
      c.layer_rope = g.has("lathe.no_rope_layers") ? read_layer_pattern(g, "lathe.no_rope_layers", L, path)
                                                   : read_layer_pattern_default(L, 4);
      c.sliding_window = window(0);
      break;
    case Arch::Exaone4:
      // llama.cpp's converter writes the window and one flag per layer (hybrid models); the global
      // layers of a hybrid model use no RoPE (HF Exaone4Attention).
      c.sliding_window = window(0);
      if (c.sliding_window > 0) {
        c.layer_sliding = g.has(pattern_key) ? read_layer_pattern(g, pattern_key, L, path)
                                             : read_layer_pattern_default(L, 4);
        c.layer_rope.assign(size_t(L), 0);
        for (int i = 0; i < L; i++) c.layer_rope[size_t(i)] = c.layer_sliding[size_t(i)];
      }
      break;
    case Arch::Phi3:  // llama.cpp ignores phi3's window (it disables sliding attention for Phi-3)
    case Arch::Exaone:
      break;
    default:
      c.sliding_window = window(0);
      break;
  }
}

void gguf_check_rope_dimensions(const ModelConfig& c, const GgufFile& g, const std::string& arch,
                                const std::string& path) {
  const std::string rot_key = arch + ".rope.dimension_count";
  if (c.arch == Arch::Phi3 || !g.has(rot_key)) return;
  const int64_t n_rot = g.get_int(rot_key, 0);
  if (n_rot != c.head_dim)
    fail("model", "{}: {} = {} differs from head_dim {}; partial rotary is supported for phi3 only", path, rot_key,
         n_rot, c.head_dim);
}

std::vector<std::string> gguf_llamacpp_notes(const ModelConfig& c) {
  std::vector<std::string> out;
  if (gemma_scale_differs(c))
    out.push_back(fmt::format("query_pre_attn_scalar {} is not llama.cpp's (it scales attention by 1/sqrt({}))",
                              c.query_pre_attn_scalar, llamacpp_gemma_scalar(c)));
  if (c.arch == Arch::Gemma2) {
    if (c.attn_logit_softcapping <= 0 || c.final_logit_softcapping <= 0)
      out.push_back("llama.cpp's gemma2 always soft-caps attention and final logits; a cap of 0 makes it divide by 0");
    if (!c.tie_word_embeddings)
      out.push_back("llama.cpp's gemma2 ties lm_head to the embeddings and will refuse the extra output.weight");
  }
  if (c.arch == Arch::Gemma3 && c.attn_logit_softcapping > 0)
    out.push_back("llama.cpp's gemma3 does not soft-cap attention logits");
  if (gemma(c) && any_sliding(c) && sliding_period(c) < 0)
    out.push_back(fmt::format("the sliding layers follow no period; llama.cpp's {} assumes every {} layer is global",
                              gguf_arch(c.arch).name, c.arch == Arch::Gemma2 ? "2nd" : "6th"));
  if (c.arch == Arch::Gemma3 && any_sliding(c) && c.rope_local_theta <= 0)
    out.push_back("llama.cpp's gemma3 uses RoPE base 10000 (unscaled) on sliding layers; this model uses the global RoPE");
  if (c.arch == Arch::SmolLM3 && smollm3_rope_differs(c))
    out.push_back("no_rope_layers differ from llama.cpp's smollm3 rule (every 4th layer skips RoPE)");
  if ((c.arch == Arch::SmolLM3 || c.arch == Arch::Phi3 || c.arch == Arch::Exaone) && any_sliding(c))
    out.push_back(fmt::format("llama.cpp's {} attends globally; this model has a sliding window of {}",
                              gguf_arch(c.arch).name, c.sliding_window));
  if (c.arch == Arch::Exaone4 && any_sliding(c) &&
      (c.num_hidden_layers != 64 || sliding_flags(c) != period_flags(c.num_hidden_layers, 4)))
    out.push_back("llama.cpp's exaone4 uses sliding-window layers only for 64 layers with every 4th global; it will "
                  "treat every layer as global with RoPE");
  if (c.rope_scaling.type == RopeScaling::LongRope && c.arch == Arch::Phi3)
    out.push_back(fmt::format("llama.cpp picks the long RoPE factors by context size (> {}), not by sequence length",
                              c.rope_scaling.original_max_position_embeddings));
  return out;
}

}  // namespace lathe
