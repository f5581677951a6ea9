// x86 variants of the Q8_0 / Q4_0 kernels (contracts: qblock.h): AVX2+FMA+F16C and AVX-512 F+BW+VL.
// Every function here carries its own target attribute instead of relying on -march, so a build for
// plain AVX2 (or x86-64) contains both and qblock.cpp calls one only after CPUID says it runs. Nothing
// from a header is instantiated inside them (no std:: calls), so no AVX-512 copy of a shared inline
// function can end up in the binary for AVX2 callers.
//
// Integer core (both widths): maddubs multiplies unsigned by signed bytes and adds pairs into int16,
// madd with ones sums those into 8 int32 lanes per block — the exact integer sum, split over lanes.
// Q8_0 gives it |wq| and aq carrying wq's sign (pairs fit int16: 2*128*127 < 2^15); Q4_0 gives it the
// unsigned nibbles and subtracts 8*Σaq (kept in the activation block) in one lane. The lanes go to f32 (exact, |lane| < 2^24) and one FMA per
// block adds (d_w*d_a) * lanes to the accumulator.
#if defined(__x86_64__)
#include <immintrin.h>


#include "lathe/kernels/cpu/qblock.h"

// GCC 12's AVX-512 headers build casts, conversions and reductions on _mm512_undefined_*(), which
// its own -Wuninitialized then reports inside the header; the values are fully written.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define LATHE_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LATHE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define LATHE_ALWAYS_INLINE inline __attribute__((always_inline))

namespace lathe::qdetail {
// K-quant and F16 / BF16 kernels (qblock_kquant_x86.cpp), AVX2; the AVX-512 variant shares them.
void dot_q4_k_avx2(const uint8_t* w, const BlockQ8A* a, int64_t s, int64_t nb, int m, float* out);
void dot_q6_k_avx2(const uint8_t* w, const BlockQ8A* a, int64_t s, int64_t nb, int m, float* out);
void rows_q4_k_avx2(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb, float* out);
void dot_f16_avx2(const uint8_t* w, const float* x, int64_t s, int64_t k, int m, float* out);
void dot_bf16_avx2(const uint8_t* w, const float* x, int64_t s, int64_t k, int m, float* out);
bool prefill_rows_avx2(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                       int64_t N);
bool prefill_float_avx512(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                          int64_t N);

namespace {

// ---- AVX2 ----

LATHE_AVX2 LATHE_ALWAYS_INLINE float load_f16(const uint8_t* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

LATHE_AVX2 LATHE_ALWAYS_INLINE float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The block's 32 weights in element order: Q8_0 as signed bytes; Q4_0 as the unsigned nibbles 0..15
// (the -8 is applied to the sum, below).
template <QType T>
LATHE_AVX2 LATHE_ALWAYS_INLINE __m256i load_w(const uint8_t* blk) {
  if constexpr (T == QType::Q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  } else {
    // Low nibbles are elements 0..15, high nibbles 16..31: the two halves of the 256-bit vector.
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
  }
}

// 8 int32 lanes whose sum is Σ wq*aq for one block (`asum` = Σ aq, used by Q4_0).
// Q8_0: maddubs needs an unsigned operand: |wq|, and aq carrying wq's sign.
// Q4_0: the nibbles already are unsigned, so maddubs takes them as they are (pairs <= 2*15*127) and
// Σ (nib - 8)*aq = Σ nib*aq - 8*Σ aq goes into lane 0: two sign operations fewer per block.
template <QType T>
LATHE_AVX2 LATHE_ALWAYS_INLINE __m256i idot_lanes(__m256i w, __m256i aq, int32_t asum) {
  if constexpr (T == QType::Q8_0) {
    const __m256i wabs = _mm256_sign_epi8(w, w);  // -128 stays 0x80 = 128 unsigned: still |wq|
    const __m256i as = _mm256_sign_epi8(aq, w);   // aq * sign(wq) (0 where wq is 0, which adds 0)
    return _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, as), _mm256_set1_epi16(1));
  } else {
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, aq), _mm256_set1_epi16(1));
    return _mm256_add_epi32(p, _mm256_setr_epi32(-8 * asum, 0, 0, 0, 0, 0, 0, 0));
  }
}

constexpr size_t block_bytes(QType t) { return t == QType::Q8_0 ? kQ8_0BlockBytes : kQ4_0BlockBytes; }

