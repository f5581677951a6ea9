#include "lathe/core/kquant_blocks.h"

#include "lathe/core/dtype.h"
#include "lathe/core/error.h"

namespace lathe {

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n) {
  LATHE_CHECK(n % kQK_K == 0, "Q4_K needs a multiple of 256 elements, got {}", n);
  for (int64_t b = 0; b < n / kQK_K; b++, src += kQ4_KBlockBytes, dst += kQK_K) {
    const float d = f16_to_f32(load_le<uint16_t>(src));
    const float dmin = f16_to_f32(load_le<uint16_t>(src + 2));
    const uint8_t* qs = src + 16;
    for (int j = 0; j < 8; j++) {
      int sc, m;
      q4k_scale_min(src + 4, j, &sc, &m);
      const float dj = d * float(sc), mj = dmin * float(m);
      const uint8_t* q = qs + 32 * (j / 2);
      const int shift = 4 * (j & 1);
      for (int l = 0; l < 32; l++) dst[32 * j + l] = dj * float((q[l] >> shift) & 0x0f) - mj;
    }
  }
}

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n) {
  LATHE_CHECK(n % kQK_K == 0, "Q6_K needs a multiple of 256 elements, got {}", n);
  for (int64_t b = 0; b < n / kQK_K; b++, src += kQ6_KBlockBytes, dst += kQK_K) {
    const float d = f16_to_f32(load_le<uint16_t>(src + 208));
    const auto* sc = reinterpret_cast<const int8_t*>(src + 192);
    for (int e = 0; e < kQK_K; e++) dst[e] = d * float(sc[e / 16]) * float(q6k_value(src, e) - 32);
  }
}

}  // namespace lathe
