// Prefill GEMM of the "avx512vnni" variant for Q8_0, Q4_0, Q4_K and Q6_K weights (contracts: qblock.h,
// qmatmul_forward with M >= kQPrefillRows; QKernels::prefill).
//
// Why a GEMM of its own: the decode kernels give every (weight row, input row) pair its own vector
// accumulator whose 16 lanes hold partial sums of that one pair, so each pair pays a vpdpbusd, an int
// to float conversion, a scale product and an FMA per two blocks, plus the activation side rebuilt per
// weight row (the prefill ran 1 weight row × 8 input rows that way and stayed at 0.6-0.9× llama.cpp).
// Here the 16 int32 lanes of a vector are 16 different WEIGHT ROWS against one input row: eight
// vpdpbusd (four bytes each, the input's four bytes broadcast from memory) leave each lane with that
// row's exact integer sum over a 32-element block, and one conversion, one product of scales and one FMA
// then serve 16 pairs. Per 16 rows × 32 elements × 1 input row that is 8 vpdpbusd + ~5 other ops,
// against ~13 ops per 64 products before.
//
// Panel: a thread takes 16 weight rows at a time and rewrites them once into the layout the tile reads
// linearly (per 32-element block: 8 vectors of 16 rows × 4 unsigned bytes, then the per-row f32 scales
// and, for Q4_K, mins), with vpgatherdd on the stored blocks; the repack is O(16 K) against the panel's
// O(16 K M) products. The weights become unsigned bytes for vpdpbusd (unsigned × signed): Q8_0 q+128,
// Q4_0 the nibble (q-8 stored +8), Q4_K the nibble, Q6_K the 6-bit value (q-32 stored +32); the offset
// comes back as −off·Σaq (an input-side integer per block or, for Q6_K, per 16 elements) used as the
// initial value of the vpdpbusd chain, so each lane's block sum is exact in int32 as in every variant.
// Then, per block, acc += (scale_row · d_a) · isum, and for Q4_K acc −= (dmin·m_row) · (d_a·Σaq).
//
// Numbers: the same activation blocks as decode, exact integer block sums; only the f32 combination
// differs from the decode kernels (one running sum per pair in block order instead of 16 lanes), so a
// row of a prefill agrees with its decode product to rounding, not bit for bit. Each (row, input) pair
// gets the same operations whatever the thread count or panel split, so two threads give one's bits.
#if defined(__x86_64__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lathe/core/kquant_blocks.h"
#include "lathe/kernels/cpu/qblock.h"

#include "lathe/kernels/cpu/x86_vnni_target.h"

namespace lathe::qdetail {
const QKernels& kernels_avx512();
bool prefill_float_avx512(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                          int64_t N);

namespace {

constexpr int kPanel = 16;  // weight rows per panel: the 16 int32 / f32 lanes of a vector
constexpr int kTileM = 8;   // input rows per tile: 8 f32 accumulators + 8 weight vectors + scales in 32 zmm

// One 64-byte vector of a panel.
struct alignas(64) Chunk {
  uint8_t b[64];
};
// Per 32-element block of a panel: 8 weight vectors (byte group k of the 16 rows), 2 scale vectors
// (Q6_K: one per 16 elements; others use the first) and 1 min vector (Q4_K).
constexpr int kChunksPerBlock = 11;

// One input row's block as the tile reads it: the bytes, d_a, d_a·Σaq (Q4_K's min term) and the offset
// initial values −off·Σaq (over the block, or over its two halves for Q6_K).
struct ActG {
  int8_t q[kQBlock];
  float d;
  float dsum;
  int32_t init[2];
};

enum class Kind { Offset32, Q4K, Q6K };  // Offset32: Q8_0, Q4_0 (one scale per block, offset only)

Kind kind_of(QType t) { return t == QType::Q4_K ? Kind::Q4K : t == QType::Q6_K ? Kind::Q6K : Kind::Offset32; }
int offset_of(QType t) { return t == QType::Q8_0 ? 128 : t == QType::Q4_0 ? 8 : t == QType::Q6_K ? 32 : 0; }

// 16 dwords at base + idx[lane] (lanes outside `mask` are zero: rows past N).
LATHE_VNNI LATHE_ALWAYS_INLINE __m512i gather(const uint8_t* base, __m512i idx, __mmask16 mask) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, idx, base, 1);
}

