// The "avx512vnni" variant's Q4_0, Q6_K, Q8_0 and Q4_K kernels (contracts: qblock.h; its prefill GEMM is
// qgemm_vnni.cpp): AVX-512 F+BW+VL plus VNNI's
// vpdpbusd, which multiplies unsigned by signed bytes and adds each group of four into an int32 lane
// in one instruction (the AVX-512 variant needs maddubs + madd for the same exact sum).
//
// Why a kernel of its own: at one thread the Q4_0 decode GEMV is compute-bound (about 9 cycles per
// block in cache, docs/quant.md), and most of that is per-block overhead rather than the products:
// the activation lanes, the Σaq correction vector and the activation scale are rebuilt for every weight
// row. Here up to four weight rows share them (decode, M = 1): the activation side of two blocks is
// built once and used four times, and each row then costs a load, a shift, an and, one vpdpbusd, the
// scale and one FMA per two blocks.
//
// Lane layout for two blocks b, b+1 in one 512-bit vector (so the weights need no byte shuffle):
//   bytes  0..15: block b elements 0..15 (its low nibbles)    16..31: block b+1 elements 0..15
//   bytes 32..47: block b elements 16..31 (its high nibbles)  48..63: block b+1 elements 16..31
// The activation bytes are permuted (64-bit lanes) into the same order, once per pair of blocks.
// Int32 lanes 0-3 and 8-11 then hold block b's partial sums, 4-7 and 12-15 block b+1's. The Q4_0
// offset −8·Σaq enters lanes 0 and 4 as the initial value of vpdpbusd, so each block's integer sum is
// exact in int32 as in every variant. One FMA per pair adds (d_w·d_a)·lanes to the accumulator of
// that (weight row, activation row); the per-accumulator operations do not depend on how many rows
// share a pass, so the 4-row decode kernel and the 1-row × M kernel give each row the same bits.
#if defined(__x86_64__)
#include <immintrin.h>

#include "lathe/core/kquant_blocks.h"
#include "lathe/kernels/cpu/qblock.h"

#include "lathe/kernels/cpu/x86_vnni_target.h"

namespace lathe::qdetail {
const QKernels& kernels_avx512();
bool prefill_avx512_vnni(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M,
                         int64_t K, int64_t N);  // qgemm_vnni.cpp

namespace {

// The shared activation side of blocks b, b+1 of one activation row (`two` false: block b alone, the
// upper block's bytes, sum and scale zero).
struct ActPair {
  __m512i q;     // bytes in the lane layout above
  __m512i init;  // −8·Σaq of block b in lane 0, of block b+1 in lane 4
  __m512 d;      // d_a of block b in its lanes, of block b+1 in its lanes
};

constexpr __mmask16 kHiBlock = 0xF0F0;  // f32 / int32 lanes of block b+1

LATHE_VNNI LATHE_ALWAYS_INLINE ActPair act_pair(const BlockQ8A* ab, bool two) {
  ActPair p;
  const __m512i lo = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[0].q)));
  const __m512i hi = two ? _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[1].q)))
                         : _mm512_setzero_si512();
  // 64-bit lanes: b's 0,1 (elements 0..15), b+1's 0,1, b's 2,3 (16..31), b+1's 2,3.
  p.q = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi);
  const int32_t s1 = two ? ab[1].sum : 0;
  p.init = _mm512_mask_set1_epi32(_mm512_maskz_set1_epi32(__mmask16(0x0001), -8 * ab[0].sum), __mmask16(0x0010), -8 * s1);
  p.d = _mm512_mask_blend_ps(kHiBlock, _mm512_set1_ps(ab[0].d), _mm512_set1_ps(two ? ab[1].d : 0.0f));
  return p;
}

// One weight row's blocks b, b+1: the nibbles in the lane layout, and d_w per lane.
LATHE_VNNI LATHE_ALWAYS_INLINE void weight_pair(const uint8_t* blk, bool two, __m512i* wq, __m512* dw) {
  const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
  const __m128i r1 = two ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kQ4_0BlockBytes + 2))
                         : _mm_setzero_si128();
  const __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(r0), r1, 1);
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1);
  *wq = _mm512_and_si512(both, _mm512_set1_epi8(0x0f));
  uint16_t h0, h1 = 0;
  __builtin_memcpy(&h0, blk, 2);
  if (two) __builtin_memcpy(&h1, blk + kQ4_0BlockBytes, 2);
  // 16-bit lane j becomes f32 lane j: block b+1's scale in lanes 4-7 and 12-15.
  const __m256i h = _mm256_mask_set1_epi16(_mm256_set1_epi16(short(h0)), kHiBlock, short(h1));
  *dw = _mm512_cvtph_ps(h);
}

