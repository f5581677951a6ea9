// Loading and saving models. Every path goes through for_each_tensor, so the name table in
// weights.cpp is the only place that knows HF and GGUF tensor names.
#include <cstring>
#include <filesystem>
#include <optional>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/gguf.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/gguf_family.h"
#include "lathe/model/model.h"

namespace lathe {

namespace {

void check_shape(const std::string& source, const std::string& name, const std::vector<int64_t>& got,
                 const std::vector<int64_t>& want) {
  if (got != want)
    fail("model", "{}: tensor '{}' has shape {}, the config expects {}", source, name, shape_to_string(got),
         shape_to_string(want));
}

void finish_tied(Model& m) {
  if (m.config.tie_word_embeddings) m.weights.lm_head = m.weights.embed;
  m.weight_bytes_f32 = model_weight_bytes(m);
}

bool quantizes(WeightFormat f) { return f != WeightFormat::Auto && f != WeightFormat::F32; }

}  // namespace

WeightFormat parse_weight_format(const std::string& s, const char* what) {
  if (s == "auto") return WeightFormat::Auto;
  if (s == "f32") return WeightFormat::F32;
  if (s == "q8_0") return WeightFormat::Q8_0;
  if (s == "q4_0") return WeightFormat::Q4_0;
  if (s == "q4_k") return WeightFormat::Q4_K;
  if (s == "q6_k") return WeightFormat::Q6_K;
  if (s == "f16") return WeightFormat::F16;
  if (s == "bf16") return WeightFormat::BF16;
  fail("model", "{}: unknown weight format '{}' (auto, f32, q8_0, q4_0, q4_k, q6_k, f16, bf16)", what, s);
}

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::Auto: return "auto";
    case WeightFormat::F32: return "f32";
    case WeightFormat::Q8_0: return "q8_0";
    case WeightFormat::Q4_0: return "q4_0";
    case WeightFormat::Q4_K: return "q4_k";
    case WeightFormat::Q6_K: return "q6_k";
    case WeightFormat::F16: return "f16";
    case WeightFormat::BF16: return "bf16";
  }
  return "?";
}

DType weight_format_dtype(WeightFormat f) {
  switch (f) {
    case WeightFormat::Q8_0: return DType::Q8_0;
    case WeightFormat::Q4_0: return DType::Q4_0;
    case WeightFormat::Q4_K: return DType::Q4_K;
    case WeightFormat::Q6_K: return DType::Q6_K;
    case WeightFormat::F16: return DType::F16;
    case WeightFormat::BF16: return DType::BF16;
    default: return DType::F32;
  }
}

// Inference loads (any `weights` but F32) read every weight on the first prompt anyway. A mapped file
// faulted in page by page there, inside the prefill (a 32-token prompt of a 135M model: thousands of
// faults); reading it in at load is what llama.cpp does too (MAP_POPULATE), so prefill times compare.
static Model resident(Model m, WeightFormat weights) {
  if (weights == WeightFormat::F32) return m;  // training, export: they read it when they need it
  for_each_tensor(m.config, m.weights, [&](TensorSlot& s) { prefault_pages(s.tensor->data, s.tensor->nbytes()); });
  // The table walk skips lm_head when the config ties it; a quantized head may still be its own tensor
  // (the same rule as model_weight_bytes).
  if (m.config.tie_word_embeddings && m.weights.lm_head.data != m.weights.embed.data)
    prefault_pages(m.weights.lm_head.data, m.weights.lm_head.nbytes());
  return m;
}

Model Model::load(const std::string& path, WeightFormat weights) {
  if (is_directory(path)) return resident(load_hf_dir(path, weights), weights);
  if (path.size() > 5 && path.substr(path.size() - 5) == ".gguf") return resident(load_gguf(path, weights), weights);
  if (!file_exists(path)) fail("model", "{}: no such file or directory", path);
  fail("model", "{}: expected a Hugging Face model directory or a .gguf file", path);
}

