// LoRA's backward reuses the forward's h = x A^T within one training pass (AdapterContext::pass)
// instead of recomputing it: the gradients must be bitwise those of the recomputing backward, and
// anything other than the same pass and input (another pass, no pass, another input buffer, a
// second backward) must fall back to recomputing.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/peft/lora.h"

namespace {

struct Fixture {
  static constexpr int kIn = 24, kOut = 20, kT = 7;
  lathe::LoraConfig cfg;
  std::unique_ptr<lathe::LoraLinear> l;
  std::vector<float> x, x2, dy;
  explicit Fixture(float dropout) {
    cfg.r = 4;
    cfg.alpha = 8;
    cfg.dropout = dropout;
    l = std::make_unique<lathe::LoraLinear>("m", kIn, kOut, cfg, 2);
    lathe::Rng r(3);
    for (int64_t i = 0; i < l->A.value.numel(); i++) l->A.value.f32()[i] = r.normal();
    for (int64_t i = 0; i < l->B.value.numel(); i++) l->B.value.f32()[i] = r.normal();
    for (int i = 0; i < kT * kIn; i++) x.push_back(r.normal()), x2.push_back(r.normal());
    for (int i = 0; i < kT * kOut; i++) dy.push_back(r.normal());
  }
  // Gradients of A, B and x after forward(fwd_x, fwd_pass) then backward(x, bwd_pass).
  std::vector<float> grads(const std::vector<float>& fwd_x, uint64_t fwd_pass, uint64_t bwd_pass, int backwards = 1) {
    for (lathe::Param* p : {&l->A, &l->B}) std::fill(p->grad.f32(), p->grad.f32() + p->grad.numel(), 0.0f);
    lathe::AdapterContext c;
    c.training = true;
    c.dropout_seed = 99;
    c.layer = 1;
    c.pass = fwd_pass;
    std::vector<float> y(kT * kOut, 0.0f), dx(kT * kIn, 0.0f);
    l->forward(fwd_x.data(), y.data(), kT, c);
    c.pass = bwd_pass;
    for (int b = 0; b < backwards; b++) l->backward(x.data(), dy.data(), dx.data(), kT, c);
    std::vector<float> g(l->A.grad.f32(), l->A.grad.f32() + l->A.grad.numel());
    g.insert(g.end(), l->B.grad.f32(), l->B.grad.f32() + l->B.grad.numel());
    g.insert(g.end(), dx.begin(), dx.end());
    return g;
  }
};

TEST(LoraReuse, SamePassIsBitwiseTheRecompute) {
  for (float dropout : {0.0f, 0.3f}) {
    Fixture f(dropout);
    const std::vector<float> recomputed = f.grads(f.x, 0, 0);  // pass 0: never reused
    EXPECT_EQ(f.grads(f.x, 5, 5), recomputed) << "dropout " << dropout;
    // Reuse must not change the answer, and the answer must not depend on what the forward saw
    // when it cannot be reused: a forward on other rows, or of another pass, then backward of x.
    EXPECT_EQ(f.grads(f.x2, 6, 6), recomputed) << "dropout " << dropout;
    EXPECT_EQ(f.grads(f.x, 7, 8), recomputed) << "dropout " << dropout;
    // A second backward of the same pass recomputes (the first scaled its h in place): twice the sum.
    std::vector<float> twice = f.grads(f.x, 9, 9, 2), once = f.grads(f.x, 0, 0, 2);
    EXPECT_EQ(twice, once) << "dropout " << dropout;
  }
}

// The reused product is really the forward's: a forward on x2 saved under the same pointer as x
// would give other gradients, so the test above would see it. Here: forward(x2) then a backward
// of x2 reused matches x2's recompute and differs from x's.
TEST(LoraReuse, ReusedProductIsTheForwardsInput) {
  Fixture f(0.0f);
  const std::vector<float> of_x = f.grads(f.x, 0, 0);
  f.x.swap(f.x2);  // backward now reads what was x2
  const std::vector<float> of_x2_recomputed = f.grads(f.x, 0, 0);
  const std::vector<float> of_x2_reused = f.grads(f.x, 4, 4);
  EXPECT_EQ(of_x2_reused, of_x2_recomputed);
  EXPECT_NE(of_x2_reused, of_x);
}

}  // namespace