// Several weight rows per pass read as many interleaved streams, each one row long; the hardware
// prefetcher did not follow them (from memory the 4-row Q4_0 pass read 2.4 GB/s against the 1-row
// pass's 5). So the pass prefetches the next group of rows (R·row_bytes further, which is contiguous)
// at the rate it consumes its own: `lines` cache lines from `p` per step. Into L2 (T1), not L1: the
// next group is used a whole group later, and T1 measured faster than T0 (decode of the 0.5B shape,
// interleaved runs: Q8_0 +3-5% on one thread and +5-6% on two, Q4_K and Q6_K +3% and
// +8-11%, Q4_0 level; prefetching two or four groups ahead was slower, NTA far slower).
LATHE_VNNI LATHE_ALWAYS_INLINE void prefetch_next(const uint8_t* p, int lines) {
  for (int l = 0; l < lines; l++) _mm_prefetch(reinterpret_cast<const char*>(p + 64 * l), _MM_HINT_T1);
}

// One pair of blocks (b, b+1; `two` false: b alone) of R weight rows × M activation rows.
// (A function rather than a lambda: GCC does not give a lambda its caller's target attribute.)
template <int R, int M>
LATHE_VNNI LATHE_ALWAYS_INLINE void tile_step(__m512 (&acc)[R][M], const uint8_t* w, size_t row_bytes,
                                              const BlockQ8A* a, int64_t a_stride, int64_t b, bool two) {
  ActPair ap[M];
  for (int i = 0; i < M; i++) ap[i] = act_pair(a + i * a_stride + b, two);
  if constexpr (R > 1) prefetch_next(w + R * row_bytes + size_t(b) * R * kQ4_0BlockBytes, 3);
  for (int r = 0; r < R; r++) {
    __m512i wq;
    __m512 dw;
    weight_pair(w + r * row_bytes + size_t(b) * kQ4_0BlockBytes, two, &wq, &dw);
    for (int i = 0; i < M; i++) {
      const __m512i p = _mm512_dpbusd_epi32(ap[i].init, wq, ap[i].q);
      acc[r][i] = _mm512_fmadd_ps(_mm512_mul_ps(dw, ap[i].d), _mm512_cvtepi32_ps(p), acc[r][i]);
    }
  }
}

// R weight rows (row_bytes apart) × M activation rows (a_stride blocks apart): out[r * M + i].
template <int R, int M>
LATHE_VNNI void q4_0_tile(const uint8_t* w, size_t row_bytes, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                          float* out) {
  __m512 acc[R][M];
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) acc[r][i] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) tile_step<R, M>(acc, w, row_bytes, a, a_stride, b, true);
  if (b < nb) tile_step<R, M>(acc, w, row_bytes, a, a_stride, b, false);
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) out[r * M + i] = _mm512_reduce_add_ps(acc[r][i]);
}

// The QKernels contract: one weight row against m <= 8 activation rows.
LATHE_VNNI void dot_q4_0_vnni(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  switch (m) {
    case 1: return q4_0_tile<1, 1>(w, 0, a, a_stride, nb, out);
    case 2: return q4_0_tile<1, 2>(w, 0, a, a_stride, nb, out);
    case 3: return q4_0_tile<1, 3>(w, 0, a, a_stride, nb, out);
    case 4: return q4_0_tile<1, 4>(w, 0, a, a_stride, nb, out);
    case 5: return q4_0_tile<1, 5>(w, 0, a, a_stride, nb, out);
    case 6: return q4_0_tile<1, 6>(w, 0, a, a_stride, nb, out);
    case 7: return q4_0_tile<1, 7>(w, 0, a, a_stride, nb, out);
    default: return q4_0_tile<1, 8>(w, 0, a, a_stride, nb, out);
  }
}

// Decode: n weight rows against one activation row, four at a time.
LATHE_VNNI void rows_q4_0_vnni(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb,
                               float* out) {
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) q4_0_tile<4, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
  for (; r < n; r++) q4_0_tile<1, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
}

