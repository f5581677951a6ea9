// ggml's K-quant super-blocks (Q4_K, Q6_K) as GGUF stores them: the layouts both the GGUF reader
// (formats) and the quantized-weight kernels (kernels/cpu/qblock.h) need, so they live below both.
// 256 elements per super-block, little-endian, no padding:
//
//   Q4_K (144 bytes): f16 d, f16 dmin, uint8 scales[12], uint8 qs[128].
//     8 sub-blocks of 32 elements; sub-block j has a 6-bit scale sc_j and a 6-bit min m_j, packed in
//     scales[12]: for j < 4, sc_j = scales[j] & 63 and m_j = scales[j+4] & 63; for j >= 4 the low 4
//     bits are in scales[j+4] (sc low nibble, m high nibble) and the top 2 bits in the top 2 bits of
//     scales[j-4] (sc) and scales[j] (m). Elements 64p..64p+31 are the LOW nibbles of qs[32p..32p+31],
//     elements 64p+32..64p+63 the HIGH nibbles of the same bytes (sub-blocks 2p and 2p+1).
//     value = d*sc_j * q - dmin*m_j  (q the nibble 0..15).
//   Q6_K (210 bytes): uint8 ql[128], uint8 qh[64], int8 scales[16], f16 d.
//     Two halves of 128 elements; in half h element 32g + l (g < 4, l < 32) has its low 4 bits in
//     ql[64h + l + 32*(g&1)] (low nibble for g < 2, high nibble for g >= 2) and its top 2 bits in
//     bits 2g, 2g+1 of qh[32h + l]. Scale s covers elements 16s..16s+15 (in element order).
//     value = d * scales[s] * (q - 32)  (q the 6-bit value 0..63).
#pragma once
#include <cstddef>
#include <cstdint>

namespace lathe {

constexpr int kQK_K = 256;  // elements per K-quant super-block
constexpr size_t kQ4_KBlockBytes = 144;
constexpr size_t kQ6_KBlockBytes = 210;

// Sub-block j's (0..7) 6-bit scale and min of a Q4_K super-block's 12 packed bytes.
inline void q4k_scale_min(const uint8_t* scales, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// All 8 scales and mins of a Q4_K super-block at once, as bytes: out[0] = sc_0..3, out[1] = sc_4..7,
// out[2] = m_0..3, out[3] = m_4..7 (byte j of each word is that sub-block's value; q4k_scale_min's
// rule with 32-bit masks and shifts: sc_0..3 / m_0..3 are the low 6 bits of bytes 0..3 / 4..7,
// sc_4..7 / m_4..7 take their low 4 bits from bytes 8..11 and their top 2 from the top bits of bytes
// 0..3 / 4..7). For the vector kernels, which widen the bytes into lanes.
inline void q4k_scale_min_words(const uint8_t* scales, uint32_t out[4]) {
  uint32_t u[3];
  __builtin_memcpy(u, scales, 12);
  out[0] = u[0] & 0x3f3f3f3fu;
  out[1] = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 2) & 0x30303030u);
  out[2] = u[1] & 0x3f3f3f3fu;
  out[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 2) & 0x30303030u);
}

// Element e (0..255) of a Q6_K super-block as its 6-bit value 0..63 (the -32 is the caller's).
inline int q6k_value(const uint8_t* blk, int e) {
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const uint8_t lo = blk[64 * h + l + 32 * (g & 1)];
  const int low4 = g < 2 ? (lo & 0x0f) : (lo >> 4);
  const int top2 = (blk[128 + 32 * h + l] >> (2 * g)) & 3;
  return low4 | (top2 << 4);
}

// n (a multiple of 256) elements of consecutive super-blocks to f32. Checked: n % 256.
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n);

}  // namespace lathe
