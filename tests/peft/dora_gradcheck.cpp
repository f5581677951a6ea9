// DoRA's backward against finite differences of the whole training graph's loss, on tiny random
// models (Llama; Qwen2 with q/k/v biases; Phi-3's fused projections): the magnitude vectors directly,
// A and B with the row norms held fixed (the norm is detached, as in PEFT, so its own dependence on
// A and B is not part of the gradient). Also: DoRA over an NF4 base (QLoRA) is DoRA over the
// dequantized base, and a merged DoRA adapter gives the adapter's logits.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "lathe/core/rng.h"
#include "lathe/model/forward.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/lora.h"
#include "peft/peft_golden_util.h"
#include "test_util.h"

namespace {

using lathe::test::peft_golden::logits_of;

lathe::ModelConfig tiny(lathe::Arch arch) {
  lathe::ModelConfig c;
  c.arch = arch;
  c.vocab_size = 37;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = arch == lathe::Arch::Qwen2;
  lathe::config_set_family_flags(c);
  return c;
}

lathe::Model model_for(const lathe::ModelConfig& c) {
  lathe::Model m = lathe::Model::init_random(c, 5);
  lathe::Rng r(11);
  lathe::for_each_tensor(m.config, m.weights, [&](lathe::TensorSlot& s) {
    float* p = s.tensor->f32();
    for (int64_t i = 0; i < s.tensor->numel(); i++)
      p[i] = s.role == lathe::TensorRole::Norm ? 1.0f + 0.2f * r.normal() : 0.4f * r.normal();
  });
  return m;
}

lathe::PackedBatch batch() {
  lathe::PackedBatch b;
  b.add({1, 5, 9, 3, 30, 2}, {-100, -100, 9, 3, 30, 2});
  b.add({4, 4, 8, 36}, {4, 4, 8, 36});
  return b;
}

// All-linear DoRA with B non-zero and the magnitudes 0.7..1.3 of the row norms (every term matters).
std::unique_ptr<lathe::LoraAdapter> dora_adapter(const lathe::Model& m, uint64_t seed) {
  lathe::LoraConfig lc;
  lc.r = 3;
  lc.alpha = 6;
  lc.use_dora = true;
  lc.target_modules = {"all-linear"};
  auto a = lathe::LoraAdapter::create(m.config, lc, seed);
  lathe::Rng rng(seed + 1);
  for (auto* p : a->params())
    if (p->name.find("lora_B") != std::string::npos)
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.3f * rng.normal();
  a->init_dora_magnitude(m);
  for (auto* p : a->params())
    if (p->name.ends_with("lora_magnitude_vector"))
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] *= 1.0f + 0.3f * (2 * rng.uniform(0, 1) - 1);
  return a;
}

void hold_norms(lathe::LoraAdapter& a, bool hold) {
  for (auto& layer : a.adapters().linears)
    for (auto* l : layer)
      if (l) static_cast<lathe::LoraLinear*>(l)->dora_hold_norms(hold);
}

class DoraGradcheck : public ::testing::TestWithParam<lathe::Arch> {};

TEST_P(DoraGradcheck, MagnitudeAndFactors) {
  auto c = tiny(GetParam());
  auto m = model_for(c);
  auto a = dora_adapter(m, 1);
  auto b = batch();
  lathe::TrainGraph g(m, &a->adapters(), nullptr, false);
  int64_t n = 0;
  g.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
  hold_norms(*a, true);  // the norms of the unperturbed A, B (computed by the pass above)
  auto loss = [&] {
    int64_t k = 0;
    return g.forward_loss(b, &k) / double(k);
  };
  const float h = 1e-3f;
  lathe::Rng pick(3);
  for (auto* p : a->params()) {
    double dot = 0, aa = 0, nn = 0;
    for (int k = 0; k < 4; k++) {
      const int64_t i = int64_t(pick.next_u64() % uint64_t(p->value.numel()));
      float* t = p->value.f32();
      const float orig = t[i];
      t[i] = orig + h;
      const double lp = loss();
      t[i] = orig - h;
      const double lm = loss();
      t[i] = orig;
      const double num = (lp - lm) / (2.0 * h), ana = p->grad.f32()[i];
      EXPECT_NEAR(ana, num, 2e-2 * std::max(std::fabs(num), 5e-2)) << p->name << " entry " << i;
      dot += ana * num, aa += ana * ana, nn += num * num;
    }
    if (aa > 0 && nn > 0) EXPECT_GT(dot / std::sqrt(aa * nn), 0.999) << p->name << " cosine";
  }
  hold_norms(*a, false);
}

INSTANTIATE_TEST_SUITE_P(Families, DoraGradcheck,
                         ::testing::Values(lathe::Arch::Llama, lathe::Arch::Qwen2, lathe::Arch::Phi3),
                         [](const auto& info) { return std::string(lathe::arch_short_name(info.param)); });


// QLoRA + DoRA: the norms and W x come from the dequantized NF4 weight, so the adapter over the NF4
// base gives the logits and gradients of the same adapter over the round-tripped f32 base; merging
// onto that base gives the adapter's logits.
TEST(DoraQlora, Nf4BaseIsTheDequantizedBase) {
  auto c = tiny(lathe::Arch::Llama);
  c.hidden_size = 64, c.intermediate_size = 128, c.head_dim = 16;  // NF4 blocks of 64
  auto q = model_for(c);
  lathe::quantize_model_nf4(q);
  auto f = model_for(c);
  lathe::roundtrip_model_nf4(f);
  auto aq = dora_adapter(q, 2);
  auto af = dora_adapter(f, 2);
  for (size_t i = 0; i < aq->params().size(); i++)  // the magnitudes came from the norms of equal weights
    for (int64_t k = 0; k < aq->params()[i]->value.numel(); k++)
      ASSERT_NEAR(aq->params()[i]->value.f32()[k], af->params()[i]->value.f32()[k], 1e-5f) << aq->params()[i]->name;
  const std::vector<int32_t> ids = {1, 5, 9, 3, 30, 2};
  auto lq = logits_of(q, &aq->adapters(), ids), lf = logits_of(f, &af->adapters(), ids);
  for (size_t i = 0; i < lq.size(); i++) ASSERT_NEAR(lq[i], lf[i], 1e-3f * (1 + std::fabs(lf[i]))) << i;

  auto b = batch();
  lathe::TrainGraph gq(q, &aq->adapters(), nullptr, false), gf(f, &af->adapters(), nullptr, false);
  int64_t n = 0;
  gq.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
  gf.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
  for (size_t i = 0; i < aq->params().size(); i++) {
    const auto* pq = aq->params()[i];
    const auto* pf = af->params()[i];
    float scale = 1e-3f;
    for (int64_t k = 0; k < pf->grad.numel(); k++) scale = std::max(scale, std::fabs(pf->grad.f32()[k]));
    for (int64_t k = 0; k < pf->grad.numel(); k++)
      ASSERT_NEAR(pq->grad.f32()[k], pf->grad.f32()[k], 2e-3f * scale) << pq->name << " " << k;
  }

  af->merge_into(f);
  auto lm = logits_of(f, nullptr, ids);
  for (size_t i = 0; i < lm.size(); i++) ASSERT_NEAR(lm[i], lf[i], 1e-3f * (1 + std::fabs(lf[i]))) << i;
}

}  // namespace
