// AVX2+FMA+F16C kernels of the K-quant (Q4_K, Q6_K) and F16 / BF16 weight rows (contracts: qblock.h;
// layouts: core/kquant_blocks.h). The AVX-512 variant uses these too: on these types the work per
// weight byte is unpacking, which 512-bit vectors would not shorten much, and an AVX-512 CPU runs
// AVX2 code. As in qblock_x86.cpp every function carries its own target attribute and nothing from a
// header is instantiated inside them, so a plain x86-64 build holds them and runs them only after CPUID.
//
// Q4_K, per 32-element activation block j of a super-block: the 32 nibbles (low or high half of 32
// bytes) go to maddubs unsigned against aq and madd with ones: 8 exact int32 lanes of Σ q*aq; one FMA
// adds (d*sc_j*d_a) * lanes, and the min term (dmin*m_j)*(d_a*Σaq_j) is one FMA per super-block over
// the 8 blocks' lanes, subtracted at the end (q4k_tile).
// Q6_K: the 6-bit values rebuilt from ql (nibble) and qh (2 bits), minus 32 as signed bytes; maddubs on
// |w| with aq carrying w's sign (the Q8_0 trick), then madd with (sc_2j x 8 | sc_2j+1 x 8) int16 lanes:
// the two halves of the block get their own scale in the same instruction.
// Q4_K is a tile of R weight rows x M activation rows with the same operations per pair, so the 4-row
// decode kernel (rows_q4_k) and the dot of one row give the same bits. (The same scheme for Q6_K, with
// ql/qh loaded once per half super-block and the scale pairs from vpermd + vpshufb, ran its hot GEMV
// 1.5-1.9x faster but decoded a Q6_K model pinned to AVX2 at 1.14x with one thread and 0.92x with two,
// with or without the 4-row kernel: not kept.)
#if defined(__x86_64__)
#include <immintrin.h>

#include "lathe/core/kquant_blocks.h"
#include "lathe/kernels/cpu/qblock.h"

#define LATHE_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LATHE_ALWAYS_INLINE inline __attribute__((always_inline))

namespace lathe::qdetail {
namespace {

LATHE_AVX2 LATHE_ALWAYS_INLINE float f16_at(const uint8_t* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

LATHE_AVX2 LATHE_ALWAYS_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LATHE_AVX2 LATHE_ALWAYS_INLINE __m256i load_aq(const BlockQ8A& ab) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.q));
}

// Lanes j = 0..7 of one super-block: d·sc_j in *sc, dmin·m_j in *mn (kquant_blocks.h's packed bytes,
// q4k_scale_min_words). Both products are exact (an f16 times a 6-bit integer).
LATHE_AVX2 LATHE_ALWAYS_INLINE void q4k_scales(const uint8_t* blk, __m256* sc, __m256* mn) {
  uint32_t words[4];
  q4k_scale_min_words(blk + 4, words);
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(words));
  *sc = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), _mm256_set1_ps(f16_at(blk)));
  *mn = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8))), _mm256_set1_ps(f16_at(blk + 2)));
}

