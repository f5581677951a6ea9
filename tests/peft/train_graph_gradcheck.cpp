// Whole-model gradient checks of the training graph: the loss's finite differences with respect
// to LoRA factors, prefix parameters (with and without projection) and full fine-tuning weights
// (every kind of tensor: embeddings, norms, q/k/v/o, MLP, biases, q/k norms), on tiny random
// models of each family; gradient checkpointing and packing must not change anything.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/core/rng.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"
#include "lathe/train/preference.h"
#include "test_util.h"

namespace {

lathe::ModelConfig tiny(lathe::Arch arch, bool tied) {
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
  c.tie_word_embeddings = tied;
  lathe::config_set_family_flags(c);
  // Each family's features switched on at sizes where they matter for 6-token sequences.
  switch (arch) {
    case lathe::Arch::Gemma2:
      c.query_pre_attn_scalar = 7.0f;
      c.attn_logit_softcapping = 2.5f;
      c.final_logit_softcapping = 4.0f;
      c.sliding_window = 3;
      c.layer_sliding = {1, 0};
      break;
    case lathe::Arch::Gemma3:
      c.query_pre_attn_scalar = 5.0f;
      c.sliding_window = 2;
      c.layer_sliding = {1, 0};
      c.rope_local_theta = 100.0f;
      c.rope_theta = 1e6f;
      break;
    case lathe::Arch::Phi3:
      c.head_dim = 6;
      c.partial_rotary_factor = 0.67f;  // 4 of 6 channels
      c.rope_scaling.type = lathe::RopeScaling::LongRope;
      c.rope_scaling.short_factor = {1.0f, 2.0f};
      c.rope_scaling.long_factor = {1.5f, 4.0f};
      c.rope_scaling.original_max_position_embeddings = 4;  // the 6-token sequence uses the long factors
      c.rope_scaling.attention_factor = 1.2f;
      break;
    case lathe::Arch::SmolLM3:
      c.layer_rope = {0, 1};
      break;
    case lathe::Arch::Exaone4:
      c.sliding_window = 2;
      c.layer_sliding = {1, 0};
      c.layer_rope = {1, 0};
      break;
    default:
      break;
  }
  return c;
}

lathe::Model model_for(const lathe::ModelConfig& c) {
  lathe::Model m = lathe::Model::init_random(c, 5);
  // Larger weights than HF's 0.02 init so every path carries signal; non-trivial norms and biases.
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

double loss_of(lathe::TrainGraph& g, const lathe::PackedBatch& b) {
  int64_t n = 0;
  double s = g.forward_loss(b, &n);
  return s / double(n);
}

// Finite differences of `loss` at a few entries of `t` against `grad`.
void check_fn(const char* what, const std::function<double()>& loss, float* t, const float* grad, int64_t n,
              const std::function<void()>& after_change = {}, bool richardson = false) {
  const float h = 2e-3f;
  lathe::Rng pick(3);
  std::vector<int64_t> entries;
  for (int k = 0; k < 6; k++) entries.push_back(int64_t(pick.next_u64() % uint64_t(n)));
  // The Richardson checks are of losses over whole sequences in f32, whose rounding noise (which
  // differs between the AVX-512 and AVX2 kernels) is ~1e-3 of the quotient: half of the entries are
  // the largest gradients, where that noise is far below the tolerance, and the random half gets an
  // absolute floor above it.
  double floor = 5e-2;
  if (richardson) {
    entries.resize(3);
    std::vector<int64_t> order(size_t(n), 0);
    for (int64_t i = 0; i < n; i++) order[size_t(i)] = i;
    const size_t top = std::min<size_t>(3, order.size());
    std::partial_sort(order.begin(), order.begin() + top, order.end(),
                      [&](int64_t a, int64_t b) { return std::fabs(grad[a]) > std::fabs(grad[b]); });
    entries.insert(entries.end(), order.begin(), order.begin() + top);
    floor = 1e-1;
  }
  double dot_an = 0, aa = 0, nn = 0;
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
    // Richardson: (4 D(h/2) - D(h)) / 3 cancels the h^2 term of the central difference.
    double num = richardson ? (4.0 * quotient(h / 2) - quotient(h)) / 3.0 : quotient(h), ana = grad[i];
    EXPECT_NEAR(ana, num, 2e-2 * std::max(std::fabs(num), floor)) << what << " entry " << i;
    dot_an += ana * num, aa += ana * ana, nn += num * num;
  }
  if (aa > 0 && nn > 0) {
    EXPECT_GT(dot_an / std::sqrt(aa * nn), 0.999) << what << " cosine";
  }
}

void check(const char* what, lathe::TrainGraph& g, const lathe::PackedBatch& b, float* t, const float* grad, int64_t n,
           const std::function<void()>& after_change = {}) {
  check_fn(what, [&] { return loss_of(g, b); }, t, grad, n, after_change);
}

// An all-linear LoRA adapter of rank r with B non-zero too (so A's gradient is non-zero).
std::unique_ptr<lathe::LoraAdapter> lora_with_b(const lathe::ModelConfig& c, int r, uint64_t seed) {
  lathe::LoraConfig lc;
  lc.r = r;
  lc.alpha = 2 * r;
  lc.target_modules = {"all-linear"};
  auto lora = lathe::LoraAdapter::create(c, lc, seed);
  lathe::Rng rng(seed + 1);
  for (auto* p : lora->params())
    if (p->name.find("lora_B") != std::string::npos)
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.3f * rng.normal();
  return lora;
}

class GraphGradcheck : public ::testing::TestWithParam<lathe::Arch> {};

TEST_P(GraphGradcheck, Lora) {
  auto c = tiny(GetParam(), GetParam() == lathe::Arch::Qwen2);
  auto m = model_for(c);
  auto lora = lora_with_b(c, 3, 1);
  auto b = batch();
  lathe::TrainGraph g(m, &lora->adapters(), nullptr, false);
  int64_t n = 0;
  g.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
  EXPECT_EQ(n, b.num_targets());
  for (auto* p : lora->params())  // every adapted projection of every layer
    check(p->name.c_str(), g, b, p->value.f32(), p->grad.f32(), p->value.numel());
}

TEST_P(GraphGradcheck, FullFineTuning) {
  auto c = tiny(GetParam(), GetParam() != lathe::Arch::Llama);
  auto m = model_for(c);
  lathe::ModelWeights grads;
  lathe::for_each_tensor(c, grads, [&](lathe::TensorSlot& s) {
    *s.tensor = lathe::Tensor::zeros(lathe::DType::F32, s.shape);
  });
  if (c.tie_word_embeddings) grads.lm_head = grads.embed;
  auto b = batch();
  lathe::TrainGraph g(m, nullptr, &grads, false);
  int64_t n = 0;
  g.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
  lathe::ModelWeights& w = m.weights;
  lathe::for_each_tensor(c, w, [&](lathe::TensorSlot& s) {
    if (s.layer > 0) return;  // layer 0 and the non-layer tensors cover every kind
    lathe::Tensor* gt = nullptr;
    lathe::for_each_tensor(c, grads, [&](lathe::TensorSlot& gs) {
      if (gs.hf_name == s.hf_name) gt = gs.tensor;
    });
    check(s.hf_name.c_str(), g, b, s.tensor->f32(), gt->f32(), s.tensor->numel());
  });
}

TEST_P(GraphGradcheck, Prefix) {
  auto c = tiny(GetParam(), false);
  auto m = model_for(c);
  for (bool proj : {false, true}) {
    lathe::PrefixConfig pc;
    pc.num_virtual_tokens = 3;
    pc.prefix_projection = proj;
    pc.encoder_hidden_size = 5;
    auto pre = lathe::PrefixAdapter::create(c, pc, 4);
    auto b = batch();
    lathe::TrainGraph g(m, &pre->adapters(), nullptr, false);
    pre->zero_prefix_grads();
    int64_t n = 0;
    g.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
    pre->backward();
    for (auto* p : pre->params())
      check(p->name.c_str(), g, b, p->value.f32(), p->grad.f32(), p->value.numel(), [&] { pre->refresh(); });
  }
}

// Preference losses: the weighted backward (d loss / d sequence log-probability spread over the
// completion tokens) against finite differences of the loss, for each method, with the reference
// policy as the base without the adapter, as a frozen second adapter, and (full fine-tuning) as a
// frozen copy of the model.
lathe::PreferenceBatch preference_batch(bool kto) {
  lathe::PreferenceBatch b;
  auto add = [&](std::vector<int32_t> prompt, std::vector<int32_t> answer) {
    std::vector<int32_t> ids = prompt, lab(prompt.size(), -100);
    ids.insert(ids.end(), answer.begin(), answer.end());
    lab.insert(lab.end(), answer.begin(), answer.end());
    b.ids.push_back(ids);
    b.labels.push_back(lab);
    b.prompt_len.push_back(int(prompt.size()));
  };
  add({1, 5, 9}, {3, 30, 2});  // chosen / desirable
  add({1, 5, 9}, {7, 2});      // rejected / undesirable
  add({4, 8}, {36, 11, 12, 2});
  add({4, 8}, {36, 2});
  if (kto) b.desirable = {true, false, false, true};
  return b;
}

TEST_P(GraphGradcheck, PreferenceLora) {
  auto c = tiny(GetParam(), GetParam() == lathe::Arch::Qwen2);
  auto m = model_for(c);
  auto lora = lora_with_b(c, 2, 1), frozen = lora_with_b(c, 2, 9);
  lathe::TrainGraph g(m, &lora->adapters(), nullptr, false);
  struct Case { const char* method; const char* loss_type; double ls; bool frozen_ref; };
  const Case cases[] = {{"dpo", "sigmoid", 0.0, false}, {"dpo", "sigmoid", 0.2, true}, {"dpo", "ipo", 0.0, false},
                        {"kto", "sigmoid", 0.0, true}, {"orpo", "sigmoid", 0.0, false}};
  for (size_t ci = 0; ci < std::size(cases); ci++) {
    const Case& k = cases[ci];
    lathe::PreferenceOptions o;
    o.method = k.method;
    o.loss_type = k.loss_type;
    o.label_smoothing = k.ls;
    o.beta = 0.7;
    o.desirable_weight = 1.3;
    const auto b = preference_batch(o.method == "kto");
    lathe::ReferencePolicy ref{&g, k.frozen_ref ? &frozen->adapters() : nullptr};
    if (o.method == "orpo") ref = {};
    for (auto* p : lora->params()) std::memset(p->grad.data, 0, p->grad.nbytes());
    auto l = lathe::preference_micro_step(g, &lora->adapters(), ref, b, o, 1.0f, {.training = true});
    EXPECT_TRUE(std::isfinite(l.loss));
    std::function<double()> loss = [&] {
      return lathe::preference_micro_step(g, &lora->adapters(), ref, b, o, 1.0f, {}, false).loss;
    };
    EXPECT_NEAR(loss(), l.loss, 1e-9) << k.method;
    // KTO's KL estimate carries no gradient (TRL detaches it): its finite differences hold it fixed
    // at the starting parameters, through preference_loss on the graph's log-probabilities.
    lathe::PackedBatch main, kl;
    for (size_t i = 0; i < b.ids.size(); i++) main.add(b.ids[i], b.labels[i]);
    for (size_t e = 0; e < b.ids.size(); e++) {
      const size_t d = (e + b.ids.size() - 1) % b.ids.size();
      std::vector<int32_t> ids(b.ids[e].begin(), b.ids[e].begin() + b.prompt_len[e]);
      std::vector<int32_t> lab(b.labels[e].begin(), b.labels[e].begin() + b.prompt_len[e]);
      ids.insert(ids.end(), b.ids[d].begin() + b.prompt_len[d], b.ids[d].end());
      lab.insert(lab.end(), b.labels[d].begin() + b.prompt_len[d], b.labels[d].end());
      kl.add(ids, lab);
    }
    auto sums = [&](const lathe::PackedBatch& p, const lathe::AdapterSet* a) {
      std::vector<double> lp;
      g.forward_logps(p, a, {}, &lp);
      lathe::SequenceLogps s;
      for (size_t q = 0; q < p.seg_start.size(); q++) {
        s.sum.push_back(0), s.count.push_back(0);
        for (int t = p.seg_start[q]; t < p.seg_start[q] + p.seg_len[q]; t++)
          if (p.targets[t] >= 0) s.sum.back() += lp[t], s.count.back()++;
      }
      return s;
    };
    if (o.method == "kto") {
      const auto ref_s = sums(main, ref.adapters), kl_ref = sums(kl, ref.adapters), kl_pol = sums(kl, &lora->adapters());
      loss = [&, ref_s, kl_ref, kl_pol] {
        return lathe::preference_loss(o, b, sums(main, &lora->adapters()), ref_s, kl_pol, kl_ref).loss;
      };
    }
    const std::string what = std::string(k.method) + "/" + k.loss_type;
    auto ps = lora->params();
    for (size_t i = ci; i < ps.size(); i += 6)  // every kind of projection over the cases
      // Richardson extrapolation: these losses sum log-probabilities over whole sequences, and with
      // the test's large weights their curvature makes the plain central difference's h^2 term a few %.
      check_fn((what + " " + ps[i]->name).c_str(), loss, ps[i]->value.f32(), ps[i]->grad.f32(), ps[i]->value.numel(),
               {}, true);
  }
}

TEST_P(GraphGradcheck, PreferenceFull) {
  auto c = tiny(GetParam(), GetParam() != lathe::Arch::Llama);
  auto m = model_for(c);
  auto ref_model = model_for(c);
  lathe::ModelWeights grads;
  lathe::for_each_tensor(c, grads, [&](lathe::TensorSlot& s) {
    *s.tensor = lathe::Tensor::zeros(lathe::DType::F32, s.shape);
  });
  if (c.tie_word_embeddings) grads.lm_head = grads.embed;
  // The policy moves away from the reference so that the loss is not at its symmetric point.
  lathe::Rng r(8);
  float* wo = m.weights.layers[0].wo.f32();
  for (int64_t i = 0; i < m.weights.layers[0].wo.numel(); i++) wo[i] += 0.1f * r.normal();
  lathe::TrainGraph g(m, nullptr, &grads, false), rg(ref_model, nullptr, nullptr, false);
  lathe::PreferenceOptions o;
  o.beta = 0.5;
  const auto b = preference_batch(false);
  lathe::ReferencePolicy ref{&rg, nullptr};
  lathe::preference_micro_step(g, nullptr, ref, b, o, 1.0f, {.training = true});
  auto loss = [&] { return lathe::preference_micro_step(g, nullptr, ref, b, o, 1.0f, {}, false).loss; };
  lathe::for_each_tensor(c, m.weights, [&](lathe::TensorSlot& s) {
    if (s.layer > 0) return;
    lathe::Tensor* gt = nullptr;
    lathe::for_each_tensor(c, grads, [&](lathe::TensorSlot& gs) {
      if (gs.hf_name == s.hf_name) gt = gs.tensor;
    });
    check_fn(s.hf_name.c_str(), loss, s.tensor->f32(), gt->f32(), s.tensor->numel(), {}, true);
  });
}

INSTANTIATE_TEST_SUITE_P(Families, GraphGradcheck,
                         ::testing::Values(lathe::Arch::Llama, lathe::Arch::Qwen2, lathe::Arch::Qwen3,
                                           lathe::Arch::Gemma2, lathe::Arch::Gemma3, lathe::Arch::Phi3,
                                           lathe::Arch::SmolLM3, lathe::Arch::Exaone, lathe::Arch::Exaone4),
                         [](const auto& info) { return std::string(lathe::arch_short_name(info.param)); });

TEST(TrainGraph, CheckpointingAndPackingChangeNothing) {
  auto c = tiny(lathe::Arch::Qwen3, false);
  auto m = model_for(c);
  lathe::LoraConfig lc;
  lc.r = 2;
  lc.target_modules = {"all-linear"};
  auto run = [&](bool ckpt, bool packed) {
    auto lora = lathe::LoraAdapter::create(c, lc, 1);
    for (auto* p : lora->params())
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] += 0.05f * float(i % 7);
    lathe::TrainGraph g(m, &lora->adapters(), nullptr, ckpt);
    auto full = batch();
    double loss = 0;
    if (packed) {
      int64_t n = 0;
      loss = g.forward_backward(full, 1.0f, &n, {.training = true});
    } else {  // the two sequences as separate micro-batches
      lathe::PackedBatch a, b2;
      a.add({1, 5, 9, 3, 30, 2}, {-100, -100, 9, 3, 30, 2});
      b2.add({4, 4, 8, 36}, {4, 4, 8, 36});
      int64_t n = 0;
      loss = g.forward_backward(a, 1.0f, &n, {.training = true});
      loss += g.forward_backward(b2, 1.0f, &n, {.training = true});
    }
    std::vector<float> grads;
    for (auto* p : lora->params()) grads.insert(grads.end(), p->grad.f32(), p->grad.f32() + p->grad.numel());
    return std::make_pair(loss, grads);
  };
  auto base = run(false, true), ck = run(true, true), sep = run(false, false);
  EXPECT_EQ(base.first, ck.first);
  EXPECT_EQ(base.second, ck.second);  // checkpointing recomputes the same numbers: bitwise equal
  // Packed vs separate micro-batches sum in another order: equal up to fp32 rounding. A gradient
  // entry is a sum of terms that can cancel (-0.0265 from terms near the tensor's largest entries),
  // so its rounding scales with the largest entry, not with itself: on the AVX2 path one such entry
  // moved by 1e-4 of its own size, while a 59.6 entry moved by 2e-7.
  LATHE_EXPECT_CLOSE(base.first, sep.first, 1e-5, 1e-6);
  double scale = 0;
  for (float g : sep.second) scale = std::max(scale, double(std::fabs(g)));
  for (size_t i = 0; i < base.second.size(); i++)
    LATHE_ASSERT_CLOSE(base.second[i], sep.second[i], 0, 1e-5 * scale + 1e-6) << i << " (largest entry " << scale << ")";
}

}  // namespace