// ---- Q6_K ----
// A super-block's 8 activation blocks in four pairs. Pair p holds blocks 2p, 2p+1: bytes 0..31 block
// 2p, 32..63 block 2p+1, so int32 lanes 0-3 / 4-7 / 8-11 / 12-15 carry the scale groups 4p .. 4p+3
// (a Q6_K scale covers 16 elements). The 6-bit values need no byte shuffle in this order: pair p of
// half h = p / 2 is the 64 bytes ql[64h ..] (low nibbles for even p, high for odd p) with the 2-bit
// tops of qh[32h ..] (the same 32 bytes for both blocks: bits 0-1 / 2-3 for p even, 4-5 / 6-7 for p
// odd). vpdpbusd takes q unsigned (0..63); the −32 offset is −32·Σaq per lane, an activation-only
// term computed once per pair and activation row (vpdpbusd of 32s with aq) and shared by the weight
// rows, as the initial value of the weight's vpdpbusd: each lane's integer sum is exact. Then each
// lane is scaled in f32 by (d·sc_group)·d_a (d·sc exact in f32 is not needed: variants agree with the
// scalar reference to rounding; with unit scales every term is an exact integer).

// The activation side of pair p of one activation row: bytes, initial lanes, d_a per lane.
LATHE_VNNI LATHE_ALWAYS_INLINE ActPair act_pair_q6(const BlockQ8A* ab) {
  ActPair p;
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[0].q));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[1].q));
  p.q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  p.init = _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(32), p.q));
  p.d = _mm512_mask_blend_ps(__mmask16(0xFF00), _mm512_set1_ps(ab[0].d), _mm512_set1_ps(ab[1].d));
  return p;
}

// Pair p's 64 six-bit values (unsigned, 0..63) of one super-block.
LATHE_VNNI LATHE_ALWAYS_INLINE __m512i q6_pair(const uint8_t* blk, int p) {
  const int h = p / 2;
  const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
  const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
  // Bits 2g, 2g+1 of qh to bits 4, 5 of each byte (16-bit shifts: the 0x30 mask drops what crosses a
  // byte): block 4h+g shifts left by 4 − 2g (g = 0, 1) or right by 2g − 4 (g = 2, 3).
  const __m512i top =
      (p & 1) ? _mm512_srlv_epi16(qh, _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1))
              : _mm512_sllv_epi16(qh, _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1));
  const __m512i low = (p & 1) ? _mm512_srli_epi16(ql, 4) : ql;
  // (low & 0x0f) | (top & 0x30), in one ternary-logic op: bit by bit, mask m selects low or top.
  return _mm512_ternarylogic_epi32(_mm512_and_si512(low, _mm512_set1_epi8(0x0f)), top, _mm512_set1_epi8(0x30),
                                   0xF8);  // a | (b & c)
}

template <int R, int M>
LATHE_VNNI void q6_k_tile(const uint8_t* w, size_t row_bytes, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                          float* out) {
  __m512 acc[R][M];
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) acc[r][i] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nb / 8; sb++) {
    __m512 dsc[R];  // d·sc_g for the 16 groups, per row
    for (int r = 0; r < R; r++) {
      const uint8_t* blk = w + r * row_bytes + size_t(sb) * kQ6_KBlockBytes;
      uint16_t hd;
      __builtin_memcpy(&hd, blk + 208, 2);
      const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
      dsc[r] = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), _mm512_set1_ps(_cvtsh_ss(hd)));
    }
    for (int p = 0; p < 4; p++) {
      // Rows consume R·210 bytes per super-block, a quarter per pair: 4 lines cover it.
      if constexpr (R > 1) prefetch_next(w + R * row_bytes + (size_t(sb) * 4 + p) * R * kQ6_KBlockBytes / 4, 4);
      ActPair ap[M];
      for (int i = 0; i < M; i++) ap[i] = act_pair_q6(a + i * a_stride + sb * 8 + 2 * p);
      // Lanes 4k..4k+3 take group 4p + k.
      const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(4 * p),
                                           _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
      for (int r = 0; r < R; r++) {
        const __m512i q = q6_pair(w + r * row_bytes + size_t(sb) * kQ6_KBlockBytes, p);
        const __m512 s = _mm512_permutexvar_ps(idx, dsc[r]);
        for (int i = 0; i < M; i++) {
          const __m512i v = _mm512_dpbusd_epi32(ap[i].init, q, ap[i].q);
          acc[r][i] = _mm512_fmadd_ps(_mm512_mul_ps(s, ap[i].d), _mm512_cvtepi32_ps(v), acc[r][i]);
        }
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) out[r * M + i] = _mm512_reduce_add_ps(acc[r][i]);
}

