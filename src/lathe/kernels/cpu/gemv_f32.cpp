// Decode GEMV with f32 weights: y[N] = W[N, K] · x[K] (+ bias), matmul_forward's M = 1 case.
//
// Why not OpenBLAS's sgemv: one decoded token reads every weight once, so the GEMV should run at the
// memory's speed; sgemv (0.3.21) reached about half the read bandwidth on the 2-core VM at one thread
// (bench/decode_bench.sh: 48% of the roofline against llama.cpp's 67%). This kernel reads four weight
// rows per pass (AVX-512: eight, which kept more loads in flight at one thread: 1.2-1.3x the 4-row
// pass from memory) against one load of x, with one accumulator per row, and hands whole rows to the
// threads, so each thread streams a contiguous stretch of W (the hardware prefetcher's best case;
// software prefetch did not help these long rows, unlike the short rows of the Q4_0 / Q6_K kernels).
//
// Variants as in qblock.h (scalar, AVX2+FMA, AVX-512F; NEON on aarch64), picked at run time by
// qisa_active(); each row's sum is formed the same way whatever the thread count, so threads do not
// change a bit.
#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/qblock.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace lathe {
namespace {

using RowsFn = void (*)(float* y, const float* x, const float* W, const float* bias, int64_t K, int64_t n0,
                        int64_t n1);

void rows_scalar(float* y, const float* x, const float* W, const float* bias, int64_t K, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n++) {
    const float* w = W + size_t(n) * K;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < K; k++) s += w[k] * x[k];
    y[n] = bias ? s + bias[n] : s;
  }
}

#if defined(__x86_64__)
#define LATHE_GEMV_AVX2 __attribute__((target("avx2,fma")))
#define LATHE_GEMV_AVX512 __attribute__((target("avx512f,avx2,fma")))

LATHE_GEMV_AVX2 inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The sum of the 16 lanes, by a store (once per row: its cost does not show). _mm512_reduce_add_ps
// and the 512-bit extract/shuffle intrinsics draw a false -Wmaybe-uninitialized from g++ 12.
LATHE_GEMV_AVX512 inline float hsum512(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  return hsum256(_mm256_add_ps(_mm256_load_ps(t), _mm256_load_ps(t + 8)));
}

LATHE_GEMV_AVX2 void rows_avx2(float* y, const float* x, const float* W, const float* bias, int64_t K, int64_t n0,
                               int64_t n1) {
  const int64_t K8 = K / 8 * 8;
  alignas(32) static const int32_t kMaskSrc[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i tail = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskSrc + 8 - (K - K8)));
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    const float* w0 = W + size_t(n) * K;
    const float *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t k = 0; k < K8; k += 8) {
      const __m256 xv = _mm256_loadu_ps(x + k);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), xv, a3);
    }
    if (K8 < K) {
      const __m256 xv = _mm256_maskload_ps(x + K8, tail);
      a0 = _mm256_fmadd_ps(_mm256_maskload_ps(w0 + K8, tail), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_maskload_ps(w1 + K8, tail), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_maskload_ps(w2 + K8, tail), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_maskload_ps(w3 + K8, tail), xv, a3);
    }
    const float s[4] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
    for (int i = 0; i < 4; i++) y[n + i] = bias ? s[i] + bias[n + i] : s[i];
  }
  for (; n < n1; n++) {
    const float* w0 = W + size_t(n) * K;
    __m256 a0 = _mm256_setzero_ps();
    for (int64_t k = 0; k < K8; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), _mm256_loadu_ps(x + k), a0);
    if (K8 < K) a0 = _mm256_fmadd_ps(_mm256_maskload_ps(w0 + K8, tail), _mm256_maskload_ps(x + K8, tail), a0);
    const float s = hsum256(a0);
    y[n] = bias ? s + bias[n] : s;
  }
}

// R rows per pass against one load of x. Each row has its own accumulator and the same sequence of
// FMAs whatever R is, so the 8-, 4- and 1-row passes give a row the same bits.
template <int R>
LATHE_GEMV_AVX512 inline void pass_avx512(float* y, const float* x, const float* w0, const float* bias, int64_t K,
                                          int64_t n) {
  const int64_t K16 = K / 16 * 16;
  const __mmask16 tail = __mmask16((1u << (K - K16)) - 1u);
  __m512 a[R];
  for (int i = 0; i < R; i++) a[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K16; k += 16) {
    const __m512 xv = _mm512_loadu_ps(x + k);
    for (int i = 0; i < R; i++) a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i * K + k), xv, a[i]);
  }
  if (K16 < K) {
    const __m512 xv = _mm512_maskz_loadu_ps(tail, x + K16);
    for (int i = 0; i < R; i++) a[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0 + i * K + K16), xv, a[i]);
  }
  for (int i = 0; i < R; i++) {
    const float s = hsum512(a[i]);
    y[n + i] = bias ? s + bias[n + i] : s;
  }
}

