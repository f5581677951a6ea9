// RoPE's rotation of [T, H, D] rows (rotate-half layout: channel i pairs with i + D/2) by each row's
// angles. The backward of a rotation is the rotation back (its transpose), so forward and backward
// are one loop; Inverse picks the sign, at compile time, so each keeps its own exact expression.
#pragma once
#include <cstddef>

namespace lathe {

// R: rotated channels per head (partial rotary; 0 = D); cos/sin are [T, R/2].
template <bool Inverse>
inline void rope_rotate(float* x, const float* cos, const float* sin, int T, int H, int D, int R) {
  const int half = (R > 0 ? R : D) / 2;
#pragma omp parallel for schedule(static) if (T > 16)
  for (int t = 0; t < T; t++) {
    const float* ct = cos + size_t(t) * half;
    const float* st = sin + size_t(t) * half;
    for (int h = 0; h < H; h++) {
      float* v = x + (size_t(t) * H + h) * D;
#pragma omp simd
      for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        if constexpr (Inverse) {
          v[i] = a * ct[i] + b * st[i];
          v[i + half] = b * ct[i] - a * st[i];
        } else {
          v[i] = a * ct[i] - b * st[i];
          v[i + half] = b * ct[i] + a * st[i];
        }
      }
    }
  }
}

}  // namespace lathe