LATHE_VNNI void dot_q6_k_vnni(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  switch (m) {
    case 1: return q6_k_tile<1, 1>(w, 0, a, a_stride, nb, out);
    case 2: return q6_k_tile<1, 2>(w, 0, a, a_stride, nb, out);
    case 3: return q6_k_tile<1, 3>(w, 0, a, a_stride, nb, out);
    case 4: return q6_k_tile<1, 4>(w, 0, a, a_stride, nb, out);
    case 5: return q6_k_tile<1, 5>(w, 0, a, a_stride, nb, out);
    case 6: return q6_k_tile<1, 6>(w, 0, a, a_stride, nb, out);
    case 7: return q6_k_tile<1, 7>(w, 0, a, a_stride, nb, out);
    default: return q6_k_tile<1, 8>(w, 0, a, a_stride, nb, out);
  }
}

LATHE_VNNI void rows_q6_k_vnni(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb,
                               float* out) {
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) q6_k_tile<4, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
  for (; r < n; r++) q6_k_tile<1, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
}

// ---- Q8_0 ----
// Two blocks per vector in their natural order (bytes 0..31 block b, 32..63 block b+1; int32 lanes
// 0-7 / 8-15), the signed weights made unsigned for vpdpbusd by q+128 (an xor of the sign bit) and the
// offset −128·Σaq of each block as the initial value of its lane 0 / 8: each block's sum is exact.

LATHE_VNNI LATHE_ALWAYS_INLINE ActPair act_pair_q8(const BlockQ8A* ab, bool two) {
  ActPair p;
  const __m512i lo = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[0].q)));
  p.q = two ? _mm512_inserti64x4(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[1].q)), 1)
            : _mm512_inserti64x4(lo, _mm256_setzero_si256(), 1);
  const int32_t s1 = two ? ab[1].sum : 0;
  p.init = _mm512_mask_set1_epi32(_mm512_maskz_set1_epi32(__mmask16(0x0001), -128 * ab[0].sum), __mmask16(0x0100),
                                  -128 * s1);
  p.d = _mm512_mask_blend_ps(__mmask16(0xFF00), _mm512_set1_ps(ab[0].d), _mm512_set1_ps(two ? ab[1].d : 0.0f));
  return p;
}

LATHE_VNNI LATHE_ALWAYS_INLINE void weight_pair_q8(const uint8_t* blk, bool two, __m512i* wq, __m512* dw) {
  const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m256i r1 = two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQ8_0BlockBytes + 2))
                         : _mm256_set1_epi8(char(0x80));  // xor below makes it 0
  *wq = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(r0), r1, 1), _mm512_set1_epi8(char(0x80)));
  uint16_t h0, h1 = 0;
  __builtin_memcpy(&h0, blk, 2);
  if (two) __builtin_memcpy(&h1, blk + kQ8_0BlockBytes, 2);
  const __m256i h = _mm256_mask_set1_epi16(_mm256_set1_epi16(short(h0)), __mmask16(0xFF00), short(h1));
  *dw = _mm512_cvtph_ps(h);
}

template <int R, int M>
LATHE_VNNI LATHE_ALWAYS_INLINE void tile_step_q8(__m512 (&acc)[R][M], const uint8_t* w, size_t row_bytes,
                                                 const BlockQ8A* a, int64_t a_stride, int64_t b, bool two) {
  ActPair ap[M];
  for (int i = 0; i < M; i++) ap[i] = act_pair_q8(a + i * a_stride + b, two);
  // Rows consume R·68 bytes per pair of blocks: 5 lines per step cover the next R rows' share (R = 4).
  if constexpr (R > 1) prefetch_next(w + R * row_bytes + size_t(b) * R * kQ8_0BlockBytes, 5);
  for (int r = 0; r < R; r++) {
    __m512i wq;
    __m512 dw;
    weight_pair_q8(w + r * row_bytes + size_t(b) * kQ8_0BlockBytes, two, &wq, &dw);
    for (int i = 0; i < M; i++) {
      const __m512i p = _mm512_dpbusd_epi32(ap[i].init, wq, ap[i].q);
      acc[r][i] = _mm512_fmadd_ps(_mm512_mul_ps(dw, ap[i].d), _mm512_cvtepi32_ps(p), acc[r][i]);
    }
  }
}