Model Model::load_hf_dir(const std::string& dir, WeightFormat weights) {
  std::string cfg_path = dir + "/config.json";
  if (!file_exists(cfg_path)) fail("model", "{}: no config.json (not a Hugging Face model directory)", dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for an overflowing number
    fail("config", "{}: invalid JSON: {}", cfg_path, e.what());
  }
  Model m;
  m.config = config_from_hf_json(j, cfg_path);
  m.source = dir;
  m.format = "hf";
  SafetensorsCollection st = SafetensorsCollection::open_dir(dir);
  const bool quantize = quantizes(weights);
  for_each_tensor(m.config, m.weights, [&](TensorSlot& s) {
    if (!st.has(s.hf_name)) {
      if (s.hf_name == "lm_head.weight")
        fail("model", "{}: tensor 'lm_head.weight' is missing and tie_word_embeddings is false", dir);
      fail("model", "{}: missing tensor '{}'", dir, s.hf_name);
    }
    Tensor t = st.tensor(s.hf_name);
    check_shape(dir, s.hf_name, t.shape, s.shape);
    m.stored.push_back({s.hf_name, t.shape, std::string(dtype_name(t.dtype))});
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      fail("model", "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", dir, s.hf_name, dtype_name(t.dtype));
    if (quantize && s.role == TensorRole::Matrix && s.layer >= 0) {
      // Quantize on load, matrix by matrix as it is read, f16/bf16 rows widened one at a time: a
      // checkpoint is never held as f32 (the bytes are those quantize_model_weights gives the whole
      // f32 model). A stored matrix that already has the wanted type stays a view into the file.
      const DType want = quantized_weight_dtype(weight_format_dtype(weights), false, t.dim(1));
      if (t.dtype != want) {
        *s.tensor = quantize_tensor_qblock(t, want, s.hf_name);
        // A view into the read-only mapping (owner shared with the collection) gives its pages back.
        if (t.owner.use_count() > 1) release_mapped_pages(t.data, t.nbytes());
      } else {
        *s.tensor = t;
      }
      return;
    }
    if (quantize && (s.role == TensorRole::Embedding || s.role == TensorRole::Matrix) && t.dtype != DType::F32) {
      *s.tensor = t;  // stored f16/bf16: quantize_model_weights converts the output side from these rows
      return;
    }
    *s.tensor = to_f32(t);  // f32: zero-copy view into the mapping; f16/bf16: one converted copy
  });
  finish_tied(m);
  if (quantizes(weights)) quantize_model_weights(m, weight_format_dtype(weights));
  return m;
}

