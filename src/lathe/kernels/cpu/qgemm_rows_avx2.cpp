// Prefill GEMM of the "avx2" variant for every weight type (contracts: qblock.h, qmatmul_forward with
// M >= kQPrefillRows; QKernels::prefill): weight rows converted to f32 four at a time, a register tile
// of 3 input rows × 4 weight rows.
//
// Why not the tiles + sgemm of qgemm.cpp (what this variant ran before): at prompt sizes OpenBLAS's
// Haswell sgemm packs both operands for every 64-row tile, and the tile's conversion was a third pass
// over it; on the Qwen2.5-0.5B shapes the AVX2 prefill ran at 47-58 GFLOP/s for F16/Q8_0/Q4_0/Q4_K
// and 18 for Q6_K, whose conversion was the scalar dequantizer (bench/qgemm_prefill_bench with
// LATHE_CPU_ISA=avx2). Here the 12 accumulators (ymm, partial dot products along K) take per 8
// elements 3 input loads, 4 weight loads and 12 FMAs: no packing, the 16 registers full. The 4 rows
// are converted once into a per-thread buffer (exactly dequantize_row's values: the conversions below
// round as it does, and this file is compiled without FMA contraction, as the dequantizers are) and
// reused by every group of 3 input rows, K in chunks that keep the tile's operands in a 32 KiB L1.
// The next 4 weight rows are prefetched to L2 a share per tile, so they stream from memory while this
// group's products run (qgemm_vnni.cpp found the first touch of each panel waiting on memory).
//
// Numbers: each output is the f32 sum of the exact products of the dequantized weights and the inputs
// in 8 lane-wise partial sums per K chunk, reduced and added chunk by chunk: another order of the
// additions than sgemm's, the same for every thread count (each output's operations do not depend on
// the split). The activations are not quantized (as in the tiles).
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lathe/core/kquant_blocks.h"
#include "lathe/kernels/cpu/qblock.h"
#include "lathe/kernels/cpu/qgemm_rows_driver.h"

#define LATHE_AVX2F __attribute__((target("avx2,fma,f16c")))
#define LATHE_INLINE inline __attribute__((always_inline))

namespace lathe::qdetail {

namespace {

constexpr int kRowsM = 3;          // input rows per register tile
constexpr int kRowsN = 4;          // weight rows per register tile: 12 accumulators + 3 inputs + 1 weight
constexpr int64_t kChunkK = 512;   // 4·512·4 + 3·512·4 bytes = 14 KiB of operands per chunk

LATHE_AVX2F LATHE_INLINE float load_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 8 int8 at p as f32.
LATHE_AVX2F LATHE_INLINE __m256 i8x8(const int8_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v)));
}

// Q6_K super-blocks as f32: (d·sc)·(q − 32), dequantize_q6_k's rounding.
LATHE_AVX2F void q6_k_to_f32(const uint8_t* src, float* dst, int64_t k) {
  const __m256i lo4 = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
  alignas(32) int8_t q[4][32];
  for (int64_t b = 0; b < k / kQK_K; b++, src += kQ6_KBlockBytes, dst += kQK_K) {
    const float d = load_half(src + 208);
    const auto* sc = reinterpret_cast<const int8_t*>(src + 192);
    for (int h = 0; h < 2; h++) {
      const __m256i qla = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 64 * h));
      const __m256i qlb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 128 + 32 * h));
      const __m256i low[4] = {_mm256_and_si256(qla, lo4), _mm256_and_si256(qlb, lo4),
                              _mm256_and_si256(_mm256_srli_epi16(qla, 4), lo4),
                              _mm256_and_si256(_mm256_srli_epi16(qlb, 4), lo4)};
      for (int g = 0; g < 4; g++) {
        const __m256i top = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), three);  // bits 2g, 2g+1
        const __m256i v = _mm256_sub_epi8(_mm256_or_si256(low[g], _mm256_slli_epi16(top, 4)), off);
        _mm256_store_si256(reinterpret_cast<__m256i*>(q[g]), v);
      }
      for (int g = 0; g < 4; g++) {
        float* o = dst + 128 * h + 32 * g;
        for (int half = 0; half < 2; half++) {
          const __m256 ds = _mm256_set1_ps(d * float(sc[8 * h + 2 * g + half]));
          for (int e = 0; e < 16; e += 8)
            _mm256_storeu_ps(o + 16 * half + e, _mm256_mul_ps(ds, i8x8(q[g] + 16 * half + e)));
        }
      }
    }
  }
}