LATHE_VNNI LATHE_ALWAYS_INLINE void put(Chunk* c, __m512i v) { _mm512_store_si512(c->b, v); }
LATHE_VNNI LATHE_ALWAYS_INLINE void put(Chunk* c, __m512 v) { _mm512_store_ps(reinterpret_cast<float*>(c->b), v); }

// The f16 at byte 0 of each lane's dword, as f32.
LATHE_VNNI LATHE_ALWAYS_INLINE __m512 f16_lanes(__m512i dw) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw)); }

// Rewrites `rows` (<= 16) weight rows into the panel layout above.
LATHE_VNNI void repack(QType t, const uint8_t* w, size_t row_bytes, int rows, int64_t nb, Chunk* panel) {
  const __mmask16 mask = __mmask16((1u << rows) - 1);
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(int(row_bytes)));
  const __m512i lo4 = _mm512_set1_epi8(0x0f);
  if (t == QType::Q8_0 || t == QType::Q4_0) {
    const bool q8 = t == QType::Q8_0;
    const size_t bb = q8 ? kQ8_0BlockBytes : kQ4_0BlockBytes;
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t* blk = w + size_t(b) * bb;
      Chunk* c = panel + b * kChunksPerBlock;
      if (q8) {
        for (int k = 0; k < 8; k++) put(c + k, _mm512_xor_si512(gather(blk + 2 + 4 * k, idx, mask), _mm512_set1_epi8(char(0x80))));
      } else {
        for (int k = 0; k < 4; k++) {
          const __m512i g = gather(blk + 2 + 4 * k, idx, mask);  // elements 4k.. (low), 16+4k.. (high)
          put(c + k, _mm512_and_si512(g, lo4));
          put(c + k + 4, _mm512_and_si512(_mm512_srli_epi16(g, 4), lo4));
        }
      }
      put(c + 8, f16_lanes(gather(blk, idx, mask)));  // masked-off rows: scale 0
    }
    return;
  }
  alignas(64) float sc[8][2][kPanel], mn[8][kPanel];
  for (int64_t sb = 0; sb < nb / 8; sb++) {
    std::memset(sc, 0, sizeof sc);
    std::memset(mn, 0, sizeof mn);
    Chunk* c0 = panel + sb * 8 * kChunksPerBlock;
    if (t == QType::Q4_K) {
      const uint8_t* blk = w + size_t(sb) * kQ4_KBlockBytes;
      for (int cpair = 0; cpair < 4; cpair++) {  // qs[32c ..]: sub-block 2c low nibbles, 2c+1 high
        for (int k = 0; k < 8; k++) {
          const __m512i g = gather(blk + 16 + 32 * cpair + 4 * k, idx, mask);
          put(c0 + (2 * cpair) * kChunksPerBlock + k, _mm512_and_si512(g, lo4));
          put(c0 + (2 * cpair + 1) * kChunksPerBlock + k, _mm512_and_si512(_mm512_srli_epi16(g, 4), lo4));
        }
      }
      for (int r = 0; r < rows; r++) {
        const uint8_t* rb = blk + size_t(r) * row_bytes;
        uint16_t hd, hm;
        std::memcpy(&hd, rb, 2);
        std::memcpy(&hm, rb + 2, 2);
        const float d = _cvtsh_ss(hd), dmin = _cvtsh_ss(hm);
        for (int j = 0; j < 8; j++) {
          int s, m;
          q4k_scale_min(rb + 4, j, &s, &m);
          sc[j][0][r] = d * float(s);
          mn[j][r] = dmin * float(m);
        }
      }
    } else {  // Q6_K: block j = half j/4, group g = j%4 (kquant_blocks.h)
      const uint8_t* blk = w + size_t(sb) * kQ6_KBlockBytes;
      for (int h = 0; h < 2; h++) {
        for (int k = 0; k < 8; k++) {
          const __m512i qh = gather(blk + 128 + 32 * h + 4 * k, idx, mask);
          for (int odd = 0; odd < 2; odd++) {
            const __m512i ql = gather(blk + 64 * h + 32 * odd + 4 * k, idx, mask);
            for (int up = 0; up < 2; up++) {  // g = odd + 2·up: low nibbles (up 0) or high (up 1)
              const int g = odd + 2 * up;
              const __m512i low = _mm512_and_si512(up ? _mm512_srli_epi16(ql, 4) : ql, lo4);
              // bits 2g, 2g+1 of qh to bits 4, 5 (16-bit shifts; the 0x30 mask drops what crosses a byte)
              const __m512i top = 2 * g <= 4 ? _mm512_slli_epi16(qh, 4 - 2 * g) : _mm512_srli_epi16(qh, 2 * g - 4);
              put(c0 + (4 * h + g) * kChunksPerBlock + k,
                  _mm512_ternarylogic_epi32(low, top, _mm512_set1_epi8(0x30), 0xF8));  // a | (b & c)
            }
          }
        }
      }
      for (int r = 0; r < rows; r++) {
        const uint8_t* rb = blk + size_t(r) * row_bytes;
        uint16_t hd;
        std::memcpy(&hd, rb + 208, 2);
        const float d = _cvtsh_ss(hd);
        for (int j = 0; j < 8; j++)
          for (int half = 0; half < 2; half++) sc[j][half][r] = d * float(int8_t(rb[192 + 2 * j + half]));
      }
    }
    for (int j = 0; j < 8; j++) {
      Chunk* c = c0 + j * kChunksPerBlock;
      put(c + 8, _mm512_load_ps(sc[j][0]));
      put(c + 9, _mm512_load_ps(sc[j][1]));
      put(c + 10, _mm512_load_ps(mn[j]));
    }
  }
}

