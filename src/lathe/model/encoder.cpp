#include "lathe/model/encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_int.h"
#include "lathe/core/json_io.h"
#include "lathe/formats/safetensors.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/config.h"

namespace lathe {

namespace {

int config_int(const nlohmann::json& j, const char* key, const std::string& source, int64_t lo, int64_t hi,
               const int* fallback = nullptr) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    fail("encoder", "{}: missing key '{}'", source, key);
  }
  int64_t v;
  if (!json_to_int64(j[key], &v)) fail("encoder", "{}: {} is {}", source, key, json_int_problem(j[key]));
  if (v < lo || v > hi) fail("encoder", "{}: {} = {} is outside [{}, {}]", source, key, v, lo, hi);
  return int(v);
}

}  // namespace

EncoderConfig encoder_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("encoder", "{}: must be a JSON object", source);
  EncoderConfig c;
  c.model_type = j.value("model_type", "");
  if (c.model_type == "bert") {
    c.family = EncoderFamily::Bert;
  } else if (c.model_type == "xlm-roberta" || c.model_type == "roberta") {
    c.family = EncoderFamily::XlmRoberta;  // RoBERTa is the same network with an English vocabulary
  } else {
    fail("encoder", "{}: model_type '{}' is not an encoder lathe loads (bert, xlm-roberta, roberta)", source,
         c.model_type);
  }
  c.vocab_size = config_int(j, "vocab_size", source, 1, kMaxVocabSize);
  c.hidden_size = config_int(j, "hidden_size", source, 1, kMaxHiddenSize);
  c.num_hidden_layers = config_int(j, "num_hidden_layers", source, 1, kMaxLayers);
  c.num_attention_heads = config_int(j, "num_attention_heads", source, 1, kMaxHeads);
  c.intermediate_size = config_int(j, "intermediate_size", source, 1, kMaxIntermediateSize);
  c.max_position_embeddings = config_int(j, "max_position_embeddings", source, 1, kMaxContextLength);
  const int type_default = 2, pad_default = c.family == EncoderFamily::Bert ? 0 : 1;
  c.type_vocab_size = config_int(j, "type_vocab_size", source, 1, 1 << 16, &type_default);
  c.pad_token_id = config_int(j, "pad_token_id", source, 0, c.vocab_size - 1, &pad_default);
  if (c.hidden_size % c.num_attention_heads != 0)
    fail("encoder", "{}: hidden_size {} is not divisible by num_attention_heads {}", source, c.hidden_size,
         c.num_attention_heads);
  if (c.max_tokens() < 2)
    fail("encoder", "{}: max_position_embeddings {} leaves no room for tokens after the position offset {}", source,
         c.max_position_embeddings, c.position_offset());
  if (j.contains("layer_norm_eps")) {
    if (!j["layer_norm_eps"].is_number() || !(j["layer_norm_eps"].get<double>() > 0))
      fail("encoder", "{}: layer_norm_eps must be a positive number, got {}", source, j["layer_norm_eps"].dump());
    c.layer_norm_eps = j["layer_norm_eps"].get<float>();
  }
  // BERT's "gelu" is the exact erf GELU; the tanh variants would need their own kernel and no
  // retrieval encoder we target uses them.
  std::string act = j.value("hidden_act", "gelu");
  if (act != "gelu")
    fail("encoder", "{}: hidden_act '{}' is not supported (gelu, the exact erf GELU)", source, act);
  std::string pos = j.contains("position_embedding_type") && j["position_embedding_type"].is_string()
                        ? j["position_embedding_type"].get<std::string>()
                        : "absolute";
  if (pos != "absolute")
    fail("encoder", "{}: position_embedding_type '{}' is not supported (absolute)", source, pos);
  return c;
}

namespace {

// Tensors of one checkpoint whose names may carry a task model's prefix ("bert.", "roberta.").
struct EncoderTensors {
  const SafetensorsCollection& st;
  std::string file;    // names the weights in errors
  std::string prefix;  // detected from the word embeddings

  std::string full(const std::string& name) const { return prefix + name; }