// M <= 4 activation rows; two accumulators per row (even and odd blocks) so consecutive blocks do not
// wait on one FMA chain (4 cycles each). Each row's operations do not depend on M.
template <QType T, int M>
LATHE_AVX2 void dot_avx2_m(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, float* out) {
  constexpr size_t kBytes = block_bytes(T);
  __m256 acc0[M], acc1[M];
  for (int i = 0; i < M; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const uint8_t* blk = w + size_t(b) * kBytes;
    prefetch_ahead(blk);
    const float dw0 = load_f16(blk), dw1 = load_f16(blk + kBytes);
    const __m256i wq0 = load_w<T>(blk), wq1 = load_w<T>(blk + kBytes);
    for (int i = 0; i < M; i++) {
      const BlockQ8A* ab = a + i * a_stride + b;
      const __m256i p0 = idot_lanes<T>(wq0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[0].q)), ab[0].sum);
      const __m256i p1 = idot_lanes<T>(wq1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[1].q)), ab[1].sum);
      acc0[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw0 * ab[0].d), _mm256_cvtepi32_ps(p0), acc0[i]);
      acc1[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw1 * ab[1].d), _mm256_cvtepi32_ps(p1), acc1[i]);
    }
  }
  if (b < nb) {
    const uint8_t* blk = w + size_t(b) * kBytes;
    const float dw = load_f16(blk);
    const __m256i wq = load_w<T>(blk);
    for (int i = 0; i < M; i++) {
      const BlockQ8A& ab = a[i * a_stride + b];
      const __m256i p = idot_lanes<T>(wq, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.q)), ab.sum);
      acc0[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab.d), _mm256_cvtepi32_ps(p), acc0[i]);
    }
  }
  for (int i = 0; i < M; i++) out[i] = hsum256(_mm256_add_ps(acc0[i], acc1[i]));
}

// Rows 5..8 run as a second group of <= 4 over the same weight row, which is still in L1: memory
// still sees one pass, and 2 x 4 x 2 accumulators would not fit the 16 ymm registers.
template <QType T>
LATHE_AVX2 void dot_avx2(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  while (m > 0) {
    const int g = m < 4 ? m : 4;
    switch (g) {
      case 1: dot_avx2_m<T, 1>(w, a, a_stride, nb, out); break;
      case 2: dot_avx2_m<T, 2>(w, a, a_stride, nb, out); break;
      case 3: dot_avx2_m<T, 3>(w, a, a_stride, nb, out); break;
      default: dot_avx2_m<T, 4>(w, a, a_stride, nb, out); break;
    }
    m -= g;
    a += g * a_stride;
    out += g;
  }
}

// Q4_0 decode (one activation row) over R <= 4 weight rows at a time: the activation block, its
// -8·Σaq correction and d_a are loaded once per block for the R rows instead of once per row, and the
// nibbles are unpacked with a 128-bit broadcast load and a per-half variable shift (no lane insert).
// Q4_0 decode was compute-bound on AVX2 (11.5 GB/s of weights with the cache hot, under one core's
// memory bandwidth: bench/qgemv_bench pinned to AVX2); Qwen2.5-0.5B Q4_0 decode pinned to AVX2, one
// thread: 14.0 -> 19.1 tok/s. (The same 4-row scheme for Q8_0, whose AVX2 GEMV already reads faster
// than memory delivers, measured level to 10% slower in the model: not installed.)
// Each row gets exactly dot_avx2_m<Q4_0, 1>'s operations (the same lanes, the same even/odd
// accumulators, the same final sum), so its bits equal the row-by-row kernel's (qblock.h's contract).
LATHE_AVX2 LATHE_ALWAYS_INLINE __m256i nibbles_q4_0(const uint8_t* blk) {
  const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
  return _mm256_and_si256(_mm256_srlv_epi32(raw, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0f));
}

LATHE_AVX2 LATHE_ALWAYS_INLINE __m256i lanes_q4_0(__m256i w, __m256i aq, __m256i corr) {
  return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w, aq), _mm256_set1_epi16(1)), corr);
}

