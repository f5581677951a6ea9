// Scalar kernels of the K-quant (Q4_K, Q6_K) and F16 / BF16 weight rows (the reference the x86
// variants in qblock_kquant_x86.cpp must match), and dequantize_row for every QType. Contracts and
// the integer bounds: qblock.h; layouts: core/kquant_blocks.h.
#include <cstring>

#include "lathe/core/dtype.h"
#include "lathe/core/error.h"
#include "lathe/core/kquant_blocks.h"
#include "lathe/kernels/cpu/qblock.h"

namespace lathe {

namespace {

inline float load_f16(const uint8_t* p) { return f16_to_f32(load_le<uint16_t>(p)); }

}  // namespace

namespace qdetail {

// Per activation block b (sub-block j = b % 8 of super-block b / 8):
//   acc += d_a * ((d * sc_j) * Σ q*aq  -  (dmin * m_j) * Σ aq)
// with both integer sums exact (|Σ q*aq| <= 32*15*127; sc_j*that < 2^22, so float(sc*isum) is exact).
void dot_q4_k_scalar(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t sb = 0; sb < nb / 8; sb++) {
    const uint8_t* blk = w + size_t(sb) * kQ4_KBlockBytes;
    const float d = load_f16(blk), dmin = load_f16(blk + 2);
    for (int j = 0; j < 8; j++) {
      int sc, mn;
      q4k_scale_min(blk + 4, j, &sc, &mn);
      const uint8_t* q = blk + 16 + 32 * (j / 2);
      const int shift = 4 * (j & 1);
      for (int i = 0; i < m; i++) {
        const BlockQ8A& ab = a[i * a_stride + sb * 8 + j];
        int32_t isum = 0;
        for (int l = 0; l < 32; l++) isum += int32_t((q[l] >> shift) & 0x0f) * int32_t(ab.q[l]);
        acc[i] += ab.d * (d * float(sc * isum) - dmin * float(mn * ab.sum));
      }
    }
  }
  for (int i = 0; i < m; i++) out[i] = acc[i];
}

// Per activation block b (elements 32j..32j+31 of super-block b / 8, j = b % 8; scales 2j, 2j+1):
//   acc += (d * d_a) * (sc_2j * Σ_{l<16} (q-32)*aq + sc_2j+1 * Σ_{l>=16} (q-32)*aq)
// the bracket exact in int32 and in f32 (< 2^24).
void dot_q6_k_scalar(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t sb = 0; sb < nb / 8; sb++) {
    const uint8_t* blk = w + size_t(sb) * kQ6_KBlockBytes;
    const float d = load_f16(blk + 208);
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
    for (int j = 0; j < 8; j++) {
      int8_t q[32];
      for (int l = 0; l < 32; l++) q[l] = int8_t(q6k_value(blk, 32 * j + l) - 32);
      for (int i = 0; i < m; i++) {
        const BlockQ8A& ab = a[i * a_stride + sb * 8 + j];
        int32_t s0 = 0, s1 = 0;
        for (int l = 0; l < 16; l++) s0 += int32_t(q[l]) * int32_t(ab.q[l]);
        for (int l = 16; l < 32; l++) s1 += int32_t(q[l]) * int32_t(ab.q[l]);
        acc[i] += (d * ab.d) * float(int32_t(sc[2 * j]) * s0 + int32_t(sc[2 * j + 1]) * s1);
      }
    }
  }
  for (int i = 0; i < m; i++) out[i] = acc[i];
}

void dot_f16_scalar(const uint8_t* w, const float* x, int64_t x_stride, int64_t k, int m, float* out) {
  for (int i = 0; i < m; i++) {
    const float* xi = x + i * x_stride;
    float acc = 0;
    for (int64_t j = 0; j < k; j++) acc += load_f16(w + 2 * j) * xi[j];
    out[i] = acc;
  }
}

void dot_bf16_scalar(const uint8_t* w, const float* x, int64_t x_stride, int64_t k, int m, float* out) {
  for (int i = 0; i < m; i++) {
    const float* xi = x + i * x_stride;
    float acc = 0;
    for (int64_t j = 0; j < k; j++) acc += bf16_to_f32(load_le<uint16_t>(w + 2 * j)) * xi[j];
    out[i] = acc;
  }
}

}  // namespace qdetail

void dequantize_row(QType t, const uint8_t* src, float* dst, int64_t k) {
  qblock_row_bytes(t, k);  // checks k against the block size, naming the type
  switch (t) {
    case QType::Q8_0:
      for (int64_t b = 0; b < k / kQBlock; b++, src += kQ8_0BlockBytes) {
        const float d = load_f16(src);
        for (int j = 0; j < kQBlock; j++) *dst++ = d * float(int8_t(src[2 + j]));
      }
      return;
    case QType::Q4_0:
      for (int64_t b = 0; b < k / kQBlock; b++, src += kQ4_0BlockBytes, dst += kQBlock) {
        const float d = load_f16(src);
        for (int j = 0; j < kQBlock / 2; j++) {
          dst[j] = d * float(int(src[2 + j] & 0x0f) - 8);
          dst[j + kQBlock / 2] = d * float(int(src[2 + j] >> 4) - 8);
        }
      }
      return;
    case QType::Q4_K: dequantize_q4_k(src, dst, k); return;
    case QType::Q6_K: dequantize_q6_k(src, dst, k); return;
    // Element loads through memcpy: a GGUF with general.alignment 1 may place a half at an odd address.
    case QType::F16:
      for (int64_t i = 0; i < k; i++) dst[i] = load_f16(src + 2 * i);
      return;
    case QType::BF16:
      for (int64_t i = 0; i < k; i++) dst[i] = bf16_to_f32(load_le<uint16_t>(src + 2 * i));
      return;
  }
  fail("kernels", "dequantize_row: unknown type {}", uint32_t(t));
}

}  // namespace lathe