  // An f32 copy (or the mapped f32 view) of `name`, checked against `shape`; `alt` is an older
  // spelling tried when `name` is absent (TF-converted BERT checkpoints: LayerNorm.gamma/beta).
  Tensor take(const std::string& name, std::vector<int64_t> shape, const char* alt = nullptr) const {
    std::string n = full(name);
    if (!st.has(n) && alt) {
      std::string a = full(name.substr(0, name.rfind('.') + 1) + alt);
      if (st.has(a)) n = a;
    }
    if (!st.has(n)) fail("encoder", "{}: missing tensor '{}'", file, n);
    Tensor t = st.tensor(n);
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      fail("encoder", "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", file, n, dtype_name(t.dtype));
    if (t.shape != shape)
      fail("encoder", "{}: tensor '{}' has shape {}, expected {}", file, n, t.shape_str(), shape_to_string(shape));
    return to_f32(t);
  }
};

}  // namespace

Encoder Encoder::load(const std::string& dir) {
  Encoder e;
  e.dir_ = dir;
  const std::string cfg_path = dir + "/config.json";
  if (!is_directory(dir)) fail("encoder", "{}: not a directory", dir);
  if (!file_exists(cfg_path)) fail("encoder", "{}: missing (an encoder directory needs config.json)", cfg_path);
  e.config_ = encoder_config_from_json(read_json_file_bounded(cfg_path, "encoder"), cfg_path);
  const EncoderConfig& c = e.config_;

  SafetensorsCollection st = SafetensorsCollection::open_dir(dir);
  const std::string file = file_exists(dir + "/model.safetensors.index.json") ? dir + "/model.safetensors.index.json"
                                                                               : dir + "/model.safetensors";
  EncoderTensors ts{st, file, ""};
  const std::string probe = "embeddings.word_embeddings.weight";
  for (const char* p : {"", "bert.", "roberta."})
    if (st.has(p + probe)) {
      ts.prefix = p;
      break;
    }
  if (!st.has(ts.prefix + probe))
    fail("encoder", "{}: missing tensor '{}' (also looked for 'bert.{}' and 'roberta.{}')", file, probe, probe, probe);

  const int64_t C = c.hidden_size, F = c.intermediate_size;
  EncoderWeights& w = e.weights_;
  w.word = ts.take("embeddings.word_embeddings.weight", {c.vocab_size, C});
  w.position = ts.take("embeddings.position_embeddings.weight", {c.max_position_embeddings, C});
  w.token_type = ts.take("embeddings.token_type_embeddings.weight", {c.type_vocab_size, C});
  w.ln_w = ts.take("embeddings.LayerNorm.weight", {C}, "gamma");
  w.ln_b = ts.take("embeddings.LayerNorm.bias", {C}, "beta");
  w.layers.resize(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    EncoderLayerWeights& L = w.layers[l];
    L.wq = ts.take(p + "attention.self.query.weight", {C, C});
    L.bq = ts.take(p + "attention.self.query.bias", {C});
    L.wk = ts.take(p + "attention.self.key.weight", {C, C});
    L.bk = ts.take(p + "attention.self.key.bias", {C});
    L.wv = ts.take(p + "attention.self.value.weight", {C, C});
    L.bv = ts.take(p + "attention.self.value.bias", {C});
    L.wo = ts.take(p + "attention.output.dense.weight", {C, C});
    L.bo = ts.take(p + "attention.output.dense.bias", {C});
    L.ln1_w = ts.take(p + "attention.output.LayerNorm.weight", {C}, "gamma");
    L.ln1_b = ts.take(p + "attention.output.LayerNorm.bias", {C}, "beta");
    L.wi = ts.take(p + "intermediate.dense.weight", {F, C});
    L.bi = ts.take(p + "intermediate.dense.bias", {F});
    L.wout = ts.take(p + "output.dense.weight", {C, F});
    L.bout = ts.take(p + "output.dense.bias", {C});
    L.ln2_w = ts.take(p + "output.LayerNorm.weight", {C}, "gamma");
    L.ln2_b = ts.take(p + "output.LayerNorm.bias", {C}, "beta");
  }
  return e;
}