// R weight rows (row_bytes apart) × M activation rows (a_stride blocks apart): out[r * M + i].
// Per super-block and activation row, lanes j: d_a,j and d_a,j·Σaq_j (two gathers over the 8 blocks);
// per weight row the lanes d·sc_j, dmin·m_j. Per 32-element block j the nibbles go to maddubs (unsigned)
// against aq and madd with ones: 8 exact int32 lanes of Σ q·aq; one FMA adds (d·sc_j·d_a,j) · lanes,
// the factor taken from lane j of the per-row product (vpermps). The min term is one FMA per super-
// block over the 8 lanes, (dmin·m_j)·(d_a,j·Σaq_j), subtracted at the end. Each (weight row,
// activation row) pair gets the same operations whatever R and M, so the multi-row decode kernel and
// the dot of one row give the same bits. Before (the scales unpacked per block with scalar code and
// the min term summed in scalar) the AVX2 Q4_K GEMV ran at 10.5 GB/s of weights with the cache hot:
// under one core's memory bandwidth, so decode was compute-bound.
template <int R, int M>
LATHE_AVX2 void q4k_tile(const uint8_t* w, size_t row_bytes, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                         float* out) {
  __m256 acc[R][M], mins[R][M];
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) acc[r][i] = mins[r][i] = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const __m256i stride = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i idx = _mm256_mullo_epi32(stride, _mm256_set1_epi32(int(sizeof(BlockQ8A))));
  for (int64_t sb = 0; sb < nb / 8; sb++) {
    __m256 da[M], dsum[M];
    for (int i = 0; i < M; i++) {
      const BlockQ8A* ab = a + i * a_stride + sb * 8;
      da[i] = _mm256_i32gather_ps(&ab[0].d, idx, 1);
      dsum[i] = _mm256_mul_ps(da[i], _mm256_cvtepi32_ps(_mm256_i32gather_epi32(&ab[0].sum, idx, 1)));
    }
    for (int r = 0; r < R; r++) {
      const uint8_t* blk = w + size_t(r) * row_bytes + size_t(sb) * kQ4_KBlockBytes;
      for (int l = 0; l < int(kQ4_KBlockBytes); l += 64) prefetch_ahead(blk + l);
      __m256 sc, mn;
      q4k_scales(blk, &sc, &mn);
      __m256 f[M];
      for (int i = 0; i < M; i++) {
        mins[r][i] = _mm256_fmadd_ps(mn, dsum[i], mins[r][i]);
        f[i] = _mm256_mul_ps(sc, da[i]);
      }
      for (int p = 0; p < 4; p++) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * p));
        const __m256i qlo = _mm256_and_si256(raw, low4);                        // block 2p
        const __m256i qhi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);  // block 2p+1
        const __m256i j0 = _mm256_set1_epi32(2 * p), j1 = _mm256_set1_epi32(2 * p + 1);
        for (int i = 0; i < M; i++) {
          const BlockQ8A* ab = a + i * a_stride + sb * 8 + 2 * p;
          const __m256i l0 = _mm256_madd_epi16(_mm256_maddubs_epi16(qlo, load_aq(ab[0])), ones);
          const __m256i l1 = _mm256_madd_epi16(_mm256_maddubs_epi16(qhi, load_aq(ab[1])), ones);
          acc[r][i] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(f[i], j0), _mm256_cvtepi32_ps(l0), acc[r][i]);
          acc[r][i] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(f[i], j1), _mm256_cvtepi32_ps(l1), acc[r][i]);
        }
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int i = 0; i < M; i++) out[r * M + i] = hsum(acc[r][i]) - hsum(mins[r][i]);
}

template <int M>
LATHE_AVX2 void q4k_m(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, float* out) {
  q4k_tile<1, M>(w, 0, a, a_stride, nb, out);
}

LATHE_AVX2 void rows_q4_k_avx2_impl(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb,
                                    float* out) {
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) q4k_tile<4, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
  for (; r < n; r++) q4k_tile<1, 1>(w + size_t(r) * row_bytes, row_bytes, a, nb, nb, out + r);
}

// Block j's 32 six-bit values minus 32, as signed bytes in element order.
LATHE_AVX2 LATHE_ALWAYS_INLINE __m256i q6k_block(const uint8_t* blk, int j) {
  const int h = j / 4, g = j % 4;
  const __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32 * (g & 1)));
  const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
  const __m256i low = _mm256_and_si256(g < 2 ? ql : _mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0f));
  // srl by 2g moves bits across byte boundaries inside each 16-bit lane; the mask drops them.
  const __m256i top = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * g)), _mm256_set1_epi8(0x03));
  const __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(top, 4));
  return _mm256_sub_epi8(q, _mm256_set1_epi8(32));
}

template <int M>
LATHE_AVX2 void q6k_m(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, float* out) {
  __m256 acc0[M], acc1[M];
  for (int i = 0; i < M; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nb / 8; sb++) {
    const uint8_t* blk = w + size_t(sb) * kQ6_KBlockBytes;
    for (int l = 0; l < int(kQ6_KBlockBytes); l += 64) prefetch_ahead(blk + l);
    const float d = f16_at(blk + 208);
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
    for (int j = 0; j < 8; j++) {
      const __m256i wq = q6k_block(blk, j);
      const __m256i wabs = _mm256_sign_epi8(wq, wq);  // |w| <= 32
      const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[2 * j + 1]), _mm_set1_epi16(sc[2 * j]));
      for (int i = 0; i < M; i++) {
        const BlockQ8A& ab = a[i * a_stride + sb * 8 + j];
        const __m256i as = _mm256_sign_epi8(load_aq(ab), wq);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, as), scv);
        __m256& acc = (j & 1) ? acc1[i] : acc0[i];
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d * ab.d), _mm256_cvtepi32_ps(p), acc);
      }
    }
  }
  for (int i = 0; i < M; i++) out[i] = hsum(_mm256_add_ps(acc0[i], acc1[i]));
}

