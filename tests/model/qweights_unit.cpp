// Quantized (Q8_0, Q4_0, Q4_K, Q6_K) and F16 / BF16 weights in the model (docs/quant.md "In the
// model"): linear_forward and the lm_head on the qblock kernels within the documented bound; the logits of a quantized model against the
// same model with its blocks dequantized to f32; a GGUF written with quantized types and loaded as
// stored computes bit for bit what `--weights` (quantize on load) computes, and generates the same;
// training on quantized weights is an error naming the tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/rng.h"
#include "lathe/formats/gguf.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/forward.h"
#include "lathe/model/generate.h"
#include "lathe/model/gguf_export.h"
#include "lathe/model/train_graph.h"
#include "test_util.h"
#include "model/model_logits.h"

using namespace lathe;

namespace {

// Sizes that are multiples of 32 (so every Linear gets blocks) except where a test says otherwise;
// C = 256 for the K-quants (super-blocks of 256).
ModelConfig tiny(Arch arch, bool tied, int64_t F = 96, int64_t C = 64) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 80;
  c.hidden_size = C;
  c.intermediate_size = F;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = C / 4;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.max_position_embeddings = 128;
  c.attention_bias = arch == Arch::Qwen2;
  c.tie_word_embeddings = tied;
  return c;
}

// std 0.15 rather than HF's 0.02: logits spread over several units, so a greedy run is not decided
// by near-ties and a wrong weight changes the output.
Model random_model(const ModelConfig& c, uint64_t seed = 5) { return Model::init_random(c, seed, 0.15f); }

using lathe::test::logits_of;

bool is_kquant(DType t) { return t == DType::Q4_K || t == DType::Q6_K; }
bool is_float(DType t) { return t == DType::F16 || t == DType::BF16; }
int64_t hidden_for(DType t) { return is_kquant(t) ? 256 : 64; }
int64_t ffn_for(DType t) { return is_kquant(t) ? 512 : 96; }
// The output side (lm_head, embedding table) of a model converted to t (docs/quant.md).
DType output_dtype(DType t) { return is_float(t) ? t : is_kquant(t) ? DType::Q6_K : DType::Q8_0; }
GgmlType ggml_of(DType t) {
  switch (t) {
    case DType::Q8_0: return GgmlType::Q8_0;
    case DType::Q4_0: return GgmlType::Q4_0;
    case DType::Q4_K: return GgmlType::Q4_K;
    case DType::Q6_K: return GgmlType::Q6_K;
    case DType::F16: return GgmlType::F16;
    default: return GgmlType::BF16;
  }
}

std::vector<int32_t> greedy(const Model& m, const std::vector<int32_t>& prompt, int n) {
  GenerateParams p;
  p.max_new_tokens = n;
  p.sampling.temperature = 0;
  return generate(m, prompt, p).ids;
}

// A copy of `m` whose block tensors are their f32 dequantization (same values, f32 kernels).
Model dequantized_copy(const Model& m) {
  Model d = m;
  for_each_tensor(d.config, d.weights, [&](TensorSlot& s) {
    if (is_qblock_dtype(s.tensor->dtype)) *s.tensor = dequantize_tensor_qblock(*s.tensor);
  });
  if (is_qblock_dtype(d.weights.lm_head.dtype)) d.weights.lm_head = dequantize_tensor_qblock(d.weights.lm_head);
  return d;
}