template <int R>
LATHE_AVX2 void rows_q4_0_avx2_r(const uint8_t* w, size_t row_bytes, const BlockQ8A* a, int64_t nb, float* out) {
  constexpr size_t kBytes = kQ4_0BlockBytes;
  __m256 acc0[R], acc1[R];
  for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m256i aq0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].q));
    const __m256i aq1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b + 1].q));
    const __m256i c0 = _mm256_setr_epi32(-8 * a[b].sum, 0, 0, 0, 0, 0, 0, 0);
    const __m256i c1 = _mm256_setr_epi32(-8 * a[b + 1].sum, 0, 0, 0, 0, 0, 0, 0);
    const float da0 = a[b].d, da1 = a[b + 1].d;
    for (int r = 0; r < R; r++) {
      const uint8_t* blk = w + size_t(r) * row_bytes + size_t(b) * kBytes;
      prefetch_ahead(blk);
      const __m256i p0 = lanes_q4_0(nibbles_q4_0(blk), aq0, c0);
      const __m256i p1 = lanes_q4_0(nibbles_q4_0(blk + kBytes), aq1, c1);
      acc0[r] = _mm256_fmadd_ps(_mm256_set1_ps(load_f16(blk) * da0), _mm256_cvtepi32_ps(p0), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(_mm256_set1_ps(load_f16(blk + kBytes) * da1), _mm256_cvtepi32_ps(p1), acc1[r]);
    }
  }
  if (b < nb) {
    const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].q));
    const __m256i c = _mm256_setr_epi32(-8 * a[b].sum, 0, 0, 0, 0, 0, 0, 0);
    for (int r = 0; r < R; r++) {
      const uint8_t* blk = w + size_t(r) * row_bytes + size_t(b) * kBytes;
      const __m256i p = lanes_q4_0(nibbles_q4_0(blk), aq, c);
      acc0[r] = _mm256_fmadd_ps(_mm256_set1_ps(load_f16(blk) * a[b].d), _mm256_cvtepi32_ps(p), acc0[r]);
    }
  }
  for (int r = 0; r < R; r++) out[r] = hsum256(_mm256_add_ps(acc0[r], acc1[r]));
}

LATHE_AVX2 void rows_q4_0_avx2(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb,
                               float* out) {
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) rows_q4_0_avx2_r<4>(w + size_t(r) * row_bytes, row_bytes, a, nb, out + r);
  for (; r < n; r++) rows_q4_0_avx2_r<1>(w + size_t(r) * row_bytes, row_bytes, a, nb, out + r);
}

// roundf (half away from zero) on 8 lanes: round to nearest even, then move exact ties outward.
// v - trunc(v) is exact for |v| < 2^23, so a tie is seen exactly.
LATHE_AVX2 LATHE_ALWAYS_INLINE __m256 round_half_away(__m256 v) {
  const __m256 signmask = _mm256_set1_ps(-0.0f);
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 away = _mm256_add_ps(t, _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, signmask)));
  const __m256 frac = _mm256_andnot_ps(signmask, _mm256_sub_ps(v, t));
  return _mm256_blendv_ps(r, away, _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_EQ_OQ));
}

// The scalar rule of qblock.h in the same f32 operations (max is exact in any order).
LATHE_AVX2 void quantize_act_avx2(const float* x, BlockQ8A* dst, int64_t nb) {
  const __m256 signmask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < nb; b++, x += kQBlock) {
    __m256 v[4];
    for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(x + 8 * i);
    const __m256 m01 = _mm256_max_ps(_mm256_andnot_ps(signmask, v[0]), _mm256_andnot_ps(signmask, v[1]));
    const __m256 m23 = _mm256_max_ps(_mm256_andnot_ps(signmask, v[2]), _mm256_andnot_ps(signmask, v[3]));
    const __m256 m8 = _mm256_max_ps(m01, m23);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dst[b].d = d;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v[i], vid)));
    const __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
    dst[b].sum = _mm_cvtsi128_si32(s4);
    // Packing interleaves the 128-bit halves: bytes come out as dwords 0,2,4,6,1,3,5,7 of the order wanted.
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i ordered = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].q), ordered);
  }
}

// ---- AVX-512: two blocks per 512-bit vector ----

template <QType T>
LATHE_AVX512 LATHE_ALWAYS_INLINE __m512i load_w2(const uint8_t* blk) {
  constexpr size_t kBytes = block_bytes(T);
  return _mm512_inserti64x4(_mm512_castsi256_si512(load_w<T>(blk)), load_w<T>(blk + kBytes), 1);
}

LATHE_AVX512 LATHE_ALWAYS_INLINE __m512i load_aq2(const BlockQ8A* ab) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[0].q))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[1].q)), 1);
}