// Q4_K super-blocks as f32: (d·sc_j)·q − dmin·m_j, dequantize_q4_k's rounding (no FMA).
LATHE_AVX2F void q4_k_to_f32(const uint8_t* src, float* dst, int64_t k) {
  alignas(32) int8_t q[2][32];
  const __m256i lo4 = _mm256_set1_epi8(0x0f);
  for (int64_t b = 0; b < k / kQK_K; b++, src += kQ4_KBlockBytes, dst += kQK_K) {
    const float d = load_half(src), dmin = load_half(src + 2);
    for (int c = 0; c < 4; c++) {  // qs[32c ..]: sub-block 2c low nibbles, 2c+1 high
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 16 + 32 * c));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q[0]), _mm256_and_si256(v, lo4));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q[1]), _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4));
      for (int odd = 0; odd < 2; odd++) {
        const int j = 2 * c + odd;
        int sc, m;
        q4k_scale_min(src + 4, j, &sc, &m);
        const __m256 dj = _mm256_set1_ps(d * float(sc)), mj = _mm256_set1_ps(dmin * float(m));
        for (int e = 0; e < 32; e += 8)
          _mm256_storeu_ps(dst + 32 * j + e, _mm256_sub_ps(_mm256_mul_ps(dj, i8x8(q[odd] + e)), mj));
      }
    }
  }
}

// One weight row as f32, dequantize_row's values.
LATHE_AVX2F void row_to_f32(QType t, const uint8_t* src, float* dst, int64_t k) {
  switch (t) {
    case QType::F16:
      for (int64_t i = 0; i < k; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
      return;
    case QType::BF16:
      for (int64_t i = 0; i < k; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(
                                      _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))), 16)));
      return;
    case QType::Q8_0:
      for (int64_t b = 0; b < k / kQBlock; b++, src += kQ8_0BlockBytes, dst += kQBlock) {
        const __m256 d = _mm256_set1_ps(load_half(src));
        for (int e = 0; e < kQBlock; e += 8)
          _mm256_storeu_ps(dst + e, _mm256_mul_ps(d, i8x8(reinterpret_cast<const int8_t*>(src + 2 + e))));
      }
      return;
    case QType::Q4_0: {
      alignas(16) int8_t q[32];
      for (int64_t b = 0; b < k / kQBlock; b++, src += kQ4_0BlockBytes, dst += kQBlock) {
        const __m256 d = _mm256_set1_ps(load_half(src));
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2));
        const __m128i lo4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
        _mm_store_si128(reinterpret_cast<__m128i*>(q), _mm_sub_epi8(_mm_and_si128(v, lo4), eight));
        _mm_store_si128(reinterpret_cast<__m128i*>(q + 16), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), lo4), eight));
        for (int e = 0; e < kQBlock; e += 8) _mm256_storeu_ps(dst + e, _mm256_mul_ps(d, i8x8(q + e)));
      }
      return;
    }
    case QType::Q4_K: return q4_k_to_f32(src, dst, k);
    case QType::Q6_K: return q6_k_to_f32(src, dst, k);
  }
  dequantize_row(t, src, dst, k);
}

LATHE_AVX2F LATHE_INLINE float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// out[i * ldo + j] (+)= Σ_k x[i * ldx + k] · w[j * ldw + k] (+ bias[j]) for i < RM, j < RN, k < klen
// (a multiple of 8): `first` sets the outputs, otherwise the sum is added. `pf`: pf_bytes of later
// weights to prefetch to L2 during this tile (null: none).
template <int RM, int RN>
LATHE_AVX2F void micro(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t klen, float* out,
                       int64_t ldo, const float* bias, bool first, const uint8_t* pf, size_t pf_bytes) {
  __m256 acc[RM][RN];
  for (int i = 0; i < RM; i++)
    for (int j = 0; j < RN; j++) acc[i][j] = _mm256_setzero_ps();
  const size_t pf_step = pf ? (pf_bytes * 8 / size_t(klen) + 63) / 64 * 64 : 0;  // bytes per 8 elements
  for (int64_t k = 0; k < klen; k += 8) {
    if (pf)
      for (size_t o = size_t(k / 8) * pf_step, e = std::min(o + pf_step, pf_bytes); o < e; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + o), _MM_HINT_T1);
    __m256 xv[RM];
    for (int i = 0; i < RM; i++) xv[i] = _mm256_loadu_ps(x + i * ldx + k);
    for (int j = 0; j < RN; j++) {
      const __m256 wv = _mm256_loadu_ps(w + j * ldw + k);
      for (int i = 0; i < RM; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < RM; i++)
    for (int j = 0; j < RN; j++) {
      float v = hsum(acc[i][j]);
      if (!first) v += out[i * ldo + j];
      out[i * ldo + j] = bias ? v + bias[j] : v;
    }
}

using MicroFn = RowsTileFn;

template <int RM>
constexpr MicroFn micro_for(int rn) {
  return rn == 1 ? micro<RM, 1> : rn == 2 ? micro<RM, 2> : rn == 3 ? micro<RM, 3> : micro<RM, 4>;
}

MicroFn micro_fn(int rm, int rn) { return rm == 1 ? micro_for<1>(rn) : rm == 2 ? micro_for<2>(rn) : micro_for<3>(rn); }

}  // namespace

bool prefill_rows_avx2(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                       int64_t N) {
  if (K % 8 != 0) return false;
  const size_t row_bytes = qblock_row_bytes(t, K);
  prefill_rows_driver<kRowsM, kRowsN, kChunkK>(
      out, inp, w, row_bytes, bias, M, K, N,
      [t](const uint8_t* src, float* dst, int64_t k) { row_to_f32(t, src, dst, k); }, micro_fn);
  return true;
}

}  // namespace lathe::qdetail
#endif  // __x86_64__