// The bound of kernels/cpu/qblock.h for out[m][n] = x[m] · ŵ[n] (ŵ the dequantized weight row):
//   Σ_blocks amax_b(x) (1/254 + 2^-22) ‖ŵ_b‖₁   (activation quantization)
// plus the f32 accumulation: (K/32 + 8) roundings of partial sums bounded by Σ |ŵ_j| (|x_j| + amax_b/254)
// (Q4_K's scale and min products cancel, so its partial sums may be a few times larger: 4x).
// F16 / BF16 rows take the activations as they are: the f32 accumulation only, K + 8 roundings.
double qblock_bound(const float* x, const float* w, int64_t K, DType t) {
  if (is_float(t)) {
    double mag = 0;
    for (int64_t k = 0; k < K; k++) mag += std::fabs(double(w[k]) * x[k]);
    return double(K + 8) * std::ldexp(1.0, -24) * mag;
  }
  double quant = 0, mag = 0;
  for (int64_t b = 0; b < K / 32; b++) {
    double amax = 0, wl1 = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, double(std::fabs(x[b * 32 + j])));
    for (int j = 0; j < 32; j++) {
      wl1 += std::fabs(w[b * 32 + j]);
      mag += std::fabs(w[b * 32 + j]) * (std::fabs(x[b * 32 + j]) + amax / 254);
    }
    quant += amax * (1.0 / 254 + std::ldexp(1.0, -22)) * wl1;
  }
  return quant + double(K / 32 + 8) * std::ldexp(1.0, -24) * mag * (t == DType::Q4_K ? 4 : 1);
}

// Checks out[M, N] of `l` on x[M, K] against an f64 product with the dequantized weight.
void expect_within_bound(const LinearRef& l, const std::vector<float>& x, int M) {
  const int64_t N = l.w->dim(0), K = l.w->dim(1);
  Tensor wd = dequantize_tensor_qblock(*l.w);
  std::vector<float> y(size_t(M) * N);
  linear_forward(l, x.data(), y.data(), M, AdapterContext{});
  int checked = 0;
  for (int m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      const float* xr = x.data() + size_t(m) * K;
      const float* wr = wd.f32() + size_t(n) * K;
      double exact = l.b ? double(l.b->f32()[n]) : 0.0;
      for (int64_t k = 0; k < K; k++) exact += double(xr[k]) * double(wr[k]);
      const double err = std::fabs(double(y[size_t(m) * N + n]) - exact), bound = qblock_bound(xr, wr, K, l.w->dtype);
      ASSERT_LE(err, bound) << "row " << m << " col " << n << " of " << linear_ref_name(l.layer, l.id);
      checked++;
    }
  EXPECT_EQ(checked, M * N);
}

const std::vector<int32_t> kIds = {1, 5, 9, 33, 2, 60, 17, 42, 7, 79, 3};

}  // namespace

class QWeights : public ::testing::TestWithParam<DType> {};

TEST_P(QWeights, QuantizeOnLoadChoosesTypesPerTensor) {
  const DType t = GetParam();
  const int64_t C = hidden_for(t);
  Model m = random_model(tiny(Arch::Llama, /*tied=*/true, /*F=*/100, C));  // down_proj's K = 100: no blocks
  const float e0 = m.weights.embed.f32()[C + 59];
  const size_t f32_bytes = m.weight_bytes_f32;
  quantize_model_weights(m, t);
  const LayerWeights& l = m.weights.layers[1];
  EXPECT_EQ(l.wq.dtype, t);
  EXPECT_EQ(l.w_gate.dtype, t);
  EXPECT_EQ(l.w_down.dtype, is_float(t) ? t : DType::F16);  // no block layout: F16, as the GGUF writer stores it
  EXPECT_EQ(l.attn_norm.dtype, DType::F32);
  EXPECT_EQ(m.weights.lm_head.dtype, output_dtype(t));  // the output side: 8 or 6 bits for 4-bit types
  EXPECT_EQ(m.weights.embed.dtype, output_dtype(t));
  EXPECT_EQ(m.weights.lm_head.data, m.weights.embed.data);  // tied: one set of blocks
  EXPECT_NEAR(dequantize_tensor_qblock(m.weights.embed).f32()[C + 59], e0, 0.01);
  // The lookup dequantizes the rows it needs: row 1 of the table, element 59.
  std::vector<float> row(C);
  const int32_t id = 1;
  embed_rows(m, &id, 1, row.data());
  EXPECT_EQ(row[59], dequantize_tensor_qblock(m.weights.embed).f32()[C + 59]);
  EXPECT_LT(m.weight_bytes_f32, f32_bytes);
  EXPECT_EQ(m.weight_bytes_f32, model_weight_bytes(m));
}

