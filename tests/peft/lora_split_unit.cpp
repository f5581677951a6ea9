// LoRA's rank-r products on long inputs run on row blocks over the threads (lora.cpp, split_parts):
// forward and backward must match a double-precision reference of the same products, the thread
// count must not change a bit, and a backward that reuses the forward's h must equal one that
// recomputes it. Shapes straddle the split: T below two blocks (one call), exactly two, odd counts
// whose blocks do not end on 16-row edges, and in/out wide enough to be split too.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/peft/lora.h"

namespace {

struct Case {
  int T, in, out, r;
};

struct Grads {
  std::vector<float> y, dx, dA, dB;
};

struct Fixture {
  Case c;
  lathe::LoraConfig cfg;
  std::unique_ptr<lathe::LoraLinear> l;
  std::vector<float> x, dy, y0;
  Fixture(Case cs, float dropout) : c(cs) {
    cfg.r = c.r;
    cfg.alpha = 2.0f * float(c.r) + 1.0f;
    cfg.dropout = dropout;
    l = std::make_unique<lathe::LoraLinear>("m", c.in, c.out, cfg, 3);
    lathe::Rng rng(uint64_t(c.T) * 131 + uint64_t(c.in));
    for (int64_t i = 0; i < l->A.value.numel(); i++) l->A.value.f32()[i] = rng.normal();
    for (int64_t i = 0; i < l->B.value.numel(); i++) l->B.value.f32()[i] = rng.normal();
    for (int i = 0; i < c.T * c.in; i++) x.push_back(rng.normal());
    for (int i = 0; i < c.T * c.out; i++) dy.push_back(rng.normal()), y0.push_back(rng.normal());
  }
  Grads run(int threads, uint64_t fwd_pass, uint64_t bwd_pass) {
    for (lathe::Param* p : {&l->A, &l->B}) std::fill(p->grad.f32(), p->grad.f32() + p->grad.numel(), 0.5f);
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    lathe::AdapterContext ctx;
    ctx.training = true;
    ctx.dropout_seed = 17;
    ctx.layer = 2;
    ctx.pass = fwd_pass;
    Grads o;
    o.y = y0;  // the adapter adds onto the base output
    o.dx.assign(size_t(c.T) * c.in, 0.25f);
    l->forward(x.data(), o.y.data(), c.T, ctx);
    ctx.pass = bwd_pass;
    l->backward(x.data(), dy.data(), o.dx.data(), c.T, ctx);
    omp_set_num_threads(prev);
    o.dA.assign(l->A.grad.f32(), l->A.grad.f32() + l->A.grad.numel());
    o.dB.assign(l->B.grad.f32(), l->B.grad.f32() + l->B.grad.numel());
    return o;
  }
  // Without dropout, in double precision: y = y0 + s x Aᵀ Bᵀ, dB = 0.5 + s dyᵀ (x Aᵀ), dh = s dy B,
  // dA = 0.5 + dhᵀ x, dx = 0.25 + dh A.
  Grads reference() const {
    const int T = c.T, in = c.in, out = c.out, r = c.r;
    const float* A = l->A.value.f32();
    const float* B = l->B.value.f32();
    const double s = cfg.scaling();
    std::vector<double> h(size_t(T) * r), dh(size_t(T) * r, 0.0);
    for (int t = 0; t < T; t++)
      for (int k = 0; k < r; k++) {
        double acc = 0;
        for (int i = 0; i < in; i++) acc += double(x[size_t(t) * in + i]) * A[size_t(k) * in + i];
        h[size_t(t) * r + k] = acc;
      }
    Grads o;
    o.y.resize(size_t(T) * out), o.dx.resize(size_t(T) * in), o.dA.resize(size_t(r) * in), o.dB.resize(size_t(out) * r);
    for (int t = 0; t < T; t++)
      for (int j = 0; j < out; j++) {
        double acc = 0;
        for (int k = 0; k < r; k++) acc += h[size_t(t) * r + k] * B[size_t(j) * r + k];
        o.y[size_t(t) * out + j] = float(y0[size_t(t) * out + j] + s * acc);
        for (int k = 0; k < r; k++) dh[size_t(t) * r + k] += s * dy[size_t(t) * out + j] * B[size_t(j) * r + k];
      }
    for (int j = 0; j < out; j++)
      for (int k = 0; k < r; k++) {
        double acc = 0;
        for (int t = 0; t < T; t++) acc += double(dy[size_t(t) * out + j]) * h[size_t(t) * r + k];
        o.dB[size_t(j) * r + k] = float(0.5 + s * acc);
      }
    for (int k = 0; k < r; k++)
      for (int i = 0; i < in; i++) {
        double acc = 0;
        for (int t = 0; t < T; t++) acc += dh[size_t(t) * r + k] * x[size_t(t) * in + i];
        o.dA[size_t(k) * in + i] = float(0.5 + acc);
      }
    for (int t = 0; t < T; t++)
      for (int i = 0; i < in; i++) {
        double acc = 0;
        for (int k = 0; k < r; k++) acc += dh[size_t(t) * r + k] * A[size_t(k) * in + i];
        o.dx[size_t(t) * in + i] = float(0.25 + acc);
      }
    return o;
  }
};

// Largest |a - b| relative to the largest |b| of the array.
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 1e-30;
  for (size_t i = 0; i < b.size(); i++) scale = std::max(scale, double(std::fabs(b[i])));
  for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  return worst / scale;
}

