// The fast CPU kernels against the scalar references, on odd shapes (1, 7, 33, 4099 ...: sizes
// that are not multiples of any SIMD width or BLAS tile).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/fast_exp.h"
#include "lathe/kernels/cpu/softmax_row.h"
#include "lathe/kernels/ref/ref.h"
#include "test_util.h"

namespace {

// CTest runs tests with OMP_NUM_THREADS=1; these comparisons must also cover the parallel paths.
const bool kTwoThreads = (lathe::cpu_set_num_threads(2), true);

std::vector<float> randv(size_t n, uint64_t seed, float s = 1.0f) { return lathe::test::normal_vector(n, seed, s); }

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  float worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); i++) {
    float d = std::fabs(a[i] - b[i]) / std::max(1.0f, std::fabs(b[i]));
    if (d > worst) worst = d, at = i;
  }
  EXPECT_LE(worst, tol) << what << ": worst relative error at " << at << " (" << a[at] << " vs " << b[at] << ")";
}

TEST(Kernels, MatmulMatchesReference) {
  for (auto [M, K, N] : std::vector<std::tuple<int, int, int>>{{1, 1, 1}, {1, 7, 33}, {7, 33, 5}, {64, 96, 130}, {3, 4099, 9}}) {
    auto x = randv(size_t(M) * K, 1), w = randv(size_t(N) * K, 2), b = randv(N, 3);
    for (bool bias : {false, true}) {
      std::vector<float> got(size_t(M) * N), want(got.size());
      lathe::matmul_forward(got.data(), x.data(), w.data(), bias ? b.data() : nullptr, M, K, N);
      lathe::ref::matmul_forward(want.data(), x.data(), w.data(), bias ? b.data() : nullptr, M, K, N);
      expect_close(got, want, 1e-4f, "matmul");
    }
  }
}

TEST(Kernels, MatmulAccumulateMatchesReference) {
  for (auto [M, K, N] : std::vector<std::tuple<int, int, int>>{{1, 7, 33}, {7, 33, 5}, {64, 16, 130}, {3, 4099, 9}}) {
    auto x = randv(size_t(M) * K, 1), w = randv(size_t(N) * K, 2), y0 = randv(size_t(M) * N, 3);
    std::vector<float> got = y0, want = y0;
    lathe::matmul_forward_accumulate(got.data(), x.data(), w.data(), 0.5f, M, K, N);
    lathe::ref::matmul_forward_accumulate(want.data(), x.data(), w.data(), 0.5f, M, K, N);
    expect_close(got, want, 1e-4f, "matmul accumulate");
    EXPECT_NE(got, y0);
  }
}

TEST(Kernels, FastExpWithinThreeUlp) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.000731) {
    const double want = std::exp(double(float(x)));
    const double got = lathe::fast_exp(float(x));
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  EXPECT_LE(worst, 3 * 5.97e-8) << "relative error (1 ulp of float is 5.96e-8)";
  EXPECT_EQ(lathe::fast_exp(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(lathe::fast_exp(NAN)));  // passed through (and no NaN-to-int conversion)
  EXPECT_EQ(lathe::fast_exp(-1000.0f), 0.0f);
  EXPECT_EQ(lathe::fast_exp(0.0f), 1.0f);
  EXPECT_TRUE(std::isinf(lathe::fast_exp(100.0f)));
}

// fast_tanh (GELU's tanh form, soft-capping) against tanh in double: within 2.5e-7 absolute and
// 1e-6 relative over [-20, 20] (glibc's tanhf is within 1.1e-7 absolute here), exactly ±1 far out,
// odd, NaN kept. Fails with the series' x^5 coefficient wrong or the threshold moved to 0.5.
TEST(Kernels, FastTanhWithinBound) {
  double worst_abs = 0, worst_rel = 0;
  for (double x = -20.0; x <= 20.0; x += 3e-5) {
    const float f = float(x);
    const double want = std::tanh(double(f)), got = lathe::fast_tanh(f);
    worst_abs = std::max(worst_abs, std::fabs(got - want));
    if (want != 0.0) worst_rel = std::max(worst_rel, std::fabs(got - want) / std::fabs(want));
    ASSERT_EQ(lathe::fast_tanh(-f), -lathe::fast_tanh(f)) << f;
  }
  EXPECT_LE(worst_abs, 2.5e-7);
  EXPECT_LE(worst_rel, 1e-6);
  EXPECT_EQ(lathe::fast_tanh(1e-30f), 1e-30f);
  EXPECT_EQ(lathe::fast_tanh(0.0f), 0.0f);
  EXPECT_EQ(lathe::fast_tanh(100.0f), 1.0f);
  EXPECT_EQ(lathe::fast_tanh(-1e30f), -1.0f);
  EXPECT_EQ(lathe::fast_tanh(INFINITY), 1.0f);
  EXPECT_TRUE(std::isnan(lathe::fast_tanh(NAN)));
}

// max_of's sixteen running maxima give std::max's value bit for bit, at every length around the
// lane count, with NaNs (passed over), -inf (masked scores) and the maximum in the tail.
TEST(Kernels, MaxOfMatchesSequentialMax) {
  lathe::Rng r(77);
  for (int n = 0; n <= 70; n++)
    for (int trial = 0; trial < 20; trial++) {
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = 10.0f * r.normal();
      if (n > 0 && trial % 4 == 1) x[r.next_u64() % n] = NAN;
      if (n > 0 && trial % 4 == 2) x[size_t(n - 1)] = 1e30f;  // the tail past the last full 16
      if (trial % 4 == 3)
        for (auto& v : x) v = r.normal() > 0 ? -INFINITY : v;
      float want = -INFINITY;
      for (float v : x) want = std::max(want, v);
      const float got = lathe::max_of(x.data(), n);
      ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0) << "n=" << n << " trial=" << trial << ": " << got
                                                          << " vs " << want;
    }
}

