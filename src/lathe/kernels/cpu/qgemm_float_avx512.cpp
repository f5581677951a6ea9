// Prefill GEMM of the AVX-512 variants for F16 and BF16 weights (contracts: qblock.h, qmatmul_forward
// with M >= kQPrefillRows; QKernels::prefill).
//
// Why not the tiles + sgemm of qgemm.cpp: at prompt sizes (M = 32) OpenBLAS's sgemm packs both operands
// for every 64-row tile and reached ~90 GFLOP/s of one core, and converting the tile to f32 first
// added a third pass: an F16 prefill of the Qwen2.5-0.5B shape ran at 60-65 GFLOP/s
// (bench/qgemm_prefill_bench), below llama.cpp's for the same file. Here a register tile of 4 input
// rows × 6 weight rows keeps 24 accumulators of 16 lanes (partial dot products along K); per 16
// elements it loads 4 input vectors and multiplies each of the 6 weight vectors into them: 24 FMAs
// against 10 loads, no packing of the input at all. The 6 weight rows are converted to f32 once into a
// small per-thread buffer and reused by every group of 4 input rows (K in chunks that fit L1); the next
// group's weights are prefetched a share per tile, so that they stream from memory while this
// group's products run (as the integer prefill does, qgemm_vnni.cpp).
//
// Numbers: each output is the f32 sum of the exact products w·x (F16 and BF16 convert to f32
// exactly) in 16 lane-wise partial sums per K chunk, reduced and added chunk by chunk: another order of
// the additions than sgemm's, the same for every thread count and split (each output's operations do not depend on them).
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lathe/kernels/cpu/qblock.h"
#include "lathe/kernels/cpu/qgemm_rows_driver.h"

// GCC 12's AVX-512 headers build casts and reductions on _mm512_undefined_*(), which its own
// -Wuninitialized then reports inside the header; the values are fully written.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define LATHE_AVX512F __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

namespace lathe::qdetail {

namespace {

constexpr int kRowsM = 4;  // input rows per register tile
constexpr int kRowsN = 6;  // weight rows per register tile: 24 accumulators + 4 inputs + 1 weight in 32 zmm
// K is taken in chunks so that a tile's 6 weight rows and 4 input rows stay in L1 (6·1024·4 + 4·1024·4
// bytes = 40 KiB) across the input-row groups: an unchunked down projection (K = 4864) ran at 75 against
// 103 GFLOP/s for K = 896. The chunks' sums are added to the outputs in order.
constexpr int64_t kChunkK = 1024;

// One weight row (F16 or BF16) as f32, 16 elements at a time; `k` a multiple of 16.
LATHE_AVX512F void row_to_f32(QType t, const uint8_t* src, float* dst, int64_t k) {
  const __m256i* s = reinterpret_cast<const __m256i*>(src);
  if (t == QType::F16) {
    for (int64_t i = 0; i < k; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(s + i / 16)));
  } else {  // BF16: the upper half of an f32
    for (int64_t i = 0; i < k; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(s + i / 16)), 16)));
  }
}

// out[i * ldo + j] (+)= Σ_k x[i * ldx + k] · w[j * ldw + k] (+ bias[j]) for i < RM, j < RN, k < klen
// (a multiple of 16): `first` sets the outputs, otherwise the sum is added to them (the K chunks).
// `pf`: pf_bytes of a later group's weights to prefetch during this tile (null: none).
template <int RM, int RN>
LATHE_AVX512F void micro(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t klen, float* out,
                         int64_t ldo, const float* bias, bool first, const uint8_t* pf, size_t pf_bytes) {
  __m512 acc[RM][RN];
  for (int i = 0; i < RM; i++)
    for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
  const size_t pf_step = pf ? (pf_bytes * 16 / size_t(klen) + 63) / 64 * 64 : 0;  // bytes per 16 elements
  for (int64_t k = 0; k < klen; k += 16) {
    if (pf)
      for (size_t o = size_t(k / 16) * pf_step, e = std::min(o + pf_step, pf_bytes); o < e; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + o), _MM_HINT_T1);
    __m512 xv[RM];
    for (int i = 0; i < RM; i++) xv[i] = _mm512_loadu_ps(x + i * ldx + k);
    for (int j = 0; j < RN; j++) {
      const __m512 wv = _mm512_loadu_ps(w + j * ldw + k);
      for (int i = 0; i < RM; i++) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < RM; i++)
    for (int j = 0; j < RN; j++) {
      float v = _mm512_reduce_add_ps(acc[i][j]);
      if (!first) v += out[i * ldo + j];
      out[i * ldo + j] = bias ? v + bias[j] : v;
    }
}

using MicroFn = RowsTileFn;

template <int RM>
constexpr MicroFn micro_for(int rn) {
  return rn == 1 ? micro<RM, 1> : rn == 2 ? micro<RM, 2> : rn == 3 ? micro<RM, 3> : rn == 4 ? micro<RM, 4>
         : rn == 5 ? micro<RM, 5> : micro<RM, 6>;
}

MicroFn micro_fn(int rm, int rn) {
  switch (rm) {
    case 1: return micro_for<1>(rn);
    case 2: return micro_for<2>(rn);
    case 3: return micro_for<3>(rn);
    default: return micro_for<4>(rn);
  }
}

}  // namespace

bool prefill_float_avx512(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M,
                          int64_t K, int64_t N) {
  if ((t != QType::F16 && t != QType::BF16) || K % 16 != 0) return false;
  const size_t row_bytes = size_t(K) * 2;
  prefill_rows_driver<kRowsM, kRowsN, kChunkK>(
      out, inp, w, row_bytes, bias, M, K, N,
      [t](const uint8_t* src, float* dst, int64_t k) { row_to_f32(t, src, dst, k); }, micro_fn);
  return true;
}

}  // namespace lathe::qdetail
#endif  // __x86_64__
