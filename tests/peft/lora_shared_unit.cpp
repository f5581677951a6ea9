// LoRA adapters of projections that share an input (q/k/v; gate/up) run their A products as one
// GEMM over the stacked A matrices (linear_forward_many / linear_backward_many,
// LinearAdapter::shared_a), checked against one linear_forward / linear_backward per projection.
// Equal to rounding, not bitwise in general: the stacked product gives each h element the same dot
// product over `in`, but BLAS may block a 10-row A differently from a 3-row and a 7-row one (this
// machine's OpenBLAS does: the mixed-rank case differs in the last bits), and dx sums the same terms
// in another order (base products first, then one rank-Σr product). Tolerances scale with the
// largest entry of each compared array (entries are sums of terms that can cancel).
// Shapes are odd (T 1 and 37, in 33, outs 5/9/13, ranks 3/4/7) and cover a group where one
// adapter cannot share (dropout, DoRA): it keeps its own path and the others still share.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/model/linear.h"
#include "lathe/peft/lora.h"

namespace {

using lathe::AdapterContext;
using lathe::LinearRef;
using lathe::LoraLinear;
using lathe::Tensor;

struct Proj {
  Tensor w;
  std::unique_ptr<LoraLinear> lora;
  LinearRef ref() const {
    LinearRef r;
    r.w = &w;
    r.adapter = lora.get();
    return r;
  }
};

struct Group {
  static constexpr int kIn = 33;
  std::vector<Proj> p;
  std::vector<float> x;
  // One projection per (out, rank); `dropout_at`: that projection's adapter has dropout (cannot share).
  Group(std::vector<std::pair<int, int>> shapes, int T, int dropout_at = -1, bool dora_at_1 = false) {
    lathe::Rng r(11);
    for (size_t i = 0; i < shapes.size(); i++) {
      auto [out, rank] = shapes[i];
      lathe::LoraConfig cfg;
      cfg.r = rank;
      cfg.alpha = 2.0f * rank + 1;
      cfg.dropout = int(i) == dropout_at ? 0.25f : 0.0f;
      cfg.use_dora = dora_at_1 && i == 1;
      Proj pr;
      pr.w = Tensor::zeros(lathe::DType::F32, {out, kIn});
      for (int64_t k = 0; k < pr.w.numel(); k++) pr.w.f32()[k] = r.normal();
      pr.lora = std::make_unique<LoraLinear>("m" + std::to_string(i), kIn, out, cfg, int(i));
      for (lathe::Param* q : {&pr.lora->A, &pr.lora->B, &pr.lora->magnitude})
        for (int64_t k = 0; !q->name.empty() && k < q->value.numel(); k++)
          q->value.f32()[k] = q == &pr.lora->magnitude ? 1.0f + 0.1f * r.normal() : r.normal();
      p.push_back(std::move(pr));
    }
    for (int i = 0; i < T * kIn; i++) x.push_back(r.normal());
  }
  void zero_grads() {
    for (Proj& pr : p)
      for (lathe::Param* q : {&pr.lora->A, &pr.lora->B, &pr.lora->magnitude})
        if (!q->name.empty()) std::fill(q->grad.f32(), q->grad.f32() + q->grad.numel(), 0.0f);
  }
  std::vector<float> grads() const {
    std::vector<float> g;
    for (const Proj& pr : p)
      for (const lathe::Param* q : {&pr.lora->A, &pr.lora->B, &pr.lora->magnitude})
        if (!q->name.empty()) g.insert(g.end(), q->grad.f32(), q->grad.f32() + q->grad.numel());
    return g;
  }
};

struct Result {
  std::vector<std::vector<float>> y;
  std::vector<float> dx, g;
};

// Forward then backward of the group, `many` through the *_many calls, else one call per projection.
Result run(Group& G, int T, bool many, uint64_t pass) {
  const size_t n = G.p.size();
  Result r;
  r.y.resize(n);
  std::vector<std::vector<float>> dy(n);
  lathe::Rng rng(5);
  for (size_t i = 0; i < n; i++) {
    r.y[i].assign(size_t(T) * G.p[i].w.dim(0), 0.0f);
    for (int k = 0; k < T * G.p[i].w.dim(0); k++) dy[i].push_back(rng.normal());
  }
  AdapterContext c;
  c.training = true;
  c.dropout_seed = 7;
  c.layer = 2;
  c.pass = pass;
  G.zero_grads();
  r.dx.assign(size_t(T) * Group::kIn, 0.0f);
  const float* x = G.x.data();
  if (many && n == 2) {
    lathe::linear_forward_many({{G.p[0].ref(), r.y[0].data()}, {G.p[1].ref(), r.y[1].data()}}, x, T, c);
    lathe::linear_backward_many({{G.p[0].ref(), dy[0].data()}, {G.p[1].ref(), dy[1].data()}}, x, r.dx.data(), T, c);
  } else if (many) {
    lathe::linear_forward_many(
        {{G.p[0].ref(), r.y[0].data()}, {G.p[1].ref(), r.y[1].data()}, {G.p[2].ref(), r.y[2].data()}}, x, T, c);
    lathe::linear_backward_many(
        {{G.p[0].ref(), dy[0].data()}, {G.p[1].ref(), dy[1].data()}, {G.p[2].ref(), dy[2].data()}}, x, r.dx.data(),
        T, c);
  } else {
    for (size_t i = 0; i < n; i++) lathe::linear_forward(G.p[i].ref(), x, r.y[i].data(), T, c);
    for (size_t i = 0; i < n; i++) lathe::linear_backward(G.p[i].ref(), x, dy[i].data(), r.dx.data(), T, c);
  }
  r.g = G.grads();
  return r;
}

// Equal to rounding: |a - b| <= 1e-5 of the largest |b| (f32 rounding of sums over 33-74 terms is
// ~1e-6 of it; an h or dh from the wrong rows of the stacked product is off by O(1) of it).
void expect_close(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  float scale = 0;
  for (float v : b) scale = std::max(scale, std::fabs(v));
  ASSERT_GT(scale, 0.0f) << what;  // the comparison is not of zeros
  for (size_t i = 0; i < a.size(); i++) ASSERT_NEAR(a[i], b[i], 1e-5f * scale) << what << " [" << i << "]";
}

void check(Group& G, int T, const std::string& what) {
  for (uint64_t pass : {0, 3}) {  // pass 0: backward recomputes h; pass 3: reuses the forward's
    const Result sep = run(G, T, false, pass);
    const Result many = run(G, T, true, pass);
    const std::string at = what + " T " + std::to_string(T) + " pass " + std::to_string(pass);
    for (size_t i = 0; i < G.p.size(); i++) expect_close(many.y[i], sep.y[i], at + " y" + std::to_string(i));
    expect_close(many.g, sep.g, at + " parameter gradients");
    expect_close(many.dx, sep.dx, at + " dx");
  }
}

TEST(LoraShared, QkvShapedGroupMatchesSeparateCalls) {
  for (int T : {1, 37}) {
    Group G({{13, 4}, {5, 4}, {5, 4}}, T);
    check(G, T, "q/k/v");
  }
}

TEST(LoraShared, MixedRanksTwoProjections) {
  for (int T : {1, 37}) {
    Group G({{9, 3}, {13, 7}}, T);
    check(G, T, "gate/up");
  }
}

TEST(LoraShared, UnshareableAdapterKeepsItsPath) {
  const int T = 37;
  Group drop({{13, 4}, {5, 4}, {5, 3}}, T, /*dropout_at=*/1);
  check(drop, T, "dropout in the middle");
  Group dora({{13, 4}, {5, 4}, {9, 3}}, T, -1, /*dora_at_1=*/true);
  check(dora, T, "DoRA in the middle");
}

// LoraLinear offers A only in training and where x is its input as given (no dropout, no DoRA);
// inference keeps one product per projection (bitwise the batched serving path).
TEST(LoraShared, SharesOnlyInTrainingWithoutDropoutOrDora) {
  Group G({{13, 4}, {5, 4}}, 3, /*dropout_at=*/1);
  AdapterContext train, eval;
  train.training = true;
  int rank = 0;
  EXPECT_EQ(G.p[0].lora->shared_a(&rank, train), G.p[0].lora->A.value.f32());
  EXPECT_EQ(rank, 4);
  EXPECT_EQ(G.p[1].lora->shared_a(&rank, train), nullptr);        // dropout while training
  EXPECT_EQ(G.p[0].lora->shared_a(&rank, eval), nullptr);        // inference
}

}  // namespace
