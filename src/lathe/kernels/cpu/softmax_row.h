// One softmax row, shared by softmax_forward and the attention kernels (their probabilities must be
// the same values whichever of them computes a row).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/kernels/cpu/fast_exp.h"
#include "lathe/kernels/cpu/row_reduce.h"

namespace lathe {

// Σ e^(x[c] - mx) over c in [0, n), in double, storing each e^(x[c] - mx) into y[c] when kStore (y
// may be x). Sixteen double partial sums, added in lane order at the end: GCC compiles a plain
// `omp simd reduction(+ : sum)` that converts float to double as scalar code (vmovss/vcvtss2sd, with
// fast_exp's clamps as branches) — 3x this in the cross-entropy rows, which are 49,152 wide.
template <bool kStore>
inline double exp_sum(const float* x, float* y, int n, float mx) {
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  int c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    float e[kLanes];
#pragma omp simd
    for (int j = 0; j < kLanes; j++) {
      e[j] = fast_exp(x[c + j] - mx);
      if constexpr (kStore) y[c + j] = e[j];
    }
#pragma omp simd
    for (int j = 0; j < kLanes; j++) acc[j] += double(e[j]);
  }
  for (; c < n; c++) {
    const float e = fast_exp(x[c] - mx);
    if constexpr (kStore) y[c] = e;
    acc[0] += double(e);
  }
  double sum = 0;
  for (int j = 0; j < kLanes; j++) sum += acc[j];
  return sum;
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
#pragma omp simd
    for (int s = lo; s < hi; s++) p[s] = cap * fast_tanh(p[s] / cap);
  softmax_row(p + lo, p + lo, hi - lo, S - lo);
  std::fill(p, p + lo, 0.0f);
}

}  // namespace lathe