// absmax_of (the int8 base compute's row scale) gives the plain loop's max of |x| bit for bit, with
// NaNs passed over, negative zeros, -inf and the largest magnitude negative or in the tail.
TEST(Kernels, AbsMaxOfMatchesSequentialMax) {
  lathe::Rng r(78);
  for (int n = 0; n <= 70; n++)
    for (int trial = 0; trial < 24; trial++) {
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = 10.0f * r.normal();
      if (n > 0 && trial % 6 == 1) x[r.next_u64() % n] = NAN;
      if (n > 0 && trial % 6 == 2) x[size_t(n - 1)] = -1e30f;  // negative, past the last full 16
      if (n > 0 && trial % 6 == 3) x[r.next_u64() % n] = -INFINITY;
      if (trial % 6 == 4)
        for (auto& v : x) v = -0.0f;
      if (n > 0 && trial % 6 == 5) x[r.next_u64() % n] = -1e20f;
      float want = 0.0f;
      for (float v : x) want = std::max(want, std::fabs(v));
      const float got = lathe::absmax_of(x.data(), n);
      ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0) << "n=" << n << " trial=" << trial << ": " << got
                                                          << " vs " << want;
    }
}

// exp_sum's sixteen double partial sums: every stored e^(x - mx) is fast_exp's value bit for bit,
// and the sum is the sequential double sum to double rounding (1e-13 relative; a float-precision
// accumulation or a skipped tail element is off by 1e-8 or more), at every length around the lanes.
TEST(Kernels, ExpSumMatchesSequentialSum) {
  lathe::Rng r(78);
  for (int n = 1; n <= 70; n++)
    for (int trial = 0; trial < 10; trial++) {
      std::vector<float> x(static_cast<size_t>(n)), y(x.size(), -1.0f);
      for (auto& v : x) v = 8.0f * r.normal();
      if (n > 1 && trial % 3 == 1) x[r.next_u64() % n] = -INFINITY;  // a masked score
      const float mx = lathe::max_of(x.data(), n);
      double want = 0;
      for (float v : x) want += double(lathe::fast_exp(v - mx));
      const double got = lathe::exp_sum<true>(x.data(), y.data(), n, mx);
      ASSERT_NEAR(got, want, 1e-13 * want) << "n=" << n << " trial=" << trial;
      ASSERT_EQ(lathe::exp_sum<false>(x.data(), nullptr, n, mx), got);
      for (int i = 0; i < n; i++) {
        const float e = lathe::fast_exp(x[size_t(i)] - mx);
        ASSERT_EQ(std::memcmp(&y[size_t(i)], &e, sizeof e), 0) << "n=" << n << " i=" << i;
      }
    }
  // Wide rows as the cross-entropy's: 49,152 terms of very different sizes.
  std::vector<float> x(49152);
  for (auto& v : x) v = 6.0f * r.normal();
  const float mx = lathe::max_of(x.data(), int(x.size()));
  double want = 0;
  for (float v : x) want += double(lathe::fast_exp(v - mx));
  EXPECT_NEAR(lathe::exp_sum<false>(x.data(), nullptr, int(x.size()), mx), want, 1e-13 * want);
}

TEST(Kernels, RmsnormMatchesReference) {
  for (auto [N, C] : std::vector<std::pair<int, int>>{{1, 1}, {7, 33}, {40, 4099}}) {
    auto x = randv(size_t(N) * C, 4), w = randv(C, 5);
    std::vector<float> got(x.size()), want(x.size()), rg(N), rw(N);
    lathe::rmsnorm_forward(got.data(), rg.data(), x.data(), w.data(), N, C, 1e-5f);
    lathe::ref::rmsnorm_forward(want.data(), rw.data(), x.data(), w.data(), N, C, 1e-5f);
    expect_close(got, want, 1e-5f, "rmsnorm");
    expect_close(rg, rw, 1e-5f, "rmsnorm rstd");
  }
}

