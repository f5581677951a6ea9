// The outer loops shared by the prefill GEMMs that run f32 register tiles over weight rows converted
// once (qgemm_rows_avx2.cpp: every type on AVX2; qgemm_float_avx512.cpp: F16/BF16 on AVX-512). Each
// supplies its tile sizes, its row conversion and its register tile; this walks the weight rows in
// groups of RowsN (parallel, schedule(static)), converts a group into a per-thread f32 buffer, runs the
// tile over every group of RowsM input rows with K in ChunkK pieces (the chunks' sums are added to the
// outputs in order, the bias with the last chunk), and has each tile prefetch its share of the next
// group's weight bytes, so that they stream from memory while this group's products run.
// Each output's operations depend on neither the thread count nor the split: the bits do not either.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lathe::qdetail {

// out[i * ldo + j] (+)= Σ_k x[i * ldx + k] · w[j * ldw + k] (+ bias[j]) over a tile; `first` sets the
// outputs, otherwise the sum is added; `pf`: pf_bytes of later weights to prefetch (null: none).
using RowsTileFn = void (*)(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t klen, float* out,
                            int64_t ldo, const float* bias, bool first, const uint8_t* pf, size_t pf_bytes);

// convert(src, dst, K): one weight row (row_bytes at src) as K f32; tile_for(rm, rn): the tile of rm
// input rows × rn weight rows (rm <= RowsM, rn <= RowsN).
template <int RowsM, int RowsN, int64_t ChunkK, class Convert, class TileFor>
void prefill_rows_driver(float* out, const float* inp, const uint8_t* w, size_t row_bytes, const float* bias, int M,
                         int64_t K, int64_t N, Convert convert, TileFor tile_for) {
  const int64_t groups = (N + RowsN - 1) / RowsN;
  const int64_t tiles = (M + RowsM - 1) / RowsM * ((K + ChunkK - 1) / ChunkK);  // per weight-row group
#pragma omp parallel if (groups > 1)
  {
    thread_local std::vector<float> wf;  // this group's weight rows as f32; reused across calls
    if (wf.size() < size_t(RowsN) * K) wf.resize(size_t(RowsN) * K);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; g++) {
      const int64_t n0 = g * RowsN;
      const int rn = int(std::min<int64_t>(RowsN, N - n0));
      for (int j = 0; j < rn; j++) convert(w + size_t(n0 + j) * row_bytes, wf.data() + size_t(j) * K, K);
      // The next group (this thread's under schedule(static) unless g ends its share), a share per tile.
      const int64_t next_rows = std::min<int64_t>(RowsN, N - n0 - RowsN);
      const uint8_t* next = next_rows > 0 ? w + size_t(n0 + RowsN) * row_bytes : nullptr;
      const size_t pf_share = next ? (size_t(next_rows) * row_bytes + tiles - 1) / tiles : 0;
      int64_t tile = 0;
      for (int64_t kc = 0; kc < K; kc += ChunkK) {
        const int64_t klen = std::min(ChunkK, K - kc);
        for (int m0 = 0; m0 < M; m0 += RowsM, tile++) {
          const int rm = std::min(RowsM, M - m0);
          const uint8_t* pf = next ? next + size_t(tile) * pf_share : nullptr;
          tile_for(rm, rn)(inp + size_t(m0) * K + kc, K, wf.data() + kc, K, klen, out + size_t(m0) * N + n0, N,
                           bias && kc + klen == K ? bias + n0 : nullptr, kc == 0, pf, pf_share);
        }
      }
    }
  }
}

}  // namespace lathe::qdetail