// Keeping what backward otherwise recomputes (normalised inputs, SwiGLU output, attention
// probabilities; TrainGraph::set_keep_recomputed) reads the forward's own values: loss and every
// gradient bitwise those of the recomputing graph, for families with post-norms, q/k norms, fused
// projections and sliding windows, two packed sequences (each with its own probabilities), LoRA,
// prefix tuning (S = P + T) and full fine-tuning, over two steps (buffers reused).
TEST(TrainGraph, KeptActivationsAreBitwiseTheRecompute) {
  for (lathe::Arch arch : {lathe::Arch::Llama, lathe::Arch::Qwen3, lathe::Arch::Gemma2, lathe::Arch::Phi3}) {
    auto c = tiny(arch, false);
    auto m = model_for(c);
    const std::string name = lathe::arch_short_name(arch);
    auto lora_run = [&](bool keep) {
      lathe::LoraConfig lc;
      lc.r = 2;
      lc.target_modules = {"all-linear"};
      auto lora = lathe::LoraAdapter::create(c, lc, 1);
      for (auto* p : lora->params())
        for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] += 0.05f * float(i % 7);
      lathe::TrainGraph g(m, &lora->adapters(), nullptr, false);
      g.set_keep_recomputed(keep);
      EXPECT_EQ(g.keep_recomputed(), keep);
      int64_t n = 0;
      double loss = g.forward_backward(batch(), 1.0f, &n, {.training = true});
      lathe::PackedBatch b2;
      b2.add({7, 3, 3}, {7, 3, 3});
      loss += g.forward_backward(b2, 0.5f, &n, {.training = true});
      std::vector<float> grads;
      for (auto* p : lora->params()) grads.insert(grads.end(), p->grad.f32(), p->grad.f32() + p->grad.numel());
      return std::make_pair(loss, grads);
    };
    const auto kept = lora_run(true), recomputed = lora_run(false);
    EXPECT_EQ(kept.first, recomputed.first) << name;
    EXPECT_EQ(kept.second, recomputed.second) << name << " LoRA gradients";

    auto prefix_run = [&](bool keep) {
      lathe::PrefixConfig pc;
      pc.num_virtual_tokens = 3;
      auto pre = lathe::PrefixAdapter::create(c, pc, 4);
      lathe::TrainGraph g(m, &pre->adapters(), nullptr, false);
      g.set_keep_recomputed(keep);
      pre->zero_prefix_grads();
      int64_t n = 0;
      g.forward_backward(batch(), 1.0f, &n, {.training = true});
      pre->backward();
      std::vector<float> grads;
      for (auto* p : pre->params()) grads.insert(grads.end(), p->grad.f32(), p->grad.f32() + p->grad.numel());
      return grads;
    };
    EXPECT_EQ(prefix_run(true), prefix_run(false)) << name << " prefix gradients";

    auto full_run = [&](bool keep) {
      lathe::ModelWeights grads;
      lathe::for_each_tensor(c, grads, [&](lathe::TensorSlot& s) {
        *s.tensor = lathe::Tensor::zeros(lathe::DType::F32, s.shape);
      });
      lathe::TrainGraph g(m, nullptr, &grads, false);
      g.set_keep_recomputed(keep);
      int64_t n = 0;
      g.forward_backward(batch(), 1.0f, &n, {.training = true});
      std::vector<float> out;
      lathe::for_each_tensor(c, grads, [&](lathe::TensorSlot& s) {
        out.insert(out.end(), s.tensor->f32(), s.tensor->f32() + s.tensor->numel());
      });
      return out;
    };
    EXPECT_EQ(full_run(true), full_run(false)) << name << " full fine-tuning gradients";
  }
  // Gradient checkpointing recomputes whole blocks: keeping is off there.
  auto c = tiny(lathe::Arch::Llama, false);
  auto m = model_for(c);
  lathe::TrainGraph g(m, nullptr, nullptr, true);
  g.set_keep_recomputed(true);
  EXPECT_FALSE(g.keep_recomputed());
}

