// Reductions of one row of floats that GCC leaves scalar when written as a plain loop: a max (or
// max of |x|) reduction is a chain of dependent vmaxss at -O3, 4 cycles an element, even under
// `omp simd reduction(max : m)`. These keep sixteen running maxima in one GCC vector type (a zmm,
// two ymm or four NEON registers). Max is exact, so the order of the lanes changes no bit.
#pragma once

#include <cmath>
#include <cstring>

namespace lathe {

// Largest of x[0, n) (-inf when n = 0; NaNs are passed over, as std::max(m, x) passes them).
inline float max_of(const float* x, int n) {
  constexpr int kLanes = 16;
  typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
  typedef int Mask __attribute__((vector_size(kLanes * sizeof(int))));
  Lanes m;
  for (int j = 0; j < kLanes; j++) m[j] = -INFINITY;
  int s = 0;
  for (; s + kLanes <= n; s += kLanes) {
    Lanes v;
    std::memcpy(&v, x + s, sizeof v);
    const Mask gt = v > m;
    m = gt ? v : m;
  }
  float mx = m[0];
  for (int j = 1; j < kLanes; j++) mx = m[j] > mx ? m[j] : mx;
  for (; s < n; s++) mx = x[s] > mx ? x[s] : mx;
  return mx;
}

// Largest |x| of x[0, n) (0 when n = 0; NaNs are passed over, as std::max(m, std::fabs(x)) passes
// them): the per-row scale of a symmetric quantization.
inline float absmax_of(const float* x, int n) {
  constexpr int kLanes = 16;
  typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
  typedef int Mask __attribute__((vector_size(kLanes * sizeof(int))));
  Lanes m = {};
  int s = 0;
  for (; s + kLanes <= n; s += kLanes) {
    Lanes v;
    std::memcpy(&v, x + s, sizeof v);
    const Lanes a = v < 0 ? -v : v;
    const Mask gt = a > m;
    m = gt ? a : m;
  }
  float mx = 0.0f;
  for (int j = 0; j < kLanes; j++) mx = m[j] > mx ? m[j] : mx;
  for (; s < n; s++) {
    const float a = std::fabs(x[s]);
    mx = a > mx ? a : mx;
  }
  return mx;
}

}  // namespace lathe
