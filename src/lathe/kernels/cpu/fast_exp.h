// e^x for the softmax, cross-entropy and SiLU loops. glibc's expf/exp are scalar calls, and they were
// about a tenth of a training step (attention softmax, its recompute in backward, SiLU forward and
// backward, and 49k-wide cross-entropy rows). This version is plain arithmetic the compiler vectorises
// inside `omp simd` loops: x = n·ln2 + r with |r| <= ln2/2 (Cody–Waite split of ln2), e^r by its
// degree-7 Taylor polynomial (truncation error < 2e-8 relative), 2^n built in the exponent bits.
// Measured against std::exp in tests/kernels: within 3 ulp over [-87, 88].
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace lathe {

inline float fast_exp(float x) {
  // Clamp with selects, not fmin/fmax (those stay libm calls without -ffinite-math-only and block
  // vectorisation); keeps n in [-126, 127] so 2^n stays a normal float.
  // NaN takes the lower bound here (no float-to-int conversion of a NaN below) and is returned as is
  // at the end.
  const float lo = x >= -87.0f ? x : -87.0f;
  const float xc = lo > 88.0f ? 88.0f : lo;
  // n = round(x / ln2) by the 1.5·2^23 trick (floorf would stay a libm call too).
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float y = p * scale;
  // Beyond the clamp: e^x underflows to (almost) 0 or overflows; -inf (masked scores) gives exactly 0.
  return x < -87.0f ? 0.0f : (x > 88.0f ? INFINITY : (x == x ? y : x));
}

// tanh(x) for GELU (tanh approximation) and soft-capping, in arithmetic the compiler vectorises
// (glibc's tanhf is a scalar call through expm1f: ~4% of a Gemma-3 step, and Gemma 2 caps every
// one of its 256k logits a row with it). |x| < 0.125: the odd Taylor series to x^9 (truncation
// < 1e-11 relative); otherwise 1 - 2 / (e^(2|x|) + 1) with fast_exp, whose rounding near tanh = 0.12
// is an absolute error of a few 1e-8 (tests/kernels: within 2.5e-7 absolute and 1e-6 relative
// of tanh over [-20, 20]). Large |x| gives ±1 exactly (e^(2|x|) clamps to +inf); NaN stays NaN.
inline float fast_tanh(float x) {
  const float a = x < 0.0f ? -x : x;
  const float x2 = x * x;
  const float series =
      x + x * x2 * (-0.333333333333f + x2 * (0.133333333333f + x2 * (-0.0539682539683f + x2 * 0.0218694885362f)));
  const float t = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);
  const float far = x < 0.0f ? -t : t;
  return a < 0.125f ? series : far;
}

}  // namespace lathe