// Lanes 0..7 for the low block, 8..15 for the high one (asum0, asum1: their Σ aq, for Q4_0).
// No 512-bit psignb: |wq| by abs (again -128 -> 128 unsigned), aq negated where wq's sign bit is set.
template <QType T>
LATHE_AVX512 LATHE_ALWAYS_INLINE __m512i idot_lanes512(__m512i w, __m512i aq, int32_t asum0, int32_t asum1) {
  if constexpr (T == QType::Q8_0) {
    const __m512i wabs = _mm512_abs_epi8(w);
    const __m512i as = _mm512_mask_sub_epi8(aq, _mm512_movepi8_mask(w), _mm512_setzero_si512(), aq);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(wabs, as), _mm512_set1_epi16(1));
  } else {
    const __m512i p = _mm512_madd_epi16(_mm512_maddubs_epi16(w, aq), _mm512_set1_epi16(1));
    return _mm512_add_epi32(
        p, _mm512_setr_epi32(-8 * asum0, 0, 0, 0, 0, 0, 0, 0, -8 * asum1, 0, 0, 0, 0, 0, 0, 0));
  }
}

template <QType T, int M>
LATHE_AVX512 void dot_avx512_m(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, float* out) {
  constexpr size_t kBytes = block_bytes(T);
  __m512 acc[M];
  for (int i = 0; i < M; i++) acc[i] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const uint8_t* blk = w + size_t(b) * kBytes;
    prefetch_ahead(blk);
    const float dw0 = load_f16(blk), dw1 = load_f16(blk + kBytes);
    const __m512i wq = load_w2<T>(blk);
    for (int i = 0; i < M; i++) {
      const BlockQ8A* ab = a + i * a_stride + b;
      const __m512i p = idot_lanes512<T>(wq, load_aq2(ab), ab[0].sum, ab[1].sum);
      const __m512 scale =
          _mm512_mask_blend_ps(__mmask16(0xff00), _mm512_set1_ps(dw0 * ab[0].d), _mm512_set1_ps(dw1 * ab[1].d));
      acc[i] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(p), acc[i]);
    }
  }
  if (b < nb) {  // odd block count: the last block in the low half, zeros above add nothing
    const uint8_t* blk = w + size_t(b) * kBytes;
    const float dw = load_f16(blk);
    const __m512i wq = _mm512_inserti64x4(_mm512_setzero_si512(), load_w<T>(blk), 0);
    for (int i = 0; i < M; i++) {
      const BlockQ8A& ab = a[i * a_stride + b];
      const __m512i aq =
          _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.q)), 0);
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(dw * ab.d), _mm512_cvtepi32_ps(idot_lanes512<T>(wq, aq, ab.sum, 0)), acc[i]);
    }
  }
  for (int i = 0; i < M; i++) out[i] = _mm512_reduce_add_ps(acc[i]);
}

template <QType T>
LATHE_AVX512 void dot_avx512(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  switch (m) {
    case 1: dot_avx512_m<T, 1>(w, a, a_stride, nb, out); break;
    case 2: dot_avx512_m<T, 2>(w, a, a_stride, nb, out); break;
    case 3: dot_avx512_m<T, 3>(w, a, a_stride, nb, out); break;
    case 4: dot_avx512_m<T, 4>(w, a, a_stride, nb, out); break;
    case 5: dot_avx512_m<T, 5>(w, a, a_stride, nb, out); break;
    case 6: dot_avx512_m<T, 6>(w, a, a_stride, nb, out); break;
    case 7: dot_avx512_m<T, 7>(w, a, a_stride, nb, out); break;
    default: dot_avx512_m<T, 8>(w, a, a_stride, nb, out); break;
  }
}

const QKernels kAvx2 = {quantize_act_avx2, dot_avx2<QType::Q8_0>, dot_avx2<QType::Q4_0>,
                        dot_q4_k_avx2,     dot_q6_k_avx2,          dot_f16_avx2,
                        dot_bf16_avx2,     rows_q4_0_avx2,         nullptr,  rows_q4_k_avx2,
                        nullptr,           prefill_rows_avx2};
// The activation quantizer is O(K) against the O(N K) products: the AVX2 one serves here too, and so
// do the K-quant and F16/BF16 kernels (qblock_kquant_x86.cpp says why).
// Its prefill GEMM takes F16 and BF16 weights (qgemm_float_avx512.cpp); block types use the tiles.
const QKernels kAvx512 = {quantize_act_avx2, dot_avx512<QType::Q8_0>, dot_avx512<QType::Q4_0>,
                          dot_q4_k_avx2,     dot_q6_k_avx2,            dot_f16_avx2,
                          dot_bf16_avx2,     nullptr,                nullptr,  nullptr, nullptr, prefill_float_avx512};

}  // namespace

const QKernels& kernels_avx2() { return kAvx2; }
const QKernels& kernels_avx512() { return kAvx512; }

}  // namespace lathe::qdetail
#endif  // __x86_64__
