// Linear layers on an NF4 base weight: W [N, K] is dequantized a tile of rows at a time into an
// f32 scratch and multiplied with OpenBLAS, so the full f32 weight never exists.
//
// Tile height: the tile is written by the dequantizer and read straight back by sgemm, so it should
// sit in the per-core L2 (2 MiB on the build machines, 1-2 MiB on most x86) beside sgemm's packed
// panels: we give it ~1 MiB, i.e. 1 MiB / (4 K) rows, a multiple of 16 (OpenBLAS' N-unroll), kept
// in 64..256. That is 256 rows at K = 576, 160 at K = 1536 (SmolLM2-135M), 64 at K >= 4096. Each
// tile costs one sgemm call, which re-packs the whole inp [M, K] panel, plus an OpenMP fork/join
// and the bias copy: below ~64 rows those show (N/64 re-packs of inp); above ~256 the tile leaves
// L2 at large K and the dequantized rows come back from L3. bench/nf4_bench.cpp measures it.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/kernels/quant/nf4.h"

namespace lathe {

int nf4_tile_rows(int64_t K) {
  constexpr int64_t kTileBytes = int64_t(1) << 20;
  const int64_t rows = kTileBytes / (int64_t(sizeof(float)) * std::max<int64_t>(K, 1)) / 16 * 16;
  return int(std::clamp<int64_t>(rows, 64, 256));
}

size_t nf4_matmul_scratch_floats(const Nf4Tensor& w) {
  return size_t(std::min<int64_t>(nf4_tile_rows(w.cols), w.rows)) * size_t(w.cols);
}

void nf4_matmul_forward(float* out, const float* inp, const Nf4Tensor& w, const float* bias, int M, int K, int N,
                        float* scratch) {
  LATHE_CHECK(w.rows == N && w.cols == K, "W is [{}, {}], matmul wants [{}, {}]", w.rows, w.cols, N, K);
  const int tile = nf4_tile_rows(K);
  for (int n0 = 0; n0 < N; n0 += tile) {
    const int tn = std::min(tile, N - n0);
    nf4_dequantize_rows(w, n0, tn, scratch);  // scratch = W[n0:n0+tn, :]  [tn, K]
    const float beta = bias ? 1.0f : 0.0f;
    if (M == 1) {  // decode: a matrix-vector product into the contiguous slice out[n0 : n0+tn]
      if (bias) std::memcpy(out + n0, bias + n0, sizeof(float) * size_t(tn));
      cblas_sgemv(CblasRowMajor, CblasNoTrans, tn, K, 1.0f, scratch, K, inp, 1, beta, out + n0, 1);
      continue;
    }
    // out[:, n0:n0+tn] (row stride N) = inp [M, K] · tile^T
    if (bias)
      for (int m = 0; m < M; m++) std::memcpy(out + size_t(m) * N + n0, bias + n0, sizeof(float) * size_t(tn));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, tn, K, 1.0f, inp, K, scratch, K, beta, out + n0, N);
  }
}

void nf4_matmul_backward_input(float* dinp, const float* dout, const Nf4Tensor& w, int M, int K, int N,
                               float* scratch) {
  LATHE_CHECK(w.rows == N && w.cols == K, "W is [{}, {}], matmul wants [{}, {}]", w.rows, w.cols, N, K);
  const int tile = nf4_tile_rows(K);
  for (int n0 = 0; n0 < N; n0 += tile) {
    const int tn = std::min(tile, N - n0);
    nf4_dequantize_rows(w, n0, tn, scratch);
    // dinp [M, K] += dout[:, n0:n0+tn] (row stride N) · tile [tn, K]
    if (M == 1)
      cblas_sgemv(CblasRowMajor, CblasTrans, tn, K, 1.0f, scratch, K, dout + n0, 1, 1.0f, dinp, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, tn, 1.0f, dout + n0, N, scratch, K, 1.0f, dinp,
                  K);
  }
}

}  // namespace lathe