TEST(Kernels, RopeMatchesReference) {
  for (auto [T, H, D] : std::vector<std::tuple<int, int, int>>{{1, 1, 2}, {7, 3, 10}, {33, 5, 64}}) {
    auto x = randv(size_t(T) * H * D, 6);
    auto c = randv(size_t(T) * D / 2, 7), s = randv(size_t(T) * D / 2, 8);
    auto got = x, want = x;
    lathe::rope_forward(got.data(), c.data(), s.data(), T, H, D);
    lathe::ref::rope_forward(want.data(), c.data(), s.data(), T, H, D);
    expect_close(got, want, 1e-6f, "rope");
  }
}

TEST(Kernels, AttentionMatchesReference) {
  // (T, S, H, Hkv, D): prefill (T == S), chunk after a cached past (T < S), decode (T == 1), GQA.
  for (auto [T, S, H, Hkv, D] : std::vector<std::tuple<int, int, int, int, int>>{
           {1, 1, 1, 1, 2}, {7, 7, 4, 2, 8}, {5, 13, 6, 3, 10}, {1, 33, 8, 2, 16}, {37, 37, 9, 3, 64}}) {
    auto q = randv(size_t(T) * H * D, 9), k = randv(size_t(S) * Hkv * D, 10), v = randv(size_t(S) * Hkv * D, 11);
    std::vector<float> got(size_t(T) * H * D), want(got.size());
    std::vector<float> pg(size_t(H) * T * S), pw(pg.size());
    lathe::attention_forward(got.data(), pg.data(), q.data(), k.data(), v.data(), T, S, H, Hkv, D);
    lathe::ref::attention_forward(want.data(), pw.data(), q.data(), k.data(), v.data(), T, S, H, Hkv, D);
    expect_close(got, want, 1e-5f, "attention out");
    expect_close(pg, pw, 1e-5f, "attention probs");
  }
}

TEST(Kernels, BidirectionalAttentionMatchesReference) {
  // Encoders: every query sees every key, also when T < S (a padded batch row's queries against
  // its real keys only) and for T == 1.
  lathe::AttentionOpts o;
  o.causal = false;
  for (auto [T, S, H, Hkv, D] : std::vector<std::tuple<int, int, int, int, int>>{
           {1, 1, 1, 1, 2}, {7, 7, 4, 4, 8}, {9, 5, 6, 3, 10}, {1, 33, 8, 2, 16}, {131, 131, 3, 3, 64}}) {
    auto q = randv(size_t(T) * H * D, 19), k = randv(size_t(S) * Hkv * D, 20), v = randv(size_t(S) * Hkv * D, 21);
    std::vector<float> got(size_t(T) * H * D), want(got.size());
    std::vector<float> pg(size_t(H) * T * S), pw(pg.size());
    lathe::attention_forward(got.data(), pg.data(), q.data(), k.data(), v.data(), T, S, H, Hkv, D, o);
    lathe::ref::attention_forward(want.data(), pw.data(), q.data(), k.data(), v.data(), T, S, H, Hkv, D, o);
    expect_close(got, want, 1e-5f, "bidirectional attention out");
    expect_close(pg, pw, 1e-5f, "bidirectional attention probs");
    for (size_t i = 0; i < pg.size(); i++) ASSERT_GT(pg[i], 0.0f) << "a key was masked at " << i;
  }
}

TEST(Kernels, BidirectionalAttentionSeesLaterKeys) {
  // The first query's output changes when only the last key/value does.
  const int T = 6, H = 2, Hkv = 1, D = 4;
  lathe::AttentionOpts o;
  o.causal = false;
  auto q = randv(T * H * D, 22), k = randv(T * Hkv * D, 23), v = randv(T * Hkv * D, 24);
  std::vector<float> a(T * H * D), b(T * H * D);
  lathe::attention_forward(a.data(), nullptr, q.data(), k.data(), v.data(), T, T, H, Hkv, D, o);
  for (int d = 0; d < Hkv * D; d++) v[(T - 1) * Hkv * D + d] -= 3.0f;
  lathe::attention_forward(b.data(), nullptr, q.data(), k.data(), v.data(), T, T, H, Hkv, D, o);
  for (int i = 0; i < H * D; i++) EXPECT_NE(a[i], b[i]) << i;
}