const Case kCases[] = {{200, 300, 260, 4}, {256, 576, 576, 16}, {300, 260, 530, 5}, {517, 1031, 129, 8},
                       {1100, 96, 1500, 3}};

TEST(LoraSplit, MatchesDoublePrecision) {
  for (const Case& c : kCases) {
    Fixture f(c, 0.0f);
    const Grads ref = f.reference(), got = f.run(2, 3, 3);
    ASSERT_EQ(got.y.size(), ref.y.size());
    EXPECT_LT(rel_err(got.y, ref.y), 2e-6) << "T=" << c.T << " y";
    EXPECT_LT(rel_err(got.dB, ref.dB), 2e-6) << "T=" << c.T << " dB";
    EXPECT_LT(rel_err(got.dA, ref.dA), 2e-6) << "T=" << c.T << " dA";
    EXPECT_LT(rel_err(got.dx, ref.dx), 2e-6) << "T=" << c.T << " dx";
  }
}

TEST(LoraSplit, ThreadCountAndReuseDoNotChangeABit) {
  for (float dropout : {0.0f, 0.25f})
    for (const Case& c : kCases) {
      Fixture f(c, dropout);
      const Grads one = f.run(1, 0, 0);  // pass 0: backward recomputes h
      for (int threads : {2, 3}) {
        const Grads reused = f.run(threads, 4, 4), recomputed = f.run(threads, 0, 0);
        for (const Grads* r : {&reused, &recomputed}) {
          EXPECT_EQ(r->y, one.y) << "T=" << c.T << " threads " << threads << " dropout " << dropout;
          EXPECT_EQ(r->dA, one.dA) << "T=" << c.T << " threads " << threads << " dropout " << dropout;
          EXPECT_EQ(r->dB, one.dB) << "T=" << c.T << " threads " << threads << " dropout " << dropout;
          EXPECT_EQ(r->dx, one.dx) << "T=" << c.T << " threads " << threads << " dropout " << dropout;
        }
      }
    }
}

// Dropout's backward on the split path: a dropped input element passes no gradient to dx, a kept
// one is scaled by 1/(1-p); d(dx) for a unit change of dh is read off by linearity against the
// no-dropout module with the same factors.
TEST(LoraSplit, DropoutMasksTheInputGradient) {
  const Case c{300, 260, 130, 4};
  Fixture drop(c, 0.5f), plain(c, 0.0f);
  const Grads d = drop.run(2, 0, 0), p = plain.run(2, 0, 0);
  // dh does not depend on the mask (it is s·dy·B), so dx - 0.25 is (dh A) ⊙ mask / (1 - p).
  int zeros = 0, scaled = 0;
  for (size_t i = 0; i < d.dx.size(); i++) {
    const double dd = d.dx[i] - 0.25, pp = p.dx[i] - 0.25;
    if (dd == 0.0) {
      zeros++;
    } else {
      EXPECT_NEAR(dd, 2.0 * pp, 1e-4 * (1.0 + std::fabs(pp))) << i;
      scaled++;
    }
  }
  EXPECT_GT(zeros, int(d.dx.size()) / 3);
  EXPECT_GT(scaled, int(d.dx.size()) / 3);
}

}  // namespace
