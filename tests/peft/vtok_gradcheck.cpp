// Finite-difference checks of the IA3, prompt-tuning and P-tuning backward passes through the
// whole training graph (train_graph_gradcheck.cpp's method): IA3 on output-scaled (k/v, fused
// qkv) and input-scaled (down_proj, feed-forward) projections of tiny Llama / Qwen2 / Phi-3
// models, with and without gradient checkpointing; the prompt table and the P-tuning encoder
// (embedding, all three MLP layers; every LSTM tensor of both directions and layers), with a sequence whose first label the last virtual token
// predicts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lathe/core/rng.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/ia3.h"
#include "lathe/peft/prompt_tuning.h"
#include "test_util.h"

namespace {

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
  b.add({4, 4, 8, 36}, {4, 4, 8, 36});  // labels[0] != -100: a prompt's last virtual row predicts it
  return b;
}

// Central differences of the mean loss at a few entries of t (plus the largest gradients) against grad.
void check(const char* what, lathe::TrainGraph& g, const lathe::PackedBatch& b, float* t, const float* grad,
           int64_t n, const std::function<void()>& after_change = {}, float h = 2e-3f) {
  auto loss = [&] {
    int64_t cnt = 0;
    double s = g.forward_loss(b, &cnt);
    return s / double(cnt);
  };
  lathe::Rng pick(3);
  std::vector<int64_t> entries;
  for (int k = 0; k < 4; k++) entries.push_back(int64_t(pick.next_u64() % uint64_t(n)));
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) order[size_t(i)] = i;
  const size_t top = std::min<size_t>(3, order.size());
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](int64_t a, int64_t c) { return std::fabs(grad[a]) > std::fabs(grad[c]); });
  entries.insert(entries.end(), order.begin(), order.begin() + top);
  double dot = 0, aa = 0, nn = 0;
  for (int64_t i : entries) {
    const float orig = t[i];
    auto quotient = [&](float step) {
      t[i] = orig + step;
      if (after_change) after_change();
      double lp = loss();
      t[i] = orig - step;
      if (after_change) after_change();
      double lm = loss();
      t[i] = orig;
      if (after_change) after_change();
      return (lp - lm) / (2.0 * double(step));
    };
    const double num = (4.0 * quotient(h / 2) - quotient(h)) / 3.0, ana = grad[i];  // Richardson
    EXPECT_NEAR(ana, num, 2e-2 * std::max(std::fabs(num), 5e-2)) << what << " entry " << i;
    dot += ana * num, aa += ana * ana, nn += num * num;
  }
  if (aa > 0 && nn > 0) EXPECT_GT(dot / std::sqrt(aa * nn), 0.999) << what << " cosine";
}

// IA3 vectors away from 1 so that every path carries signal.
void perturb(lathe::ParamList ps, uint64_t seed) {
  lathe::Rng r(seed);
  for (auto* p : ps)
    for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 1.0f + 0.3f * r.normal();
}

class IA3Gradcheck : public ::testing::TestWithParam<lathe::Arch> {};

