// Prefill with block-quantized weights (qblock.h, qmatmul_forward for M >= kQPrefillRows): tiles of
// the weight dequantized to f32 and multiplied with OpenBLAS's sgemm, for the variants without a
// prefill GEMM of their own for the type (scalar, NEON, avx512's block types; LATHE_QPREFILL=tiles).
// avx2 has qgemm_rows_avx2.cpp (f32 register tiles without sgemm's packing), avx512 F16/BF16
// qgemm_float_avx512.cpp, avx512vnni the integer GEMM of qgemm_vnni.cpp (vpdpbusd does 64 products
// per instruction).
//
// Why not the integer kernels: they are register-blocked over 8 activation rows, and on AVX2 one
// block of 32 products costs ~7 instructions (sign, maddubs, madd, cvt, scale, fma) where sgemm's
// microkernel needs 4 FMAs, so past a few rows the integer path is compute-bound below sgemm (prefill
// of 256 tokens ran at 0.70x / 0.60x of f32 for Q8_0 / Q4_0). Dequantizing a tile costs one pass over
// its K*NT weights, amortized over all M rows (M >= 16: under 1/(2M) of the tile's multiply-adds), and
// the product is then the f32 one. Accuracy: only the weight quantization remains (the activations
// are not quantized here), so prefill is at least as accurate as the decode GEMV.
//
// Threading: each OpenMP thread dequantizes its own tiles into its own buffer and runs sgemm on them;
// OpenBLAS (the OpenMP build, kernels/cpu/cpu.cpp) runs single-threaded when called inside a parallel
// region, so the threads do not oversubscribe. Tiles are independent columns of `out`.
#include "lathe/kernels/cpu/qblock.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lathe::qdetail {

namespace {

#if defined(__x86_64__)
// F16 rows with F16C, 8 halves per instruction: dequantize_row's portable per-element conversion
// cost more than the product at short prompts (a 32-token F16 prefill ran at 0.4x of F32's).
__attribute__((target("avx,f16c"))) void f16_row_f16c(const uint8_t* src, float* dst, int64_t k) {
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  if (i < k) dequantize_row(QType::F16, src + 2 * i, dst + i, k - i);
}
#endif

// One weight row as f32: the same values as dequantize_row (F16C converts exactly, as the portable
// code does), faster where the CPU allows. The AVX2 and AVX-512 variants imply F16C (qblock.cpp).
void tile_row(QType t, const uint8_t* src, float* dst, int64_t k, bool f16c) {
#if defined(__x86_64__)
  if (t == QType::F16 && f16c) return f16_row_f16c(src, dst, k);
#endif
  (void)f16c;
  dequantize_row(t, src, dst, k);
}

}  // namespace

void qmatmul_prefill(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                     int64_t N) {
  const size_t row_bytes = qblock_row_bytes(t, K);
  // Tiles of 64 weight rows: many per thread for balance, sgemm's packing of inp amortized over 64
  // columns. The width does not depend on the thread count, so the bits do not either (sgemm's edge
  // handling depends on the tile width).
  constexpr int64_t nt = 64;
  const int64_t tiles = (N + nt - 1) / nt;
  const bool f16c =
      qisa_active() == QIsa::Avx2 || qisa_active() == QIsa::Avx512 || qisa_active() == QIsa::Avx512Vnni;
  if (bias)
    for (int m = 0; m < M; m++) std::memcpy(out + size_t(m) * N, bias, sizeof(float) * N);
#pragma omp parallel  // always: sgemm inside a region runs single-threaded, so its split never depends on the thread count
  {
    thread_local std::vector<float> tile;  // reused across calls: no allocation per token batch
    if (tile.size() < size_t(nt) * K) tile.resize(size_t(nt) * K);
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < tiles; ti++) {
      const int64_t n0 = ti * nt, rows = std::min(nt, N - n0);
      for (int64_t r = 0; r < rows; r++) tile_row(t, w + size_t(n0 + r) * row_bytes, tile.data() + r * K, K, f16c);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, int(rows), int(K), 1.0f, inp, int(K), tile.data(),
                  int(K), bias ? 1.0f : 0.0f, out + n0, int(N));
    }
  }
}

}  // namespace lathe::qdetail