// Every product of the quantized model goes through linear_forward (the blocks' Linear weights and
// the lm_head): each is within the bound of kernels/cpu/qblock.h against the dequantized weight.
TEST_P(QWeights, ProductsWithinTheDocumentedBound) {
  Model m = random_model(tiny(Arch::Qwen2, /*tied=*/false, ffn_for(GetParam()), hidden_for(GetParam())));  // q/k/v biases
  quantize_model_weights(m, GetParam());
  Rng rng(11);
  const int M = 11;  // decode (M = 1 inside the kernel's groups of 8) and a batch beyond 8
  for (LinearId id : {LinearId::Q, LinearId::Down}) {
    LinearRef l = block_linear(m, 1, id);
    ASSERT_EQ(l.w->dtype, GetParam());
    std::vector<float> x(size_t(M) * l.w->dim(1));
    for (size_t i = 0; i < x.size(); i++) x[i] = rng.normal() * (i % 37 == 0 ? 20.0f : 1.0f);  // outliers
    expect_within_bound(l, x, M);
  }
  // The lm_head on the model's own final hidden rows.
  Forward f(m, int(kIds.size()));
  KVCache cache = KVCache::create(m.config, int(kIds.size()));
  const float* h = f.hidden(kIds.data(), int(kIds.size()), &cache);
  std::vector<float> hidden(h, h + kIds.size() * size_t(m.config.hidden_size));
  LinearRef head;
  head.w = &m.weights.lm_head;
  ASSERT_EQ(head.w->dtype, output_dtype(GetParam()));
  expect_within_bound(head, hidden, int(kIds.size()));
  std::vector<float> via_forward(kIds.size() * size_t(m.config.vocab_size)), via_linear(via_forward.size());
  f.logits(hidden.data(), int(kIds.size()), via_forward.data());
  linear_forward(head, hidden.data(), via_linear.data(), int(kIds.size()), AdapterContext{});
  EXPECT_EQ(via_forward, via_linear);  // Forward::logits is linear_forward on the lm_head
}

// The whole model: the quantized one against the same weights dequantized to f32. They differ only
// by the 8-bit activation blocks: per element an error of RMS about amax/440 (uniform within ±d/2),
// so each product is off by ~0.5% RMS for Gaussian-like rows, compounded through the layers.
// Measured at init std 0.1: 1.2-1.4% RMS of the logits, 1.0-1.8% of the largest logit at worst
// (0.6% at HF's std 0.02, 2.6% at 0.3, where attention and SwiGLU amplify more; docs/quant.md).
// Checked at 2% RMS and 4% max. F16 / BF16 differ only by the order of f32 additions: 1e-5 RMS.
// The K-quant model is 4x wider (hidden 256): its init std is halved so that std·sqrt(hidden), the
// gain the layers amplify the 8-bit error with, is the narrow model's (at std 0.1 it measured 2.5-2.9%
// RMS, as the narrow model does at std 0.2-0.3).
TEST_P(QWeights, LogitsAgreeWithTheDequantizedModel) {
  const DType t = GetParam();
  for (bool tied : {false, true}) {
    Model q = Model::init_random(tiny(Arch::Llama, tied, ffn_for(t), hidden_for(t)), 5,
                                 0.1f * std::sqrt(64.0f / float(hidden_for(t))));
    quantize_model_weights(q, GetParam());
    Model d = dequantized_copy(q);
    ASSERT_EQ(d.weights.layers[0].wq.dtype, DType::F32);
    std::vector<float> lq = logits_of(q, kIds), ld = logits_of(d, kIds);
    double max_err = 0, range = 0, se = 0, sl = 0;
    for (size_t i = 0; i < lq.size(); i++) {
      const double e = double(lq[i]) - ld[i];
      max_err = std::max(max_err, std::fabs(e));
      range = std::max(range, std::fabs(double(ld[i])));
      se += e * e;
      sl += double(ld[i]) * ld[i];
    }
    const double rel_rms = std::sqrt(se / sl);
    EXPECT_GT(range, 1.0);  // logits of a few units: the relative checks mean something
    EXPECT_LE(rel_rms, is_float(t) ? 1e-5 : 0.02) << "tied " << tied;
    EXPECT_LE(max_err, (is_float(t) ? 1e-5 : 0.04) * range) << "tied " << tied;
    if (!is_float(t)) EXPECT_GT(max_err, 0.0);  // the activations really were quantized
    std::printf("[ %s tied=%d ] logits vs the dequantized f32 model: RMS error %.3g%% of RMS logit, max %.3g "
                "(%.3g%% of max |logit| %.3g)\n",
                dtype_name(GetParam()).data(), int(tied), 100 * rel_rms, max_err, 100 * max_err / range, range);
  }
}