// The loss head runs only on the rows that have a target (gathered in order, over more than one
// logits chunk here): each live row's log-probability is what it is when every row has a target
// (to the logits' rounding), rows without one give 0, the summed loss is the live rows' sum, and the weighted backward
// over the masked batch gives the gradients of the full batch with zero weight on the masked rows.
TEST(TrainGraph, HeadSkipsRowsWithoutTargets) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const auto c = tiny(lathe::Arch::Llama, tied);
    const auto m = model_for(c);
    auto lora = lora_with_b(c, 2, 3);
    lathe::TrainGraph g(m, &lora->adapters(), nullptr, false);
    const int chunk = lathe::TrainGraph::head_chunk_rows(c.vocab_size);
    lathe::Rng r(21);
    lathe::PackedBatch full, masked;
    std::vector<float> w_full, w_masked;  // per row of the packed batches
    for (int len : {chunk + 100, 120}) {
      const size_t n_rows = static_cast<size_t>(len);
      std::vector<int32_t> ids(n_rows), lab(n_rows), mlab(n_rows);
      for (int t = 0; t < len; t++) {
        ids[size_t(t)] = int32_t(r.next_u64() % uint64_t(c.vocab_size));
        lab[size_t(t)] = ids[size_t(t)];
        // A prompt-like run at the start, then scattered masked rows (not chunk-aligned).
        mlab[size_t(t)] = (t < 37 || t % 5 == 2) ? -100 : ids[size_t(t)];
      }
      full.add(ids, lab);
      masked.add(ids, mlab);
    }
    for (size_t t = 0; t < masked.targets.size(); t++) {
      w_full.push_back(masked.targets[t] >= 0 ? 0.7f : 0.0f);
      w_masked.push_back(0.7f);
    }
    std::vector<double> lp_full, lp_masked;
    g.forward_logps(full, &lora->adapters(), {}, &lp_full);
    g.forward_logps(masked, &lora->adapters(), {}, &lp_masked);
    ASSERT_EQ(lp_full.size(), lp_masked.size());
    double live_sum = 0;
    int64_t live = 0;
    for (size_t t = 0; t < lp_full.size(); t++) {
      if (masked.targets[t] < 0) {
        EXPECT_EQ(lp_masked[t], 0.0) << "row " << t;
      } else {
        // Natively the same bits; OpenBLAS's Haswell kernels may round a row's dot products
        // differently at another position in their tiles (last bits of a logit).
        ASSERT_NEAR(lp_masked[t], lp_full[t], 2e-5) << "row " << t;
        live_sum -= lp_masked[t], live++;
      }
    }
    ASSERT_GT(live, chunk);  // the live rows span two chunks
    int64_t n = 0;
    const double loss = g.forward_loss(masked, &n);
    EXPECT_EQ(n, live);
    EXPECT_NEAR(loss, live_sum, 1e-12 * std::fabs(live_sum));

    auto grads_of = [&](const lathe::PackedBatch& b, const std::vector<float>& w) {
      for (auto* p : lora->params()) std::memset(p->grad.data, 0, p->grad.nbytes());
      std::vector<double> lp;
      g.forward_logps(b, &lora->adapters(), {}, &lp);
      g.backward_weighted(w);
      std::vector<float> out;
      for (auto* p : lora->params()) out.insert(out.end(), p->grad.f32(), p->grad.f32() + p->grad.numel());
      return out;
    };
    const auto gf = grads_of(full, w_full), gm = grads_of(masked, w_masked);
    ASSERT_EQ(gf.size(), gm.size());
    float largest = 0;
    for (float v : gf) largest = std::max(largest, std::fabs(v));
    ASSERT_GT(largest, 0.0f);
    for (size_t i = 0; i < gf.size(); i++) ASSERT_NEAR(gm[i], gf[i], 1e-6f * largest) << "gradient " << i;
  }
}