std::vector<float> Encoder::forward_packed(std::span<const std::vector<int32_t>> seqs) const {
  const EncoderConfig& c = config_;
  const int C = c.hidden_size, F = c.intermediate_size, H = c.num_attention_heads, D = c.head_dim();
  int64_t N = 0;
  for (size_t b = 0; b < seqs.size(); b++) {
    const int64_t len = int64_t(seqs[b].size());
    if (len < 1 || len > c.max_tokens())
      fail("encoder", "{}: sequence {} has {} tokens; the encoder takes 1..{}", dir_, b, len, c.max_tokens());
    for (size_t t = 0; t < seqs[b].size(); t++)
      if (seqs[b][t] < 0 || seqs[b][t] >= c.vocab_size)
        fail("encoder", "{}: sequence {} token {} has id {} outside [0, {})", dir_, b, t, seqs[b][t], c.vocab_size);
    N += len;
  }
  if (N == 0) return {};

  // Activations: x [N,C] the residual stream; q, k, v, att, tmp [N,C]; ffn [N,F].
  std::vector<float> x(size_t(N) * C), q(x.size()), k(x.size()), v(x.size()), att(x.size()), tmp(x.size());
  std::vector<float> ffn(size_t(N) * F);

  // Embeddings: word + position + token type 0, then LayerNorm.
  const float* word = weights_.word.f32();
  const float* pos = weights_.position.f32();
  const float* type0 = weights_.token_type.f32();
  const int off = c.position_offset();
  int64_t row = 0;
  for (const auto& s : seqs)
    for (size_t t = 0; t < s.size(); t++, row++) {
      float* xr = x.data() + size_t(row) * C;
      const float* we = word + size_t(s[t]) * C;
      const float* pe = pos + size_t(off + t) * C;
      for (int i = 0; i < C; i++) xr[i] = we[i] + pe[i] + type0[i];
    }
  const float eps = c.layer_norm_eps;
  layernorm_forward(x.data(), x.data(), weights_.ln_w.f32(), weights_.ln_b.f32(), int(N), C, eps);

  std::vector<int64_t> starts(seqs.size());  // first row of each sequence
  for (size_t b = 1; b < seqs.size(); b++) starts[b] = starts[b - 1] + int64_t(seqs[b - 1].size());
  AttentionOpts bidir;
  bidir.causal = false;
  for (const EncoderLayerWeights& L : weights_.layers) {
    matmul_forward(q.data(), x.data(), L.wq.f32(), L.bq.f32(), int(N), C, C);
    matmul_forward(k.data(), x.data(), L.wk.f32(), L.bk.f32(), int(N), C, C);
    matmul_forward(v.data(), x.data(), L.wv.f32(), L.bv.f32(), int(N), C, C);
    // Each sequence attends over its own rows only: the packed form of the padding mask. Several
    // sequences run in parallel, one per thread (the kernel then runs serially inside: OpenMP does
    // not nest); a single sequence leaves the parallelism to the kernel's loop over heads. Short
    // retrieval passages would otherwise pay one parallel region per sequence and layer.
    const bool per_thread = seqs.size() > 1;
#pragma omp parallel for schedule(dynamic, 1) if (per_thread)
    for (size_t b = 0; b < seqs.size(); b++) {
      const int S = int(seqs[b].size());
      const size_t at = size_t(starts[b]) * C;
      attention_forward(att.data() + at, nullptr, q.data() + at, k.data() + at, v.data() + at, S, S, H, H, D, bidir);
    }
    matmul_forward(tmp.data(), att.data(), L.wo.f32(), L.bo.f32(), int(N), C, C);
    add_forward(tmp.data(), tmp.data(), x.data(), N * C);
    layernorm_forward(x.data(), tmp.data(), L.ln1_w.f32(), L.ln1_b.f32(), int(N), C, eps);
    matmul_forward(ffn.data(), x.data(), L.wi.f32(), L.bi.f32(), int(N), C, F);
    gelu_forward(ffn.data(), ffn.data(), N * F);
    matmul_forward(tmp.data(), ffn.data(), L.wout.f32(), L.bout.f32(), int(N), F, C);
    add_forward(tmp.data(), tmp.data(), x.data(), N * C);
    layernorm_forward(x.data(), tmp.data(), L.ln2_w.f32(), L.ln2_b.f32(), int(N), C, eps);
  }
  return x;
}

std::vector<float> Encoder::forward(const int32_t* ids, const int* lengths, int B, int T) const {
  std::vector<std::vector<int32_t>> seqs(B);
  for (int b = 0; b < B; b++) {
    if (lengths[b] < 1 || lengths[b] > T)
      fail("encoder", "{}: sequence {} has length {} outside [1, {}]", dir_, b, lengths[b], T);
    seqs[b].assign(ids + size_t(b) * T, ids + size_t(b) * T + lengths[b]);
  }
  const int C = config_.hidden_size;
  std::vector<float> packed = forward_packed(seqs);
  std::vector<float> out(size_t(B) * T * C, 0.0f);
  size_t row = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < lengths[b]; t++, row++)
      std::memcpy(out.data() + (size_t(b) * T + t) * C, packed.data() + row * C, sizeof(float) * C);
  return out;
}

}  // namespace lathe