template <int R, int M>
LATHE_VNNI void q8_0_tile(const uint8_t* w, size_t row_bytes, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                          float* out) {
  __m512 acc[R][M];
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) acc[r][i] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) tile_step_q8<R, M>(acc, w, row_bytes, a, a_stride, b, true);
  if (b < nb) tile_step_q8<R, M>(acc, w, row_bytes, a, a_stride, b, false);
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) out[r * M + i] = _mm512_reduce_add_ps(acc[r][i]);
}

LATHE_VNNI void dot_q8_0_vnni(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  switch (m) {
    case 1: return q8_0_tile<1, 1>(w, 0, a, a_stride, nb, out);
    case 2: return q8_0_tile<1, 2>(w, 0, a, a_stride, nb, out);
    case 3: return q8_0_tile<1, 3>(w, 0, a, a_stride, nb, out);
    case 4: return q8_0_tile<1, 4>(w, 0, a, a_stride, nb, out);
    case 5: return q8_0_tile<1, 5>(w, 0, a, a_stride, nb, out);
    case 6: return q8_0_tile<1, 6>(w, 0, a, a_stride, nb, out);
    case 7: return q8_0_tile<1, 7>(w, 0, a, a_stride, nb, out);
    default: return q8_0_tile<1, 8>(w, 0, a, a_stride, nb, out);
  }
}

LATHE_VNNI void rows_q8_0_vnni(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb,
                               float* out) {
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) q8_0_tile<4, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
  for (; r < n; r++) q8_0_tile<1, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
}

// ---- Q4_K ----
// A super-block's 128 qs bytes are four chunks of 32; chunk c holds sub-blocks 2c (low nibbles) and
// 2c+1 (high nibbles), which are activation blocks 2c, 2c+1: one 512-bit vector per chunk, bytes 0..31
// sub-block 2c, 32..63 sub-block 2c+1, int32 lanes 0-7 / 8-15 their partial sums (vpdpbusd, nibbles
// unsigned 0..15, no offset: exact). Scales: the 12 packed bytes give sc_0..7 and m_0..7 with a few
// 32-bit masks and shifts (kquant_blocks.h's layout: sc_0..3 and m_0..3 are the low 6 bits of
// bytes 0..3 and 4..7; sc_4..7 and m_4..7 take their low 4 bits from bytes 8..11 and their top 2 bits
// from the top bits of bytes 0..3 and 4..7), then f32 lanes 0-7 d·sc_j and 8-15 dmin·m_j, times d_a
// of block j in both halves: `sd`. Per chunk the lanes take sd's entries 2c / 2c+1 (one permute), and
// the min term Σ_j (dmin·m_j·d_a,j)·Σaq_j is one fnmadd of sd's upper half with the Σaq lanes per
// super-block. The per-(weight row, activation row) operations do not depend on R or M, so the 4-row
// decode kernel and the 1-row × M kernel give each row the same bits.

// Lanes 0-7: d_a of the super-block's 8 activation blocks, lanes 8-15 again; `sq`: lanes 8-15 Σaq.
LATHE_VNNI LATHE_ALWAYS_INLINE void act_q4_k(const BlockQ8A* ab, __m512* da, __m512* sq) {
  const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(sizeof(BlockQ8A))));
  const __m256 d = _mm256_i32gather_ps(&ab[0].d, idx, 1);
  const __m256 sums = _mm256_cvtepi32_ps(_mm256_i32gather_epi32(&ab[0].sum, idx, 1));
  *da = _mm512_insertf32x8(_mm512_castps256_ps512(d), d, 1);
  *sq = _mm512_insertf32x8(_mm512_setzero_ps(), sums, 1);
}

// Lanes 0-7 d·sc_j, 8-15 dmin·m_j of one super-block.
LATHE_VNNI LATHE_ALWAYS_INLINE __m512 q4_k_scales(const uint8_t* blk) {
  uint32_t words[4];  // sc_0..3, sc_4..7, m_0..3, m_4..7 as bytes
  q4k_scale_min_words(blk + 4, words);
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(words));
  uint16_t hd, hm;
  __builtin_memcpy(&hd, blk, 2);
  __builtin_memcpy(&hm, blk + 2, 2);
  const __m512 dd = _mm512_mask_blend_ps(__mmask16(0xFF00), _mm512_set1_ps(_cvtsh_ss(hd)), _mm512_set1_ps(_cvtsh_ss(hm)));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), dd);
}

