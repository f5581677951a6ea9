// --base-compute bf16 / int8 (kernels/cpu/base_compute.h): every element of x·Wᵀ (+ b) and of
// dX += dY·W against the f64 product of the same f32 inputs, within the bounds the header states,
// on odd shapes; the bounds must also be tight enough to mean something (the error reaches a fair
// share of them) and a new weight at the same address must not meet the old one's prepared copy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/core/rng.h"
#include "lathe/kernels/cpu/base_compute.h"

namespace {

using lathe::BaseCompute;

struct Shape {
  int T, in, out;
};
const Shape kShapes[] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 129}, {3, 1000, 17}, {64, 576, 192}, {130, 96, 1536}};

std::vector<float> random_vec(size_t n, uint64_t seed, float scale) {
  lathe::Rng r(seed);
  std::vector<float> v(n);
  // Rows of different magnitudes (like activations): per-row scales must cope.
  for (size_t i = 0; i < n; i++) v[i] = scale * r.normal() * (1.0f + float(i % 7));
  return v;
}

// The bound of the header for one element: a and b the two operand vectors (length K) as read,
// sa / sb their int8 scales (unused for bf16), y the exact result.
struct Bound {
  double operator()(BaseCompute c, const double* sum_abs_prod, double sum_a, double sum_b, double sa, double sb,
                    int K, double y) const {
    if (c == BaseCompute::BF16) {
      const double u = std::ldexp(1.0, -8);
      return (2 * u + u * u + K * std::ldexp(1.0, -23) * 1.01) * *sum_abs_prod + 1e-30;
    }
    return sa / 2 * sum_b + sb / 2 * sum_a + K * sa * sb / 4 + std::ldexp(1.0, -22) * std::fabs(y) + 1e-30;
  }
};

// Checks out[T, N] = a[T, K] · B[K, N] (+ base) where B[k, n] = Bget(k, n); returns max err/bound.
template <class BGet>
double check_product(BaseCompute c, const float* a, int T, int K, int N, BGet B, const float* bias, const float* base,
                     const float* got, int wmax, const char* what) {
  double worst = 0;
  std::vector<double> col_max(N, 0.0), col_abs(N, 0.0);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) col_max[n] = std::max(col_max[n], std::fabs(double(B(k, n)))), col_abs[n] += std::fabs(double(B(k, n)));
  for (int t = 0; t < T; t++) {
    const float* r = a + size_t(t) * K;
    double rmax = 0, rabs = 0;
    for (int k = 0; k < K; k++) rmax = std::max(rmax, std::fabs(double(r[k]))), rabs += std::fabs(double(r[k]));
    // int8 scales as the kernel computes them (f32 division; the bound's slack covers the last bit)
    const double sa = float(rmax) / 127.0f, sb_den = wmax;
    for (int n = 0; n < N; n++) {
      double y = 0, sap = 0;
      for (int k = 0; k < K; k++) y += double(r[k]) * B(k, n), sap += std::fabs(double(r[k]) * B(k, n));
      const double sb = float(col_max[n]) / float(sb_den);
      const double want = y + (bias ? bias[n] : 0.0) + (base ? base[size_t(t) * N + n] : 0.0);
      const double err = std::fabs(double(got[size_t(t) * N + n]) - want);
      // + the f32 rounding of the bias / accumulation add (one ulp of the stored result)
      const double bound = Bound{}(c, &sap, rabs, col_abs[n], sa, sb, K, y) + std::ldexp(std::fabs(want), -23);
      worst = std::max(worst, err / bound);
      if (err > bound) {
        ADD_FAILURE() << what << " " << lathe::base_compute_name(c) << " [" << t << ", " << n << "] of [" << T << ", "
                      << K << "] x [" << K << ", " << N << "]: error " << err << " > bound " << bound;
        return worst;
      }
    }
  }
  return worst;
}

class BaseComputeBound : public ::testing::TestWithParam<BaseCompute> {};