TEST_P(IA3Gradcheck, OutputAndInputScales) {
  auto c = tiny(GetParam());
  auto m = model_for(c);
  lathe::IA3Config ic;
  if (c.fused_qkv) ic.target_modules = {"qkv_proj", "o_proj", "down_proj"};
  else ic.target_modules = {"k_proj", "v_proj", "up_proj", "down_proj"};
  ic.feedforward_modules = {"down_proj"};
  auto ia3 = lathe::IA3Adapter::create(c, ic);
  perturb(ia3->params(), 7);
  auto b = batch();
  for (bool ckpt : {false, true}) {
    for (auto* p : ia3->params()) std::fill(p->grad.f32(), p->grad.f32() + p->grad.numel(), 0.0f);
    lathe::TrainGraph g(m, &ia3->adapters(), nullptr, ckpt);
    int64_t n = 0;
    g.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
    for (auto* p : ia3->params()) {
      float biggest = 0;
      for (int64_t i = 0; i < p->grad.numel(); i++) biggest = std::max(biggest, std::fabs(p->grad.f32()[i]));
      EXPECT_GT(biggest, 0.0f) << p->name;
      check((p->name + (ckpt ? " (checkpointing)" : "")).c_str(), g, b, p->value.f32(), p->grad.f32(), p->value.numel());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, IA3Gradcheck, ::testing::Values(lathe::Arch::Llama, lathe::Arch::Qwen2, lathe::Arch::Phi3),
                         [](const auto& info) { return std::string(lathe::arch_hf_name(info.param)).substr(0, 5); });

TEST(PromptGradcheck, PromptTable) {
  auto c = tiny(lathe::Arch::Llama);
  auto m = model_for(c);
  lathe::PromptConfig pc;
  pc.num_virtual_tokens = 3;
  auto pt = lathe::PromptAdapter::create(m, pc, 9);
  auto b = batch();
  lathe::TrainGraph g(m, &pt->train_adapters(), nullptr, false);
  pt->zero_prompt_grads();
  int64_t n = 0;
  g.forward_backward(b, 1.0f / float(b.num_targets() + 1), &n, {.training = true});
  EXPECT_EQ(n, b.num_targets() + 1);  // + the second sequence's first label, predicted by the last virtual row
  pt->backward();
  lathe::Param* p = pt->params()[0];
  check("prompt_embeddings", g, b, p->value.f32(), p->grad.f32(), p->value.numel(), [&] { pt->refresh(); });
}

TEST(PromptGradcheck, PTuningMlpEncoder) {
  auto c = tiny(lathe::Arch::Qwen2);
  auto m = model_for(c);
  lathe::PromptConfig pc;
  pc.peft_type = "P_TUNING";
  pc.num_virtual_tokens = 2;
  pc.encoder_hidden_size = 8;
  auto pt = lathe::PromptAdapter::create(m, pc, 4);
  auto b = batch();
  lathe::TrainGraph g(m, &pt->train_adapters(), nullptr, true);
  pt->zero_prompt_grads();
  int64_t n = 0;
  g.forward_backward(b, 1.0f / float(b.num_targets() + 1), &n, {.training = true});
  pt->backward();
  ASSERT_EQ(pt->params().size(), 7u);
  for (auto* p : pt->params())
    check(p->name.c_str(), g, b, p->value.f32(), p->grad.f32(), p->value.numel(), [&] { pt->refresh(); });
}

TEST(PromptGradcheck, PTuningLstmEncoder) {
  auto c = tiny(lathe::Arch::Llama);
  auto m = model_for(c);
  lathe::PromptConfig pc;
  pc.peft_type = "P_TUNING";
  pc.encoder_reparameterization_type = "LSTM";
  pc.num_virtual_tokens = 3;
  pc.encoder_hidden_size = 4;
  pc.encoder_num_layers = 2;
  auto pt = lathe::PromptAdapter::create(m, pc, 6);
  auto b = batch();
  lathe::TrainGraph g(m, &pt->train_adapters(), nullptr, false);
  pt->zero_prompt_grads();
  int64_t n = 0;
  g.forward_backward(b, 1.0f / float(b.num_targets() + 1), &n, {.training = true});
  pt->backward();
  ASSERT_EQ(pt->params().size(), 1u + 16u + 4u);  // embedding, 2 layers x 2 directions x 4, mlp_head.{0,2}
  // The LSTM weights' gradients are small (~1e-3): a larger step there (the LSTM is smooth, no ReLU
  // kink; Richardson cancels the h^2 term) keeps the f32 rounding of the loss below them.
  for (auto* p : pt->params()) {
    const float h = p->name.find("lstm_head") != std::string::npos ? 3e-2f : 2e-3f;
    check(p->name.c_str(), g, b, p->value.f32(), p->grad.f32(), p->value.numel(), [&] { pt->refresh(); }, h);
  }
}

// Baking: the prompt as a key/value prefix gives the logits of the virtual rows run in front of
// the sequence (the training path), for every real row.
TEST(PromptGradcheck, BakedPrefixMatchesTrainingPath) {
  auto c = tiny(lathe::Arch::Llama);
  auto m = model_for(c);
  lathe::PromptConfig pc;
  pc.num_virtual_tokens = 3;
  auto pt = lathe::PromptAdapter::create(m, pc, 9);
  pt->bake(m);
  lathe::PackedBatch b;
  b.add({1, 5, 9, 3, 30, 2}, {1, 5, 9, 3, 30, 2});
  lathe::TrainGraph g(m, &pt->train_adapters(), nullptr, false);
  int64_t n = 0;
  const double nll_train = g.forward_loss(b, &n);
  // The same loss from the baked prefix: TrainGraph with a prefix set and no virtual rows.
  lathe::TrainGraph gb(m, &pt->adapters(), nullptr, false);
  lathe::PackedBatch b2;
  b2.add({1, 5, 9, 3, 30, 2}, {-100, 5, 9, 3, 30, 2});  // the first label is predicted by a virtual row: drop it
  int64_t n2 = 0;
  const double nll_baked = gb.forward_loss(b2, &n2);
  lathe::PackedBatch b3;
  b3.add({1, 5, 9, 3, 30, 2}, {-100, 5, 9, 3, 30, 2});
  int64_t n3 = 0;
  lathe::TrainGraph g3(m, &pt->train_adapters(), nullptr, false);
  const double nll_train_same = g3.forward_loss(b3, &n3);
  EXPECT_EQ(n, n2 + 1);
  EXPECT_EQ(n2, n3);
  EXPECT_NEAR(nll_baked, nll_train_same, 1e-4 * std::fabs(nll_train_same));
  EXPECT_GT(nll_train, nll_train_same);  // one more token's loss
}

// Gemma puts sqrt(hidden) in the model (Gemma2: on the whole inputs_embeds, virtual rows included)
// or in the embedding module (Gemma3: TEXT init copies scaled rows); PEFT's virtual tokens follow
// (model/block.h). Either way a TEXT-initialised prompt computes what the text's tokens in front of
// the sequence compute: in training, in the baked inference prefix, and its gradient is the loss's.
class PromptFamily : public ::testing::TestWithParam<lathe::Arch> {};

TEST_P(PromptFamily, TextInitIsTheTextsTokensInFront) {
  auto c = tiny(GetParam());
  auto m = model_for(c);
  lathe::PromptConfig pc;
  pc.num_virtual_tokens = 3;
  pc.prompt_tuning_init = "TEXT";
  pc.prompt_tuning_init_text = "(ids given)";
  auto pt = lathe::PromptAdapter::create(m, pc, 9, {7, 12, 3});
  pt->bake(m);
  lathe::PackedBatch b;
  b.add({1, 5, 9, 3, 30, 2}, {-100, 5, 9, 3, 30, 2});
  lathe::PackedBatch front;
  front.add({7, 12, 3, 1, 5, 9, 3, 30, 2}, {-100, -100, -100, -100, 5, 9, 3, 30, 2});
  int64_t n = 0, n_front = 0, n_baked = 0;
  lathe::TrainGraph g(m, &pt->train_adapters(), nullptr, false);
  const double nll = g.forward_loss(b, &n);
  const double nll_front = lathe::TrainGraph(m, nullptr, nullptr, false).forward_loss(front, &n_front);
  const double nll_baked = lathe::TrainGraph(m, &pt->adapters(), nullptr, false).forward_loss(b, &n_baked);
  EXPECT_EQ(n, n_front);
  EXPECT_EQ(n_baked, n_front);
  EXPECT_NEAR(nll, nll_front, 1e-5 * std::fabs(nll_front));
  EXPECT_NEAR(nll_baked, nll_front, 1e-5 * std::fabs(nll_front));
  // The table's gradient through the family's scaling.
  pt->zero_prompt_grads();
  auto bg = batch();
  g.forward_backward(bg, 1.0f / float(bg.num_targets() + 1), &n, {.training = true});
  pt->backward();
  lathe::Param* p = pt->params()[0];
  check("prompt_embeddings", g, bg, p->value.f32(), p->grad.f32(), p->value.numel(), [&] { pt->refresh(); });
}

INSTANTIATE_TEST_SUITE_P(Families, PromptFamily, ::testing::Values(lathe::Arch::Llama, lathe::Arch::Gemma2, lathe::Arch::Gemma3),
                         [](const auto& info) { return std::string(lathe::arch_hf_name(info.param)).substr(0, 6); });

}  // namespace