// `lathe quantize` (add_model_to_gguf with Q8_0/Q4_0) then a load that keeps the blocks is the
// same model as `--weights TYPE` on the f32 source: bit-identical logits, identical greedy ids.
// Llama permutes q/k rows in GGUF (the byte-row permutation runs both ways), Qwen2 does not and
// has biases; one model ties its embeddings (lm_head = the token_embd blocks).
TEST_P(QWeights, QuantizedGgufComputesWhatWeightsComputes) {
  const DType type = GetParam();
  const GgmlType gtype = ggml_of(type);
  for (auto [arch, tied] : {std::pair{Arch::Llama, false}, std::pair{Arch::Llama, true}, std::pair{Arch::Qwen2, false}}) {
    SCOPED_TRACE(std::string(arch == Arch::Llama ? "llama" : "qwen2") + (tied ? " tied" : ""));
    // down_proj without blocks (K = 100): F16 in the file and in memory.
    Model src = random_model(tiny(arch, tied, /*F=*/100, hidden_for(type)));
    test::TempDir dir;
    GgufWriter w;
    add_model_to_gguf(src, gtype, "tiny", w);
    w.write(dir / "m.gguf");
    Model onload = src;
    quantize_model_weights(onload, type);
    Model file = Model::load_gguf(dir / "m.gguf", WeightFormat::Auto);

    GgufFile g = GgufFile::open(dir / "m.gguf");
    EXPECT_EQ(g.tensor_info("blk.0.attn_q.weight").ggml_type, uint32_t(gtype));
    EXPECT_EQ(g.tensor_info("blk.0.ffn_down.weight").ggml_type, uint32_t(is_float(type) ? gtype : GgmlType::F16));
    EXPECT_EQ(g.tensor_info("token_embd.weight").ggml_type, uint32_t(ggml_of(output_dtype(type))));
    const int64_t ftype = type == DType::Q8_0 ? 7 : type == DType::Q4_0 ? 2 : type == DType::Q4_K ? 14
                        : type == DType::Q6_K ? 18 : type == DType::F16 ? 1 : 32;
    EXPECT_EQ(g.get_int("general.file_type", -1), ftype);
    EXPECT_EQ(file.weights.layers[0].wq.dtype, type);
    EXPECT_EQ(file.weights.layers[0].w_up.dtype, type);
    EXPECT_EQ(file.weights.lm_head.dtype, output_dtype(type));
    EXPECT_EQ(file.weights.embed.dtype, output_dtype(type));
    EXPECT_EQ(file.weights.embed.data == file.weights.lm_head.data, tied);
    // Same blocks, byte for byte (q/k permuted into GGUF order and back).
    for (LinearId id : linear_ids(src.config)) {
      const Tensor &a = linear_weight(onload.weights.layers[1], id), &b = linear_weight(file.weights.layers[1], id);
      ASSERT_EQ(a.dtype, b.dtype) << linear_id_name(id);
      EXPECT_EQ(0, std::memcmp(a.data, b.data, a.nbytes())) << linear_id_name(id);
    }
    EXPECT_EQ(0, std::memcmp(onload.weights.lm_head.data, file.weights.lm_head.data, file.weights.lm_head.nbytes()));
    EXPECT_EQ(0, std::memcmp(onload.weights.embed.data, file.weights.embed.data, file.weights.embed.nbytes()));
    EXPECT_EQ(onload.weight_bytes_f32, file.weight_bytes_f32);
    // Blocks are used in place: views sharing the file mapping's owner, not copies (only the
    // permuted q/k of llama are copied).
    EXPECT_EQ(file.weights.layers[0].wv.owner, file.weights.layers[1].w_up.owner);
    EXPECT_EQ(file.weights.layers[0].wv.owner, file.weights.lm_head.owner);
    EXPECT_EQ(file.weights.layers[0].wq.owner == file.weights.layers[0].wv.owner, arch == Arch::Qwen2);
    EXPECT_EQ(logits_of(onload, kIds), logits_of(file, kIds));
    std::vector<int32_t> a = greedy(onload, {1, 5, 9}, 40), b = greedy(file, {1, 5, 9}, 40);
    EXPECT_EQ(a, b);
    if (type == DType::Q4_0 || type == DType::Q4_K)  // 4 bits changed something: the comparison means something
      EXPECT_NE(a, greedy(src, {1, 5, 9}, 40));

    // --weights f32 on the same file: every tensor dequantized (the behaviour before).
    Model f32 = Model::load_gguf(dir / "m.gguf", WeightFormat::F32);
    EXPECT_EQ(f32.weights.layers[0].wq.dtype, DType::F32);
    EXPECT_EQ(f32.weights.lm_head.dtype, DType::F32);
  }
}

