// One softmax row, shared by softmax_forward and the attention kernels (their probabilities must be
// the same values whichever of them computes a row).
#pragma once

#include <algorithm>
#include <cmath>

#include "lathe/kernels/cpu/fast_exp.h"

namespace lathe {

// Largest of x[0, n) (-inf when n = 0; NaNs are passed over, as std::max(m, x) passes them). Sixteen
// running maxima the compiler keeps in vector registers: GCC leaves `omp simd reduction(max : m)`
// over std::max a scalar vmaxss chain (4 cycles an element), which made this the attention
// softmax's slowest pass. Max is exact, so the order changes no bit of the result.
inline float max_of(const float* x, int n) {
  constexpr int kLanes = 16;
  float m[kLanes];
  for (int j = 0; j < kLanes; j++) m[j] = -INFINITY;
  int s = 0;
  for (; s + kLanes <= n; s += kLanes)
    for (int j = 0; j < kLanes; j++) m[j] = x[s + j] > m[j] ? x[s + j] : m[j];
  for (; s < n; s++) m[0] = x[s] > m[0] ? x[s] : m[0];
  float mx = m[0];
  for (int j = 1; j < kLanes; j++) mx = m[j] > mx ? m[j] : mx;
  return mx;
}

// Softmax of x[0, n) into y[0, n) (y may be x), zero for y[n, S): one row of a softmax, or of a
// causal attention score matrix whose row sees only its first n keys.
inline void softmax_row(const float* x, float* y, int n, int S) {
  const float mx = max_of(x, n);
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int s = 0; s < n; s++) sum += (y[s] = fast_exp(x[s] - mx));
  float inv = 1.0f / sum;
#pragma omp simd
  for (int s = 0; s < n; s++) y[s] *= inv;
  for (int s = n; s < S; s++) y[s] = 0;
}

// One score row of a query that sees keys [lo, hi): soft-capped (when on), softmaxed, 0 elsewhere
// up to S.
inline void causal_softmax_row(float* p, int lo, int hi, int S, float cap) {
  if (cap > 0.0f)
    for (int s = lo; s < hi; s++) p[s] = cap * std::tanh(p[s] / cap);
  softmax_row(p + lo, p + lo, hi - lo, S - lo);
  std::fill(p, p + lo, 0.0f);
}

}  // namespace lathe