template <int R, int M>
LATHE_VNNI void q4_k_tile(const uint8_t* w, size_t row_bytes, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                          float* out) {
  __m512 acc[R][M];
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) acc[r][i] = _mm512_setzero_ps();
  const __m512i lo4 = _mm512_set1_epi8(0x0f);
  for (int64_t sb = 0; sb < nb / 8; sb++) {
    __m512 da[M], sq[M];
    for (int i = 0; i < M; i++) act_q4_k(a + i * a_stride + sb * 8, &da[i], &sq[i]);
    __m512 sm[R];
    for (int r = 0; r < R; r++) sm[r] = q4_k_scales(w + r * row_bytes + size_t(sb) * kQ4_KBlockBytes);
    // Rows consume R·144 bytes per super-block: 9 lines per step cover the next R rows' share (R = 4).
    if constexpr (R > 1) prefetch_next(w + R * row_bytes + size_t(sb) * R * kQ4_KBlockBytes, 9);
    __m512 sd[R][M];
    for (int r = 0; r < R; r++)
      for (int i = 0; i < M; i++) {
        sd[r][i] = _mm512_mul_ps(sm[r], da[i]);
        acc[r][i] = _mm512_fnmadd_ps(sd[r][i], sq[i], acc[r][i]);  // lanes 8-15: the min term
      }
    for (int c = 0; c < 4; c++) {
      const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(2 * c), _mm256_set1_epi32(2 * c + 1), 1);
      __m512i aq[M];
      for (int i = 0; i < M; i++) {
        const BlockQ8A* ab = a + i * a_stride + sb * 8 + 2 * c;
        aq[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[0].q))),
                                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[1].q)), 1);
      }
      for (int r = 0; r < R; r++) {
        const __m256i raw =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * row_bytes + size_t(sb) * kQ4_KBlockBytes + 16 + 32 * c));
        const __m512i q = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), lo4);
        for (int i = 0; i < M; i++) {
          const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, aq[i]);
          acc[r][i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx, sd[r][i]), _mm512_cvtepi32_ps(p), acc[r][i]);
        }
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) out[r * M + i] = _mm512_reduce_add_ps(acc[r][i]);
}

LATHE_VNNI void dot_q4_k_vnni(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  switch (m) {
    case 1: return q4_k_tile<1, 1>(w, 0, a, a_stride, nb, out);
    case 2: return q4_k_tile<1, 2>(w, 0, a, a_stride, nb, out);
    case 3: return q4_k_tile<1, 3>(w, 0, a, a_stride, nb, out);
    case 4: return q4_k_tile<1, 4>(w, 0, a, a_stride, nb, out);
    case 5: return q4_k_tile<1, 5>(w, 0, a, a_stride, nb, out);
    case 6: return q4_k_tile<1, 6>(w, 0, a, a_stride, nb, out);
    case 7: return q4_k_tile<1, 7>(w, 0, a, a_stride, nb, out);
    default: return q4_k_tile<1, 8>(w, 0, a, a_stride, nb, out);
  }
}

LATHE_VNNI void rows_q4_k_vnni(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb,
                               float* out) {
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) q4_k_tile<4, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
  for (; r < n; r++) q4_k_tile<1, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
}

QKernels make_vnni() {
  QKernels k = kernels_avx512();
  k.dot_q4_0 = dot_q4_0_vnni;
  k.rows_q4_0 = rows_q4_0_vnni;
  k.dot_q6_k = dot_q6_k_vnni;
  k.rows_q6_k = rows_q6_k_vnni;
  k.dot_q8_0 = dot_q8_0_vnni;
  k.rows_q8_0 = rows_q8_0_vnni;
  k.dot_q4_k = dot_q4_k_vnni;
  k.rows_q4_k = rows_q4_k_vnni;
  k.prefill = prefill_avx512_vnni;
  return k;
}

}  // namespace

const QKernels& kernels_avx512_vnni() {
  static const QKernels k = make_vnni();
  return k;
}

}  // namespace lathe::qdetail
#endif  // __x86_64__