Model Model::load_gguf(const std::string& path, WeightFormat weights) {
  GgufFile g = GgufFile::open(path);
  std::string arch = g.get_string("general.architecture", "");
  Model m;
  ModelConfig& c = m.config;
  if (!gguf_arch_from_name(arch, &c.arch))
    fail("model", "{}: unsupported GGUF architecture '{}' (supported: llama, qwen2, qwen3, gemma2, gemma3, phi3, "
         "smollm3, exaone, exaone4)", path, arch);
  config_set_family_flags(c);  // norm layout, activation, q/k norm, fused projections, Qwen2's bias
  // Every integer is read as int64 and goes through config_set_int (range check naming the GGUF key,
  // then narrowing) before anything uses it; head_count is checked before head_dim's default
  // divides by it. config_validate then does the cross-field and memory checks, also naming keys.
  const ConfigKeys keys = config_keys_gguf(arch);
  auto key = [&](const char* k) { return arch + "." + k; };
  auto int_of = [&](const std::string& k, std::optional<int64_t> def) -> int64_t {
    if (!g.has(k)) {
      if (!def) fail("model", "{}: missing GGUF key '{}'", path, k);
      return *def;
    }
    return g.get_int(k, 0);  // throws naming the key for a non-integer or a u64 above INT64_MAX
  };
  auto float_of = [&](const std::string& k, double def) { return g.get_float(k, def); };
  config_set_int(c, &ModelConfig::hidden_size, int_of(keys.hidden_size, std::nullopt), path, keys.hidden_size);
  config_set_int(c, &ModelConfig::intermediate_size, int_of(keys.intermediate_size, std::nullopt), path,
                 keys.intermediate_size);
  config_set_int(c, &ModelConfig::num_hidden_layers, int_of(keys.num_hidden_layers, std::nullopt), path,
                 keys.num_hidden_layers);
  config_set_int(c, &ModelConfig::num_attention_heads, int_of(keys.num_attention_heads, std::nullopt), path,
                 keys.num_attention_heads);
  config_set_int(c, &ModelConfig::num_key_value_heads, int_of(keys.num_key_value_heads, c.num_attention_heads), path,
                 keys.num_key_value_heads);
  config_set_int(c, &ModelConfig::head_dim, int_of(keys.head_dim, c.hidden_size / c.num_attention_heads), path,
                 keys.head_dim);
  config_set_int(c, &ModelConfig::max_position_embeddings, int_of(keys.max_position_embeddings, 2048), path,
                 keys.max_position_embeddings);
  c.rms_norm_eps = float(float_of(keys.rms_norm_eps, 1e-5));
  c.rope_theta = float(float_of(keys.rope_theta, 10000.0));
  // Llama-family q/k/v biases are optional tensors in llama.cpp (Qwen2 always has them).
  if (g.has_tensor("blk.0.attn_q.bias")) c.attention_bias = true;
  if (g.get_string(key("rope.scaling.type"), "none") == "linear") {
    c.rope_scaling.type = RopeScaling::Linear;
    c.rope_scaling.factor = float(float_of(keys.rope_factor, 1.0));
  }
  if (!g.has_tensor("token_embd.weight")) fail("model", "{}: missing tensor 'token_embd.weight'", path);
  const std::vector<int64_t> embd_shape = g.tensor_info("token_embd.weight").shape();
  if (embd_shape.size() != 2)
    fail("model", "{}: tensor 'token_embd.weight' has shape {}, expected [vocab, hidden]", path,
         shape_to_string(embd_shape));
  config_set_int(c, &ModelConfig::vocab_size, embd_shape[0], path, keys.vocab_size);
  c.tie_word_embeddings = !g.has_tensor("output.weight");
  // llama.cpp writes "no token" (-1) as u32 0xFFFFFFFF.
  auto token_of = [&](const std::string& k) {
    int64_t v = int_of(k, -1);
    return v == 0xFFFFFFFF ? -1 : v;
  };
  config_set_int(c, &ModelConfig::bos_token_id, token_of(keys.bos_token_id), path, keys.bos_token_id);
  config_set_int(c, &ModelConfig::eos_token_id, token_of(keys.eos_token_id), path, keys.eos_token_id);
  gguf_read_family(c, g, arch, path);  // needs max_position_embeddings and the sizes
  config_validate(c, path, keys);
  m.source = path;
  m.format = "gguf";
  // llama.cpp's converter permutes q/k rows only for NORM-RoPE architectures (llama, smollm3);
  // the NEOX-style ones keep HF row order. Gemma's norms are stored as 1 + w.
  const bool permuted_arch = gguf_rope_permuted(c);
  const float norm_shift = gguf_norm_shift(c);
  // Which stored matrices stay as they are (views into the mapping): with --weights auto every one
  // in a kernel format (Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16); with a converting format the matrices
  // whose type is the one quantize_model_weights would give them, and a block-quantized output side
  // (token_embd, output: the file's own choice there is kept); with f32 none (dequantized copies).
  // A quantized token_embd is looked up row by row (embed_rows) and, tied, multiplied in place as
  // the lm_head: no f32 copy of the table.
  auto stored_dtype = [](const GgufTensorInfo& info) {
    switch (GgmlType(info.ggml_type)) {
      case GgmlType::Q8_0: return DType::Q8_0;
      case GgmlType::Q4_0: return DType::Q4_0;
      case GgmlType::Q4_K: return DType::Q4_K;
      case GgmlType::Q6_K: return DType::Q6_K;
      case GgmlType::F16: return DType::F16;
      case GgmlType::BF16: return DType::BF16;
      default: return DType::F32;  // F32 or a type only tensor_f32 reads
    }
  };
  auto keep_stored = [&](const GgufTensorInfo& info, bool output_side) {
    const DType dt = stored_dtype(info);
    if (weights == WeightFormat::F32 || dt == DType::F32) return false;
    if (weights == WeightFormat::Auto) return true;
    if (output_side) return dt != DType::F16 && dt != DType::BF16;
    return dt == quantized_weight_dtype(weight_format_dtype(weights), false, info.shape().back());
  };
  for_each_tensor(c, m.weights, [&](TensorSlot& s) {
    if (!g.has_tensor(s.gguf_name)) fail("model", "{}: missing tensor '{}'", path, s.gguf_name);
    const GgufTensorInfo& info = g.tensor_info(s.gguf_name);
    check_shape(path, s.gguf_name, info.shape(), s.shape);  // before dequantizing: sizes come from the validated config
    m.stored.push_back({s.gguf_name, info.shape(), std::to_string(info.ggml_type)});
    if ((s.role == TensorRole::Matrix || s.role == TensorRole::Embedding) && keep_stored(info, s.layer < 0)) {
      Tensor q = g.tensor_quantized(s.gguf_name);  // a view into the mapping: no f32 copy
      if (s.rope_permuted && permuted_arch) {
        Tensor hf = Tensor::empty(q.dtype, q.shape);
        rope_rows_permute_bytes(q.as<uint8_t>(), hf.as<uint8_t>(), s.rope_heads, c.head_dim,
                                dtype_bytes(q.dtype, q.dim(1)), true);
        q = hf;
      }
      *s.tensor = q;
      return;
    }
    Tensor t = g.tensor_f32(s.gguf_name);
    if (s.rope_permuted && permuted_arch) {
      Tensor hf = Tensor::empty(DType::F32, t.shape);
      int64_t cols = t.ndim() == 2 ? t.shape[1] : 1;
      rope_rows_gguf_to_hf(t.f32(), hf.f32(), s.rope_heads, c.head_dim, cols);
      t = hf;
    }
    if (s.role == TensorRole::Norm && norm_shift != 0.0f) {
      Tensor w = Tensor::empty(DType::F32, t.shape);
      for (int64_t i = 0; i < t.numel(); i++) w.f32()[i] = t.f32()[i] - norm_shift;
      t = w;
    }
    *s.tensor = t;
  });
  gguf_check_rope_dimensions(c, g, arch, path);
  finish_tied(m);
  if (quantizes(weights)) quantize_model_weights(m, weight_format_dtype(weights));
  return m;
}