LATHE_VNNI LATHE_ALWAYS_INLINE __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// MT input rows (acts, nb blocks each) × the panel's 16 rows: out[i * ldo + r] for the rows in rmask.
// `pf` (null: none): bytes of weights a later panel reads, prefetched `pf_step` bytes a block so that
// the requests spread over the tile's arithmetic (bursts of them stall on the core's fill buffers).
template <Kind K, int MT>
LATHE_VNNI void tile(const Chunk* panel, int64_t nb, const ActG* acts, float* out, int64_t ldo, __mmask16 rmask,
                     const float* bias, const uint8_t* pf, size_t pf_step) {
  __m512 acc[MT];
  for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    if (pf)
      for (size_t o = size_t(b) * pf_step, e = o + pf_step; o < e; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + o), _MM_HINT_T0);
    const Chunk* c = panel + b * kChunksPerBlock;
    __m512i wv[8];
    for (int k = 0; k < 8; k++) wv[k] = _mm512_load_si512(c[k].b);
    const __m512 sc0 = _mm512_load_ps(reinterpret_cast<const float*>(c[8].b));
    for (int i = 0; i < MT; i++) {
      const ActG& a = acts[i * nb + b];
      const __m512 da = _mm512_set1_ps(a.d);
      if constexpr (K == Kind::Q6K) {
        const __m512 sc1 = _mm512_load_ps(reinterpret_cast<const float*>(c[9].b));
        __m512i s0 = _mm512_set1_epi32(a.init[0]), s1 = _mm512_set1_epi32(a.init[1]);
        for (int k = 0; k < 4; k++) s0 = _mm512_dpbusd_epi32(s0, wv[k], bcast4(a.q + 4 * k));
        for (int k = 4; k < 8; k++) s1 = _mm512_dpbusd_epi32(s1, wv[k], bcast4(a.q + 4 * k));
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(sc0, da), acc[i]);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(sc1, da), acc[i]);
      } else {
        __m512i s = K == Kind::Q4K ? _mm512_setzero_si512() : _mm512_set1_epi32(a.init[0]);
        for (int k = 0; k < 8; k++) s = _mm512_dpbusd_epi32(s, wv[k], bcast4(a.q + 4 * k));
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sc0, da), acc[i]);
        if constexpr (K == Kind::Q4K) {
          const __m512 mn = _mm512_load_ps(reinterpret_cast<const float*>(c[10].b));
          acc[i] = _mm512_fnmadd_ps(mn, _mm512_set1_ps(a.dsum), acc[i]);
        }
      }
    }
  }
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(rmask, bias) : _mm512_setzero_ps();
  for (int i = 0; i < MT; i++) _mm512_mask_storeu_ps(out + i * ldo, rmask, _mm512_add_ps(acc[i], bv));
}

template <Kind K>
LATHE_VNNI void tile_m(int mt, const Chunk* panel, int64_t nb, const ActG* acts, float* out, int64_t ldo,
                       __mmask16 rmask, const float* bias, const uint8_t* pf, size_t pf_step) {
  switch (mt) {
    case 1: return tile<K, 1>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
    case 2: return tile<K, 2>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
    case 3: return tile<K, 3>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
    case 4: return tile<K, 4>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
    case 5: return tile<K, 5>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
    case 6: return tile<K, 6>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
    case 7: return tile<K, 7>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
    default: return tile<K, 8>(panel, nb, acts, out, ldo, rmask, bias, pf, pf_step);
  }
}