TEST_P(BaseComputeBound, ForwardAndInputGradientWithinBound) {
  const BaseCompute c = GetParam();
  if (!lathe::base_compute_available(c)) GTEST_SKIP() << lathe::base_compute_unavailable_reason(c);
  const int wmax = c == BaseCompute::Int8 ? lathe::base_compute_int8_wmax() : 0;
  double worst = 0;
  uint64_t seed = 1;
  for (const Shape& s : kShapes) {
    auto W = random_vec(size_t(s.out) * s.in, seed++, 0.05f);
    auto x = random_vec(size_t(s.T) * s.in, seed++, 1.0f);
    auto b = random_vec(size_t(s.out), seed++, 0.1f);
    auto dy = random_vec(size_t(s.T) * s.out, seed++, 0.01f);
    auto dx0 = random_vec(size_t(s.T) * s.in, seed++, 0.01f);
    std::vector<float> y(size_t(s.T) * s.out, 123.0f), dx = dx0;
    lathe::base_compute_forward(c, W.data(), s.out, s.in, x.data(), b.data(), y.data(), s.T);
    // forward: B = Wᵀ, B[k, n] = W[n, k]
    worst = std::max(worst, check_product(c, x.data(), s.T, s.in, s.out,
                                          [&](int k, int n) { return W[size_t(n) * s.in + k]; }, b.data(), nullptr,
                                          y.data(), wmax, "x·Wᵀ+b"));
    lathe::base_compute_backward_input(c, W.data(), s.out, s.in, dy.data(), dx.data(), s.T);
    worst = std::max(worst, check_product(c, dy.data(), s.T, s.out, s.in,
                                          [&](int k, int n) { return W[size_t(k) * s.in + n]; }, nullptr, dx0.data(),
                                          dx.data(), wmax, "dX+=dY·W"));
    // A second T on the same prepared weight (a new primitive, the same weight layout).
    std::vector<float> y2(size_t(2) * s.out);
    lathe::base_compute_forward(c, W.data(), s.out, s.in, x.data(), nullptr, y2.data(), std::min(2, s.T));
    worst = std::max(worst, check_product(c, x.data(), std::min(2, s.T), s.in, s.out,
                                          [&](int k, int n) { return W[size_t(n) * s.in + k]; }, nullptr, nullptr,
                                          y2.data(), wmax, "x·Wᵀ (second T)"));
  }
  // The bound is tight enough to mean something: random data reaches a real share of it.
  EXPECT_GT(worst, c == BaseCompute::BF16 ? 0.02 : 0.05) << "worst error / bound";
  std::printf("%s: worst error / bound %.3f (int8 weight range ±%d)\n", lathe::base_compute_name(c), worst, wmax);
  EXPECT_GT(lathe::base_compute_bytes(), 0);
  lathe::base_compute_release();
  EXPECT_EQ(lathe::base_compute_bytes(), 0);
}

TEST_P(BaseComputeBound, NewWeightAtSameAddressIsNotStale) {
  const BaseCompute c = GetParam();
  if (!lathe::base_compute_available(c)) GTEST_SKIP() << lathe::base_compute_unavailable_reason(c);
  const int T = 4, in = 40, out = 24;
  auto W = random_vec(size_t(out) * in, 7, 0.05f);
  auto x = random_vec(size_t(T) * in, 8, 1.0f);
  std::vector<float> y1(size_t(T) * out), y2(y1.size());
  lathe::base_compute_forward(c, W.data(), out, in, x.data(), nullptr, y1.data(), T);
  for (float& v : W) v = -v;  // same buffer, new values
  lathe::base_compute_forward(c, W.data(), out, in, x.data(), nullptr, y2.data(), T);
  for (size_t i = 0; i < y1.size(); i++) EXPECT_EQ(y2[i], -y1[i]) << i;  // symmetric rounding: exactly negated
  lathe::base_compute_release();
}

INSTANTIATE_TEST_SUITE_P(Computes, BaseComputeBound, ::testing::Values(BaseCompute::BF16, BaseCompute::Int8),
                         [](const auto& info) { return std::string(lathe::base_compute_name(info.param)); });

TEST(BaseCompute, ParseNamesTheOption) {
  EXPECT_EQ(lathe::base_compute_parse("f32"), BaseCompute::F32);
  EXPECT_EQ(lathe::base_compute_parse("auto"), lathe::base_compute_auto());
  try {
    lathe::base_compute_parse("fp16");
    FAIL() << "fp16 accepted";
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--base-compute: 'fp16' is not a base compute"), std::string::npos) << e.what();
  }
  for (BaseCompute c : {BaseCompute::BF16, BaseCompute::Int8}) {
    if (lathe::base_compute_available(c)) {
      EXPECT_EQ(lathe::base_compute_parse(lathe::base_compute_name(c)), c);
    } else {  // e.g. a build without oneDNN: an error that says why
      try {
        lathe::base_compute_parse(lathe::base_compute_name(c));
        FAIL() << lathe::base_compute_name(c) << " accepted although unavailable";
      } catch (const lathe::Error& e) {
        EXPECT_NE(std::string(e.what()).find(lathe::base_compute_unavailable_reason(c)), std::string::npos);
      }
    }
  }
  // The process default is f32: library users and the golden tests get f32 unless they ask.
  EXPECT_EQ(lathe::base_compute(), BaseCompute::F32);
}

}  // namespace