TEST(Kernels, LayernormMatchesReference) {
  for (auto [N, C] : std::vector<std::pair<int, int>>{{1, 1}, {1, 7}, {17, 33}, {40, 1024}, {3, 4099}}) {
    // An offset far from zero: the centred variance must not cancel.
    auto x = randv(size_t(N) * C, 25, 2.0f), w = randv(C, 26), b = randv(C, 27);
    for (auto& e : x) e += 30.0f;
    std::vector<float> got(x.size()), want(x.size());
    lathe::layernorm_forward(got.data(), x.data(), w.data(), b.data(), N, C, 1e-12f);
    lathe::ref::layernorm_forward(want.data(), x.data(), w.data(), b.data(), N, C, 1e-12f);
    expect_close(got, want, C == 1 ? 0.0f : 2e-5f, "layernorm");
    auto inplace = x;
    lathe::layernorm_forward(inplace.data(), inplace.data(), w.data(), b.data(), N, C, 1e-12f);
    expect_close(inplace, got, 0.0f, "layernorm in place");
  }
}

TEST(Kernels, GeluMatchesReference) {
  for (int n : {1, 7, 4099, 70001}) {
    auto x = randv(n, 28, 4.0f);
    std::vector<float> got(n), want(n);
    lathe::gelu_forward(got.data(), x.data(), n);
    lathe::ref::gelu_forward(want.data(), x.data(), n);
    expect_close(got, want, 1e-6f, "gelu");
  }
  // Exact (erf) GELU, not the tanh approximation: gelu(1) = 0.841344746, gelu_tanh(1) = 0.841191990.
  float one = 1.0f, y = 0;
  lathe::gelu_forward(&y, &one, 1);
  EXPECT_NEAR(y, 0.841344746f, 1e-6f);
}

TEST(Kernels, ElementwiseMatchReference) {
  for (int n : {1, 7, 4099, 70001}) {
    auto a = randv(n, 12, 4.0f), b = randv(n, 13);
    std::vector<float> got(n), want(n);
    lathe::swiglu_forward(got.data(), a.data(), b.data(), n);
    lathe::ref::swiglu_forward(want.data(), a.data(), b.data(), n);
    expect_close(got, want, 1e-6f, "swiglu");
    lathe::add_forward(got.data(), a.data(), b.data(), n);
    lathe::ref::add_forward(want.data(), a.data(), b.data(), n);
    expect_close(got, want, 0.0f, "add");
  }
}

TEST(Kernels, SoftmaxEmbeddingCrossEntropyMatchReference) {
  const int N = 7, V = 4099, C = 33;
  auto x = randv(size_t(N) * V, 14, 3.0f);
  std::vector<float> got(x.size()), want(x.size());
  lathe::softmax_forward(got.data(), x.data(), N, V);
  lathe::ref::softmax_forward(want.data(), x.data(), N, V);
  expect_close(got, want, 1e-5f, "softmax");

  std::vector<int32_t> ids = {3, 0, 4098, 17, -100, 5, 1};
  int64_t cg = 0, cw = 0;
  double lg = lathe::cross_entropy_sum(x.data(), ids.data(), N, V, &cg);
  double lw = lathe::ref::cross_entropy_sum(x.data(), ids.data(), N, V, &cw);
  EXPECT_EQ(cg, 6);
  EXPECT_EQ(cg, cw);
  EXPECT_NEAR(lg, lw, 1e-4 * std::fabs(lw));

  auto table = randv(size_t(V) * C, 15);
  std::vector<int32_t> e = {0, 4098, 5, 5};
  std::vector<float> eg(4 * C), ew(4 * C);
  lathe::embedding_forward(eg.data(), e.data(), table.data(), 4, C);
  lathe::ref::embedding_forward(ew.data(), e.data(), table.data(), 4, C);
  expect_close(eg, ew, 0.0f, "embedding");
}

TEST(Kernels, AttentionIsCausal) {
  // Changing a future key/value must not change earlier outputs.
  const int T = 6, H = 2, Hkv = 1, D = 4;
  auto q = randv(T * H * D, 16), k = randv(T * Hkv * D, 17), v = randv(T * Hkv * D, 18);
  std::vector<float> a(T * H * D), b(T * H * D);
  lathe::attention_forward(a.data(), nullptr, q.data(), k.data(), v.data(), T, T, H, Hkv, D);
  for (int d = 0; d < Hkv * D; d++) k[(T - 1) * Hkv * D + d] += 5.0f, v[(T - 1) * Hkv * D + d] -= 3.0f;
  lathe::attention_forward(b.data(), nullptr, q.data(), k.data(), v.data(), T, T, H, Hkv, D);
  for (int i = 0; i < (T - 1) * H * D; i++) EXPECT_EQ(a[i], b[i]) << i;
  bool last_changed = false;
  for (int i = (T - 1) * H * D; i < T * H * D; i++) last_changed |= a[i] != b[i];
  EXPECT_TRUE(last_changed);
}

}  // namespace