// Eight rows per pass (8 accumulators, one x load per 8 weight loads): at one thread the 4-row pass
// left the core short of loads in flight and read W at ~2/3 of the measured bandwidth.
LATHE_GEMV_AVX512 void rows_avx512(float* y, const float* x, const float* W, const float* bias, int64_t K,
                                   int64_t n0, int64_t n1) {
  int64_t n = n0;
  for (; n + 8 <= n1; n += 8) pass_avx512<8>(y, x, W + size_t(n) * K, bias, K, n);
  for (; n + 4 <= n1; n += 4) pass_avx512<4>(y, x, W + size_t(n) * K, bias, K, n);
  for (; n < n1; n++) pass_avx512<1>(y, x, W + size_t(n) * K, bias, K, n);
}
#endif

#if defined(__aarch64__)
// ASIMD is the aarch64 baseline (no target attribute needed): the AVX2 scheme on 4-lane vectors, two
// accumulators per row (8 of 32 registers) so the FMA chains overlap; the K % 8 tail in scalar FMAs.
inline float row_tail(float s, const float* w, const float* x, int64_t k0, int64_t K) {
  for (int64_t k = k0; k < K; k++) s = __builtin_fmaf(w[k], x[k], s);
  return s;
}

void rows_neon(float* y, const float* x, const float* W, const float* bias, int64_t K, int64_t n0, int64_t n1) {
  const int64_t K8 = K / 8 * 8;
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    const float* w[4] = {W + size_t(n) * K, W + size_t(n + 1) * K, W + size_t(n + 2) * K, W + size_t(n + 3) * K};
    float32x4_t a[4], b[4];
    for (int i = 0; i < 4; i++) a[i] = b[i] = vdupq_n_f32(0.0f);
    for (int64_t k = 0; k < K8; k += 8) {
      const float32x4_t x0 = vld1q_f32(x + k), x1 = vld1q_f32(x + k + 4);
      for (int i = 0; i < 4; i++) {
        a[i] = vfmaq_f32(a[i], vld1q_f32(w[i] + k), x0);
        b[i] = vfmaq_f32(b[i], vld1q_f32(w[i] + k + 4), x1);
      }
    }
    for (int i = 0; i < 4; i++) {
      const float s = row_tail(vaddvq_f32(vaddq_f32(a[i], b[i])), w[i], x, K8, K);
      y[n + i] = bias ? s + bias[n + i] : s;
    }
  }
  for (; n < n1; n++) {
    const float* w0 = W + size_t(n) * K;
    float32x4_t a = vdupq_n_f32(0.0f), b = vdupq_n_f32(0.0f);
    for (int64_t k = 0; k < K8; k += 8) {
      a = vfmaq_f32(a, vld1q_f32(w0 + k), vld1q_f32(x + k));
      b = vfmaq_f32(b, vld1q_f32(w0 + k + 4), vld1q_f32(x + k + 4));
    }
    const float s = row_tail(vaddvq_f32(vaddq_f32(a, b)), w0, x, K8, K);
    y[n] = bias ? s + bias[n] : s;
  }
}
#endif

RowsFn rows_fn() {
  switch (qisa_active()) {
#if defined(__x86_64__)
    case QIsa::Avx512Vnni:
    case QIsa::Avx512: return rows_avx512;
    case QIsa::Avx2: return rows_avx2;
#endif
#if defined(__aarch64__)
    case QIsa::NeonDot:
    case QIsa::Neon: return rows_neon;
#endif
    default: return rows_scalar;
  }
}

}  // namespace

void gemv_f32(float* y, const float* x, const float* W, const float* bias, int64_t K, int64_t N) {
  const RowsFn rows = rows_fn();
  // Below ~256 KiB of weights one thread is faster than waking the pool. Chunks of 4-row groups, so
  // a row's sum never depends on where a thread's range starts.
  const bool parallel = size_t(N) * size_t(K) * sizeof(float) >= (size_t(256) << 10) && N >= 8;
  if (!parallel) return rows(y, x, W, bias, K, 0, N);
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t groups = (N + 3) / 4;
    const int64_t g0 = groups * t / nt, g1 = groups * (t + 1) / nt;
    const int64_t n0 = g0 * 4, n1 = std::min<int64_t>(N, g1 * 4);
    if (n0 < n1) rows(y, x, W, bias, K, n0, n1);
  }
}

}  // namespace lathe