// Float rows: 16 weights per step in two 8-lane vectors (two accumulators per row), the tail below 16
// in scalar order after the vector sum.
template <bool kBf16>
LATHE_AVX2 LATHE_ALWAYS_INLINE __m256 load8(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  else return _mm256_cvtph_ps(h);
}

template <bool kBf16>
LATHE_AVX2 LATHE_ALWAYS_INLINE float load1(const uint8_t* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, 2);
  if constexpr (kBf16) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
  } else {
    return _cvtsh_ss(h);
  }
}

template <bool kBf16, int M>
LATHE_AVX2 void fdot_m(const uint8_t* w, const float* x, int64_t x_stride, int64_t k, float* out) {
  __m256 acc0[M], acc1[M];
  for (int i = 0; i < M; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    prefetch_ahead(w + 2 * j);
    const __m256 w0 = load8<kBf16>(w + 2 * j), w1 = load8<kBf16>(w + 2 * j + 16);
    for (int i = 0; i < M; i++) {
      const float* xi = x + i * x_stride + j;
      acc0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xi), acc0[i]);
      acc1[i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xi + 8), acc1[i]);
    }
  }
  for (int i = 0; i < M; i++) {
    float s = hsum(_mm256_add_ps(acc0[i], acc1[i]));
    for (int64_t t = j; t < k; t++) s += load1<kBf16>(w + 2 * t) * x[i * x_stride + t];
    out[i] = s;
  }
}

// m <= 8 rows as groups of <= 4 over the same weight row (still in L1): memory sees one pass.
using QFn = void (*)(const uint8_t*, const BlockQ8A*, int64_t, int64_t, float*);
using FFn = void (*)(const uint8_t*, const float*, int64_t, int64_t, float*);
constexpr QFn kQ4k[4] = {q4k_m<1>, q4k_m<2>, q4k_m<3>, q4k_m<4>};  // M = 3, 4 spill a little: batched decode only
constexpr QFn kQ6k[4] = {q6k_m<1>, q6k_m<2>, q6k_m<3>, q6k_m<4>};
constexpr FFn kF16[4] = {fdot_m<false, 1>, fdot_m<false, 2>, fdot_m<false, 3>, fdot_m<false, 4>};
constexpr FFn kBf16[4] = {fdot_m<true, 1>, fdot_m<true, 2>, fdot_m<true, 3>, fdot_m<true, 4>};

template <class Fn, class In>
void in_groups(const Fn* fns, const uint8_t* w, const In* in, int64_t stride, int64_t n, int m, float* out) {
  for (int done = 0; done < m;) {
    const int g = m - done < 4 ? m - done : 4;
    fns[g - 1](w, in + done * stride, stride, n, out + done);
    done += g;
  }
}

}  // namespace

// Plain entry points (no target attribute: a declaration elsewhere without one names the same
// function, where GCC would otherwise take a differently targeted one for a multiversioned overload).
void dot_q4_k_avx2(const uint8_t* w, const BlockQ8A* a, int64_t s, int64_t nb, int m, float* out) {
  in_groups(kQ4k, w, a, s, nb, m, out);
}
void dot_q6_k_avx2(const uint8_t* w, const BlockQ8A* a, int64_t s, int64_t nb, int m, float* out) {
  in_groups(kQ6k, w, a, s, nb, m, out);
}
void rows_q4_k_avx2(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb, float* out) {
  rows_q4_k_avx2_impl(w, row_bytes, n, a, nb, out);
}
void dot_f16_avx2(const uint8_t* w, const float* x, int64_t s, int64_t k, int m, float* out) {
  in_groups(kF16, w, x, s, k, m, out);
}
void dot_bf16_avx2(const uint8_t* w, const float* x, int64_t s, int64_t k, int m, float* out) {
  in_groups(kBf16, w, x, s, k, m, out);
}

}  // namespace lathe::qdetail
#endif  // __x86_64__