Model Model::init_random(const ModelConfig& cfg, uint64_t seed, float std) {
  config_validate(cfg, "init-model");
  Model m;
  m.config = cfg;
  m.source = "random(seed=" + std::to_string(seed) + ")";
  m.format = "random";
  Rng rng(seed);
  for_each_tensor(m.config, m.weights, [&](TensorSlot& s) {
    Tensor t = Tensor::empty(DType::F32, s.shape);
    float* p = t.f32();
    int64_t n = t.numel();
    switch (s.role) {
      case TensorRole::Norm:  // a scale of 1 (Gemma stores it as 1 + w, so w = 0)
        for (int64_t i = 0; i < n; i++) p[i] = cfg.norm_plus_one ? 0.0f : 1.0f;
        break;
      case TensorRole::Bias:
        for (int64_t i = 0; i < n; i++) p[i] = 0.0f;
        break;
      default:
        for (int64_t i = 0; i < n; i++) p[i] = std * rng.normal();
    }
    m.stored.push_back({s.hf_name, s.shape, "F32"});
    *s.tensor = t;
  });
  finish_tied(m);
  return m;
}

void Model::save_hf_dir(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("model", "{}: cannot create directory: {}", dir, ec.message());
  std::vector<std::pair<std::string, Tensor>> tensors;
  ModelWeights w = weights;  // shallow copies of views
  for_each_tensor(config, w, [&](TensorSlot& s) { tensors.emplace_back(s.hf_name, *s.tensor); });
  safetensors_write(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  nlohmann::json j = config_to_hf_json(config);
  j["torch_dtype"] = "float32";
  write_file_atomic(dir + "/config.json", j.dump(2) + "\n");
}

LinearRef block_linear(const Model& m, int l, LinearId id, LayerWeights* g) {
  // The weight through the one id -> tensor table (linear_weight); biases exist only on q/k/v.
  const LayerWeights& w = m.weights.layers[l];
  LinearRef r;
  r.w = &linear_weight(w, id);
  r.layer = l;
  r.id = id;
  r.dw = g ? &linear_weight(*g, id) : nullptr;
  if (m.config.attention_bias && (id == LinearId::Q || id == LinearId::K || id == LinearId::V)) {
    Tensor LayerWeights::*bias = id == LinearId::Q ? &LayerWeights::bq : id == LinearId::K ? &LayerWeights::bk
                                                                                           : &LayerWeights::bv;
    r.b = &(w.*bias);
    r.db = g ? &(g->*bias) : nullptr;
  }
  return r;
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  if (!is_directory(from)) return;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json",
                        "tokenizer.model", "chat_template.jinja"}) {
    std::string src = from + "/" + f;
    if (file_exists(src)) write_file_atomic(to + "/" + f, read_file(src));
  }
}

void make_weights_owned(Model& m) {
  for_each_tensor(m.config, m.weights, [&](TensorSlot& s) {
    if (s.tensor->dtype != DType::F32)  // full fine-tuning updates f32 weights in place
      fail("train", "tensor '{}' is {}: full fine-tuning needs f32 weights", s.hf_name, dtype_name(s.tensor->dtype));
    Tensor copy = Tensor::empty(DType::F32, s.tensor->shape);
    std::memcpy(copy.data, s.tensor->data, copy.nbytes());
    *s.tensor = copy;
  });
  if (m.config.tie_word_embeddings) m.weights.lm_head = m.weights.embed;
}

}  // namespace lathe
