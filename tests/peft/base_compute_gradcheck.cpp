// LoRA through a frozen base run in bf16 / int8 (--base-compute, kernels/cpu/base_compute.h):
//  * the adapter's gradients, computed through the lower-precision base products, against finite
//    differences of the same lower-precision loss (tolerances and why: below);
//  * the same gradients against the f32 ones (the quality cost in the gradient itself);
//  * a short AdamW run: its loss curve stays within a stated tolerance of f32's;
//  * f32 stays the default and bitwise what it was (the golden tests pin that; here: f32 twice).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lathe/core/rng.h"
#include "lathe/kernels/cpu/base_compute.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/lora.h"
#include "lathe/train/adamw.h"
#include "test_util.h"

namespace {

using lathe::BaseCompute;

struct ComputeScope {
  explicit ComputeScope(BaseCompute c) { lathe::set_base_compute(c); }
  ~ComputeScope() { lathe::set_base_compute(BaseCompute::F32), lathe::base_compute_release(); }
};

lathe::ModelConfig small(int hidden, int inter, int vocab) {
  lathe::ModelConfig c;
  c.arch = lathe::Arch::Llama;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = hidden / 4;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = true;
  lathe::config_set_family_flags(c);
  return c;
}

lathe::Model model_for(const lathe::ModelConfig& c, float scale) {
  lathe::Model m = lathe::Model::init_random(c, 5);
  lathe::Rng r(11);
  lathe::for_each_tensor(m.config, m.weights, [&](lathe::TensorSlot& s) {
    float* p = s.tensor->f32();
    for (int64_t i = 0; i < s.tensor->numel(); i++)
      p[i] = s.role == lathe::TensorRole::Norm ? 1.0f + 0.2f * r.normal() : scale * r.normal();
  });
  return m;
}

std::unique_ptr<lathe::LoraAdapter> lora(const lathe::ModelConfig& c, int r, uint64_t seed, bool random_b) {
  lathe::LoraConfig lc;
  lc.r = r;
  lc.alpha = 2 * r;
  lc.target_modules = {"all-linear"};
  auto a = lathe::LoraAdapter::create(c, lc, seed);
  lathe::Rng rng(seed + 1);
  if (random_b)
    for (auto* p : a->params())
      if (p->name.find("lora_B") != std::string::npos)
        for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.3f * rng.normal();
  return a;
}

lathe::PackedBatch batch(int vocab, int seqs, int len, uint64_t seed) {
  lathe::Rng r(seed);
  lathe::PackedBatch b;
  for (int s = 0; s < seqs; s++) {
    std::vector<int32_t> ids(len);
    for (auto& t : ids) t = int32_t(r.next_u64() % uint64_t(vocab));
    b.add(ids, ids);
  }
  return b;
}

double mean_loss(lathe::TrainGraph& g, const lathe::PackedBatch& b) {
  int64_t n = 0;
  return g.forward_loss(b, &n) / double(n);
}

std::vector<std::vector<float>> grads_under(BaseCompute c, lathe::TrainGraph& g, lathe::LoraAdapter& a,
                                            const lathe::PackedBatch& b) {
  ComputeScope cs(c);
  for (auto* p : a.params()) std::fill(p->grad.f32(), p->grad.f32() + p->grad.numel(), 0.0f);
  int64_t n = 0;
  g.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
  std::vector<std::vector<float>> out;
  for (auto* p : a.params()) out.emplace_back(p->grad.f32(), p->grad.f32() + p->grad.numel());
  return out;
}

class BaseComputeGrad : public ::testing::TestWithParam<BaseCompute> {};

// The adapter's gradients computed through the lower-precision base products, against finite
// differences of the f32 loss (the function they approximate). Not of the lower-precision loss
// itself: that rounds its activations per call (bf16: 8 significant bits; int8: 127 levels a row),
// so it is piecewise constant at the scale of a finite-difference step, and its central differences
// are dominated by rounding jumps (measured: 20-190% off for bf16 at h = 1e-2, any h large enough to
// average them biases the quotient). The analytic gradient treats the activations' rounding as the
// identity (straight-through) with the rounded weights, as mixed-precision training does. Tolerance
// per checked entry (the two largest of every LoRA tensor, Richardson-extrapolated central
// differences, h = 2e-3 as the f32 gradcheck): 5% for bf16, 15% for int8 (f32's check: 2%), and
// the cosine over all checked entries > 0.999 / 0.99. Why that much: each product carries a
// relative error of ~2⁻⁸ (bf16) or ~1/127 of the row maximum (int8) per element, through about 10
// products from the loss to a layer-0 parameter, and a gradient entry is a sum over few tokens.
TEST_P(BaseComputeGrad, LoraGradientsMatchF32FiniteDifferences) {
  const BaseCompute c = GetParam();
  if (!lathe::base_compute_available(c)) GTEST_SKIP() << lathe::base_compute_unavailable_reason(c);
  auto cfg = small(32, 48, 41);
  auto m = model_for(cfg, 0.2f);
  auto a = lora(cfg, 4, 1, true);
  auto b = batch(cfg.vocab_size, 2, 12, 3);
  lathe::TrainGraph g(m, &a->adapters(), nullptr, false);
  const auto grads = grads_under(c, g, *a, b);
  const double tol = c == BaseCompute::BF16 ? 0.05 : 0.15, min_cos = c == BaseCompute::BF16 ? 0.999 : 0.99;
  double dot = 0, aa = 0, nn = 0, worst = 0;
  size_t pi = 0;
  for (auto* p : a->params()) {
    const std::vector<float>& gr = grads[pi++];
    std::vector<int64_t> order(gr.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = int64_t(i);
    std::partial_sort(order.begin(), order.begin() + 2, order.end(),
                      [&](int64_t x, int64_t y) { return std::fabs(gr[x]) > std::fabs(gr[y]); });
    for (int j = 0; j < 2; j++) {
      const int64_t i = order[j];
      float* v = p->value.f32() + i;
      const float orig = *v;
      auto quotient = [&](float h) {
        *v = orig + h;
        const double lp = mean_loss(g, b);
        *v = orig - h;
        const double lm = mean_loss(g, b);
        *v = orig;
        return (lp - lm) / (2.0 * h);
      };
      const double num = (4.0 * quotient(1e-3f) - quotient(2e-3f)) / 3.0, ana = gr[i];
      const double rel = std::fabs(ana - num) / std::max(std::fabs(num), 1e-2);
      worst = std::max(worst, rel);
      EXPECT_LE(rel, tol) << p->name << " entry " << i << ": analytic " << ana << " numeric " << num;
      dot += ana * num, aa += ana * ana, nn += num * num;
    }
  }
  const double cos = dot / std::sqrt(aa * nn);
  EXPECT_GT(cos, min_cos);
  std::printf("%s: worst relative difference %.4f, cosine %.6f over %zu tensors\n", lathe::base_compute_name(c), worst,
              cos, grads.size());
}

// The same gradient against f32's: what lower precision costs the update direction.
TEST_P(BaseComputeGrad, LoraGradientsCloseToF32) {
  const BaseCompute c = GetParam();
  if (!lathe::base_compute_available(c)) GTEST_SKIP() << lathe::base_compute_unavailable_reason(c);
  auto cfg = small(64, 96, 53);
  auto m = model_for(cfg, 0.1f);
  auto a = lora(cfg, 8, 2, true);
  auto b = batch(cfg.vocab_size, 2, 24, 4);
  lathe::TrainGraph g(m, &a->adapters(), nullptr, false);
  const auto f = grads_under(BaseCompute::F32, g, *a, b), f2 = grads_under(BaseCompute::F32, g, *a, b);
  const auto q = grads_under(c, g, *a, b);
  double dot = 0, ff = 0, qq = 0, diff = 0;
  for (size_t t = 0; t < f.size(); t++) {
    ASSERT_EQ(f[t], f2[t]) << "f32 must be deterministic";  // bitwise
    for (size_t i = 0; i < f[t].size(); i++) {
      dot += double(f[t][i]) * q[t][i], ff += double(f[t][i]) * f[t][i], qq += double(q[t][i]) * q[t][i];
      diff += (double(f[t][i]) - q[t][i]) * (double(f[t][i]) - q[t][i]);
    }
  }
  const double cos = dot / std::sqrt(ff * qq), rel = std::sqrt(diff / ff);
  std::printf("%s vs f32: gradient cosine %.6f, relative L2 difference %.4f\n", lathe::base_compute_name(c), cos, rel);
  EXPECT_GT(cos, c == BaseCompute::BF16 ? 0.999 : 0.99);
  EXPECT_LT(rel, c == BaseCompute::BF16 ? 0.03 : 0.12);
  EXPECT_GT(rel, 0.0) << "lower precision gave f32's bits: the compute was not used";
}

// 40 AdamW steps (lr 3e-3) of LoRA r8 on one batch from the same start: the loss curve under bf16 / int8 stays within
// 1% (bf16) / 3% (int8) of f32's at every step, and the final losses within 0.5% / 2%.
TEST_P(BaseComputeGrad, ShortLoraRunTracksF32) {
  const BaseCompute c = GetParam();
  if (!lathe::base_compute_available(c)) GTEST_SKIP() << lathe::base_compute_unavailable_reason(c);
  auto cfg = small(64, 96, 53);
  auto run = [&](BaseCompute bc) {
    auto m = model_for(cfg, 0.1f);
    auto a = lora(cfg, 8, 2, false);
    lathe::TrainGraph g(m, &a->adapters(), nullptr, false);
    lathe::AdamW opt(a->params(), lathe::AdamWConfig{});
    ComputeScope cs(bc);
    std::vector<double> losses;
    const auto b = batch(cfg.vocab_size, 2, 24, 100);
    for (int step = 0; step < 40; step++) {
      for (auto* p : a->params()) std::fill(p->grad.f32(), p->grad.f32() + p->grad.numel(), 0.0f);
      int64_t n = 0;
      losses.push_back(g.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true}) / double(n));
      opt.step(3e-3);
    }
    return losses;
  };
  const auto f = run(BaseCompute::F32), q = run(c);
  const double step_tol = c == BaseCompute::BF16 ? 0.01 : 0.03, final_tol = c == BaseCompute::BF16 ? 0.005 : 0.02;
  double worst = 0;
  for (size_t i = 0; i < f.size(); i++) {
    worst = std::max(worst, std::fabs(q[i] - f[i]) / f[i]);
    EXPECT_NEAR(q[i], f[i], step_tol * f[i]) << "step " << i + 1;
  }
  EXPECT_LT(f.back(), f.front() - 0.1) << "the run must learn for the comparison to mean something";
  EXPECT_NEAR(q.back(), f.back(), final_tol * f.back());
  std::printf("%s: loss %.5f -> %.5f (f32 %.5f -> %.5f), worst per-step relative difference %.5f\n",
              lathe::base_compute_name(c), q.front(), q.back(), f.front(), f.back(), worst);
}

INSTANTIATE_TEST_SUITE_P(Computes, BaseComputeGrad, ::testing::Values(BaseCompute::BF16, BaseCompute::Int8),
                         [](const auto& info) { return std::string(lathe::base_compute_name(info.param)); });

}  // namespace