TEST_P(QWeights, TrainingOnQuantizedWeightsIsAnError) {
  Model m = random_model(tiny(Arch::Llama, false, ffn_for(GetParam()), hidden_for(GetParam())));
  quantize_model_weights(m, GetParam());
  std::string e = test::error_of([&] { TrainGraph g(m, nullptr, nullptr, false); });
  EXPECT_NE(e.find("tensor 'model.embed_tokens.weight' is " + std::string(dtype_name(output_dtype(GetParam())))),
            std::string::npos) << e;  // the first one visited
  EXPECT_NE(e.find("f32 weights to train"), std::string::npos) << e;
  Model f = Model::init_random(m.config, 5);  // f32 except one Linear
  f.weights.layers[1].wk = m.weights.layers[1].wk;
  e = test::error_of([&] { TrainGraph g(f, nullptr, nullptr, false); });
  EXPECT_NE(e.find("tensor 'model.layers.1.self_attn.k_proj.weight' is " + std::string(dtype_name(GetParam()))),
            std::string::npos) << e;
  const int64_t C = m.config.hidden_size, F = m.config.intermediate_size;
  std::vector<float> x(size_t(2) * F, 0.5f), dy(size_t(2) * C, 1.0f), dx(size_t(2) * F, 0.0f);
  e = test::error_of([&] { linear_backward(block_linear(m, 1, LinearId::Down), x.data(), dy.data(), dx.data(), 2, {}); });
  EXPECT_NE(e.find("weight 'layers.1.down_proj'"), std::string::npos) << e;
  EXPECT_NE(e.find("quantized weights are for inference"), std::string::npos) << e;
  e = test::error_of([&] { make_weights_owned(f); });  // full fine-tuning's first step
  EXPECT_NE(e.find("k_proj.weight' is " + std::string(dtype_name(GetParam())) + ": full fine-tuning needs f32"),
            std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(Types, QWeights,
                         ::testing::Values(DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// The loader's choices on a file of one type: --weights of the other type re-quantizes the matrices.
TEST(QWeightsLoad, OtherTypeIsRequantized) {
  Model src = random_model(tiny(Arch::Qwen2, false));
  test::TempDir dir;
  GgufWriter w;
  add_model_to_gguf(src, GgmlType::Q4_0, "tiny", w);
  w.write(dir / "m.gguf");
  Model m = Model::load_gguf(dir / "m.gguf", WeightFormat::Q8_0);
  EXPECT_EQ(m.weights.layers[0].wq.dtype, DType::Q8_0);
  EXPECT_EQ(m.weights.lm_head.dtype, DType::Q8_0);
  Model a = Model::load(dir / "m.gguf", WeightFormat::Auto);
  EXPECT_EQ(a.weights.layers[0].wq.dtype, DType::Q4_0);
  EXPECT_EQ(parse_weight_format("q4_0"), WeightFormat::Q4_0);
  std::string e = test::error_of([] { parse_weight_format("q5_k", "--weights"); });
  EXPECT_NE(e.find("--weights: unknown weight format 'q5_k'"), std::string::npos) << e;
}

// An HF checkpoint stored in bf16 (as most are) quantized on load matrix by matrix, as it is read (one
// f32 matrix at a time): the same bytes as converting the whole model to f32 first and quantizing it.
TEST(QWeightsLoad, HfBf16CheckpointQuantizedAsRead) {
  Model src = random_model(tiny(Arch::Llama, false, /*F=*/100));  // down_proj's K = 100: the F16 fallback
  test::TempDir dir;
  src.save_hf_dir(dir / "m");
  std::vector<std::pair<std::string, Tensor>> bf16;
  for_each_tensor(src.config, src.weights, [&](TensorSlot& s) {
    Tensor t = Tensor::empty(DType::BF16, s.tensor->shape);
    for (int64_t i = 0; i < t.numel(); i++) t.as<uint16_t>()[i] = f32_to_bf16(s.tensor->f32()[i]);
    bf16.emplace_back(s.hf_name, t);
  });
  safetensors_write(dir / "m/model.safetensors", bf16);
  for (WeightFormat f : {WeightFormat::Q8_0, WeightFormat::Q4_K, WeightFormat::F16, WeightFormat::BF16}) {
    Model a = Model::load_hf_dir(dir / "m", f), b = Model::load_hf_dir(dir / "m", WeightFormat::F32);
    quantize_model_weights(b, weight_format_dtype(f));
    std::vector<Tensor*> tb;
    for_each_tensor(b.config, b.weights, [&](TensorSlot& s) { tb.push_back(s.tensor); });
    size_t i = 0, matrices = 0;
    for_each_tensor(a.config, a.weights, [&](TensorSlot& s) {
      const Tensor& x = *s.tensor;
      const Tensor& y = *tb[i++];
      ASSERT_EQ(x.dtype, y.dtype) << s.hf_name << " " << weight_format_name(f);
      ASSERT_EQ(x.nbytes(), y.nbytes()) << s.hf_name;
      EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes()), 0) << s.hf_name << " " << weight_format_name(f);
      matrices += s.role == TensorRole::Matrix && s.layer >= 0;
    });
    EXPECT_EQ(i, tb.size());
    EXPECT_GT(matrices, 0u);
    EXPECT_EQ(a.weights.layers[0].w_down.dtype, f == WeightFormat::BF16 ? DType::BF16 : DType::F16);
    EXPECT_EQ(a.weight_bytes_f32, b.weight_bytes_f32);
  }
}

// A QLoRA adapter over a quantized GGUF loaded as stored (generate --adapter on a Q8_0 file): the
// base becomes NF4 of the blocks' values, the same NF4 base as when the file was dequantized on load.
TEST(QWeightsLoad, QloraBaseFromBlocks) {
  Model src = random_model(tiny(Arch::Llama, false));
  test::TempDir dir;
  GgufWriter w;
  add_model_to_gguf(src, GgmlType::Q8_0, "tiny", w);
  w.write(dir / "m.gguf");
  Model a = Model::load_gguf(dir / "m.gguf", WeightFormat::Auto), b = Model::load_gguf(dir / "m.gguf", WeightFormat::F32);
  ASSERT_EQ(a.weights.layers[0].wq.dtype, DType::Q8_0);
  quantize_model_nf4(a);
  quantize_model_nf4(b);
  EXPECT_EQ(a.weights.layers[0].wq.dtype, DType::NF4);
  // Same NF4 layers; a keeps its Q8_0 table and lm_head, b has them in f32 with the same values.
  b.weights.embed = a.weights.embed;
  b.weights.lm_head = a.weights.lm_head;
  EXPECT_EQ(logits_of(a, kIds), logits_of(b, kIds));
}

// K-quant rows need a multiple of 256: other lengths fall back, as llama.cpp falls back (docs/quant.md):
// Q8_0 for a multiple of 32, F16 otherwise; the output side is Q6_K when it can be, else Q8_0.
TEST(QWeightsLoad, KQuantFallbacks) {
  Model m = random_model(tiny(Arch::Llama, false, /*F=*/288, /*C=*/256));
  quantize_model_weights(m, DType::Q4_K);
  EXPECT_EQ(m.weights.layers[0].w_gate.dtype, DType::Q4_K);  // K = 256
  EXPECT_EQ(m.weights.layers[0].w_down.dtype, DType::Q8_0);  // K = 288
  EXPECT_EQ(m.weights.lm_head.dtype, DType::Q6_K);
  Model s = random_model(tiny(Arch::Llama, true));  // C = 64
  quantize_model_weights(s, DType::Q6_K);
  EXPECT_EQ(s.weights.layers[0].wq.dtype, DType::Q8_0);
  EXPECT_EQ(s.weights.lm_head.dtype, DType::Q8_0);
  // The kernel layer itself names the type and the row length.
  Tensor w = Tensor::empty(DType::F32, {4, 288});
  std::string e = test::error_of([&] { quantize_tensor_qblock(w, DType::Q4_K, "model.layers.0.mlp.down_proj.weight"); });
  EXPECT_NE(e.find("tensor 'model.layers.0.mlp.down_proj.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("Q4_K needs rows of a multiple of 256 elements, got 288"), std::string::npos) << e;
}

// What llama-quantize writes for Q4_0 (Q4_0 matrices, output.weight Q6_K) loads and runs: the Q6_K
// lm_head is kept as stored (auto) or dequantized (f32), and auto's logits agree with the f32 load of
// the same file within the activation-quantization error (2% RMS, as above, at the same gain).
TEST(QWeightsLoad, LlamaCppQ4_0FileWithQ6KOutput) {
  Model src = Model::init_random(tiny(Arch::Llama, false, 512, 256), 5, 0.05f);
  test::TempDir dir;
  {
    GgufWriter w;
    add_model_to_gguf(src, GgmlType::Q4_0, "tiny", w);
    w.write(dir / "q4.gguf");
  }
  GgufFile g = GgufFile::open(dir / "q4.gguf");
  GgufWriter w;
  for (const auto& [k, v] : g.metadata()) w.set_value(k, v);
  for (const GgufTensorInfo& t : g.tensors()) {
    if (t.name == "output.weight") {
      Tensor q = quantize_tensor_qblock(src.weights.lm_head, DType::Q6_K, t.name);
      w.add_tensor_raw(t.name, q.shape, uint32_t(GgmlType::Q6_K),
                       std::vector<uint8_t>(q.as<uint8_t>(), q.as<uint8_t>() + q.nbytes()));
    } else {
      const uint8_t* p = g.tensor_data(t.name);
      w.add_tensor_raw(t.name, t.shape(), t.ggml_type, std::vector<uint8_t>(p, p + t.nbytes));
    }
  }
  w.write(dir / "mixed.gguf");
  Model a = Model::load_gguf(dir / "mixed.gguf", WeightFormat::Auto);
  Model f = Model::load_gguf(dir / "mixed.gguf", WeightFormat::F32);
  EXPECT_EQ(a.weights.lm_head.dtype, DType::Q6_K);
  EXPECT_EQ(a.weights.layers[0].wq.dtype, DType::Q4_0);
  EXPECT_EQ(f.weights.lm_head.dtype, DType::F32);
  // --weights q4_0 keeps the file's Q6_K output (the file decided).
  EXPECT_EQ(Model::load_gguf(dir / "mixed.gguf", WeightFormat::Q4_0).weights.lm_head.dtype, DType::Q6_K);
  std::vector<float> la = logits_of(a, kIds), lf = logits_of(f, kIds);
  double se = 0, sl = 0;
  for (size_t i = 0; i < la.size(); i++) se += (double(la[i]) - lf[i]) * (double(la[i]) - lf[i]), sl += double(lf[i]) * lf[i];
  EXPECT_LE(std::sqrt(se / sl), 0.02);
  EXPECT_GT(se, 0.0);
}