// The input rows as ActG blocks (the same activation blocks as decode, quantize_act's bits).
void prepare_acts(QType t, const float* inp, int M, int64_t K, ActG* dst) {
  const int64_t nb = K / kQBlock;
  const int off = offset_of(t);
  std::vector<BlockQ8A> row(nb);
  for (int m = 0; m < M; m++) {
    kernels_avx512().quantize_act(inp + size_t(m) * K, row.data(), nb);
    for (int64_t b = 0; b < nb; b++) {
      const BlockQ8A& s = row[b];
      ActG& a = dst[size_t(m) * nb + b];
      std::memcpy(a.q, s.q, kQBlock);
      a.d = s.d;
      a.dsum = s.d * float(s.sum);
      if (t == QType::Q6_K) {
        int32_t lo = 0;
        for (int j = 0; j < kQBlock / 2; j++) lo += s.q[j];
        a.init[0] = -off * lo;
        a.init[1] = -off * (s.sum - lo);
      } else {
        a.init[0] = -off * s.sum;
        a.init[1] = 0;
      }
    }
  }
}

bool prefill_vnni(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                  int64_t N) {
  if (qtype_is_float(t)) return prefill_float_avx512(out, inp, w, t, bias, M, K, N);
  const int64_t nb = K / kQBlock;
  const size_t row_bytes = qblock_row_bytes(t, K);
  thread_local std::vector<ActG> acts;  // reused: no allocation per prompt once grown
  if (acts.size() < size_t(M) * nb) acts.resize(size_t(M) * nb);
  prepare_acts(t, inp, M, K, acts.data());
  const ActG* a = acts.data();
  const Kind kind = kind_of(t);
  const int64_t panels = (N + kPanel - 1) / kPanel;
#pragma omp parallel if (panels > 1)
  {
    thread_local std::vector<Chunk> panel;
    if (panel.size() < size_t(nb) * kChunksPerBlock) panel.resize(size_t(nb) * kChunksPerBlock);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < panels; p++) {
      const int64_t n0 = p * kPanel;
      const int rows = int(std::min<int64_t>(kPanel, N - n0));
      repack(t, w + size_t(n0) * row_bytes, row_bytes, rows, nb, panel.data());
      const __mmask16 rmask = __mmask16((1u << rows) - 1);
      const float* bp = bias ? bias + n0 : nullptr;
      // The next panel (this thread's under schedule(static) unless p ends its share) is prefetched
      // during this one's tiles: the weights stream from memory while the products run, where reading
      // them on first touch in the repack left the core waiting (a 32-token prefill of the Qwen2.5-0.5B
      // shape spent a fifth of its time on the repack's first gathers of each block).
      const int tiles_m = (M + kTileM - 1) / kTileM;
      const uint8_t* next = n0 + 2 * kPanel <= N ? w + size_t(n0 + kPanel) * row_bytes : nullptr;
      const size_t pf_tile = (size_t(kPanel) * row_bytes + tiles_m - 1) / tiles_m;  // bytes per tile
      const size_t pf_step = (pf_tile + nb - 1) / nb;
      for (int m0 = 0, ti = 0; m0 < M; m0 += kTileM, ti++) {
        const int mt = std::min(kTileM, M - m0);
        const ActG* am = a + size_t(m0) * nb;
        float* o = out + size_t(m0) * N + n0;
        const uint8_t* pf = next ? next + size_t(ti) * pf_tile : nullptr;
        switch (kind) {
          case Kind::Offset32: tile_m<Kind::Offset32>(mt, panel.data(), nb, am, o, N, rmask, bp, pf, pf_step); break;
          case Kind::Q4K: tile_m<Kind::Q4K>(mt, panel.data(), nb, am, o, N, rmask, bp, pf, pf_step); break;
          case Kind::Q6K: tile_m<Kind::Q6K>(mt, panel.data(), nb, am, o, N, rmask, bp, pf, pf_step); break;
        }
      }
    }
  }
  return true;
}

}  // namespace

// The avx512vnni table's prefill entry (qblock_x86_vnni.cpp installs it).
bool prefill_avx512_vnni(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M,
                         int64_t K, int64_t N) {
  return prefill_vnni(out, inp, w, t, bias, M, K, N);
}

}  // namespace lathe::qdetail
#endif  // __x86_64__
