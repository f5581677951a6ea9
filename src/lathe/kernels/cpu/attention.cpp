// Attention on the CPU: forward for decode, prefill and training, and the training backward.
//
// Rows go in blocks of kAttnRowBlock queries. A block's probabilities are [rows, cols] (cols: the
// keys its last row sees, so the causally masked upper-right part is never computed) and live in a
// per-thread buffer unless the caller keeps them ([H, T, S] `probs`): a forward over T rows and the
// backward that recomputes them hold O(threads · rows · S) floats, not O(H · T · S) (at T = 4096
// with 14 heads that was 0.9 GB for the probabilities and as much again for their gradient).
// The query heads that share a kv head (GQA) go together: a block's rows of all `group` heads are
// gathered into one [group · rows, D] matrix, so each product against the group's keys and values
// is one sgemm with group times the rows (OpenBLAS packs K and V once per group, not once per
// head), and the backward's dk/dv partials are per kv head.
// The probabilities of a block are computed by one function (group_probs) with the same calls in
// forward and backward, so the recomputed values are the forward's, bit for bit.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/softmax_row.h"

namespace lathe {

namespace {

float attention_scale(const AttentionOpts& o, int D) { return o.scale > 0.0f ? o.scale : 1.0f / std::sqrt(float(D)); }

// Grows a thread's buffer to n floats (kept between calls: the sizes repeat every layer).
float* thread_buffer(std::vector<float>& b, size_t n) {
  if (b.size() < n) b.resize(n);
  return b.data();
}

// One block of rows [t0, t0 + rows) of the `group` query heads h0.. that share kv head g: the
// stacked matrices' row j · rows + t is head h0 + j at row t0 + t.
struct GroupBlock {
  int t0, rows, cols;  // cols: keys [0, cols) the block's last row sees
  int h0, g, group;
  int H, Hkv, D;
  int M() const { return group * rows; }
  size_t row_of(int j, int t) const { return (size_t(t0 + t) * H + h0 + j) * D; }  // head h0 + j's row in [T, H, D]
};

// dst[(j · rows + t) · D ..] = src's row of head h0 + j at t0 + t (src is [T, H, D]).
void gather_rows(float* dst, const float* src, const GroupBlock& b) {
  for (int j = 0; j < b.group; j++)
    for (int t = 0; t < b.rows; t++)
      std::memcpy(dst + (size_t(j) * b.rows + t) * b.D, src + b.row_of(j, t), sizeof(float) * b.D);
}

// The inverse of gather_rows, adding (accumulate) or writing.
void scatter_rows(float* dst, const float* src, const GroupBlock& b, bool accumulate) {
  for (int j = 0; j < b.group; j++)
    for (int t = 0; t < b.rows; t++) {
      float* d = dst + b.row_of(j, t);
      const float* x = src + (size_t(j) * b.rows + t) * b.D;
      if (accumulate) {
#pragma omp simd
        for (int i = 0; i < b.D; i++) d[i] += x[i];
      } else {
        std::memcpy(d, x, sizeof(float) * b.D);
      }
    }
}

// Probabilities of the block's stacked queries qs [M, D] over keys [0, cols) into p [M, cols]
// (entries of masked keys are 0); row t of the block sees keys up to P0 + t0 + t (causal).
void group_probs(float* p, const float* qs, const float* k, const GroupBlock& b, int P0, const AttentionOpts& o) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b.M(), b.cols, b.D, attention_scale(o, b.D), qs, b.D,
              k + size_t(b.g) * b.D, b.Hkv * b.D, 0.0f, p, b.cols);
  for (int j = 0; j < b.group; j++)
    for (int t = 0; t < b.rows; t++) {
      float* row = p + (size_t(j) * b.rows + t) * b.cols;
      const int pos = P0 + b.t0 + t;
      if (o.causal)
        causal_softmax_row(row, attention_first_key(o, pos), pos + 1, b.cols, o.softcap);
      else
        causal_softmax_row(row, 0, b.cols, b.cols, o.softcap);
    }
}

// Kept probabilities [H, T, S] <-> a block's stacked [M, cols] (the kept rows are 0 past cols).
void store_probs(float* probs, const float* p, const GroupBlock& b, int T, int S) {
  for (int j = 0; j < b.group; j++)
    for (int t = 0; t < b.rows; t++) {
      float* d = probs + (size_t(b.h0 + j) * T + b.t0 + t) * S;
      std::memcpy(d, p + (size_t(j) * b.rows + t) * b.cols, sizeof(float) * b.cols);
      std::fill(d + b.cols, d + S, 0.0f);
    }
}

void load_probs(float* p, const float* probs, const GroupBlock& b, int T, int S) {
  for (int j = 0; j < b.group; j++)
    for (int t = 0; t < b.rows; t++)
      std::memcpy(p + (size_t(j) * b.rows + t) * b.cols, probs + (size_t(b.h0 + j) * T + b.t0 + t) * S,
                  sizeof(float) * b.cols);
}

void decode_attention(float* out, float* probs, const float* q, const float* k, const float* v, int S, int H,
                      int Hkv, int D, const AttentionOpts& o) {
  const int group = H / Hkv;
  const float scale = attention_scale(o, D);
  // Per head, dot products against the cache; too small for sgemm.
#pragma omp parallel for schedule(static)
  for (int h = 0; h < H; h++) {
    const int g = h / group;
    const float* qv = q + size_t(h) * D;
    thread_local std::vector<float> buf;
    float* p = probs ? probs + size_t(h) * S : thread_buffer(buf, size_t(S));
    for (int s = 0; s < S; s++) {
      const float* kv = k + (size_t(s) * Hkv + g) * D;
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int d = 0; d < D; d++) dot += qv[d] * kv[d];
      p[s] = dot * scale;
    }
    causal_softmax_row(p, o.causal ? attention_first_key(o, S - 1) : 0, S, S, o.softcap);
    float* oh = out + size_t(h) * D;
    std::fill(oh, oh + D, 0.0f);
    for (int s = 0; s < S; s++) {
      const float* vv = v + (size_t(s) * Hkv + g) * D;
      const float w = p[s];
#pragma omp simd
      for (int d = 0; d < D; d++) oh[d] += w * vv[d];
    }
  }
}

}  // namespace

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v, int T, int S,
                       int H, int Hkv, int D, const AttentionOpts& o) {
  if (T == 1) return decode_attention(out, probs, q, k, v, S, H, Hkv, D, o);
  // Per (kv head, row block): scores = Q_g K_g^T for the group's stacked queries, softmax,
  // out = P V_g. OpenBLAS runs single-threaded inside an OpenMP parallel region, so the pools do not
  // nest. Rows [t0, t1) see only the first S - T + t1 keys (at T = S = 512 skipping the rest saves
  // about 3/8 of the FLOPs); bidirectional attention (encoders) sees all S. The pairs are
  // independent and handed out one at a time, the last blocks (the longest, when causal) first.
  const int group = H / Hkv;
  const int P0 = S - T;  // keys before the first query (KV cache or prefix): row t sees [0, P0 + t]
  const int nblocks = (T + kAttnRowBlock - 1) / kAttnRowBlock;
#pragma omp parallel for schedule(dynamic, 1)
  for (int job = 0; job < Hkv * nblocks; job++) {
    const int g = job % Hkv, t0 = (nblocks - 1 - job / Hkv) * kAttnRowBlock;
    const int t1 = std::min(T, t0 + kAttnRowBlock);
    const GroupBlock b{t0, t1 - t0, o.causal ? P0 + t1 : S, g * group, g, group, H, Hkv, D};
    thread_local std::vector<float> qbuf, pbuf, obuf;
    float* qs = thread_buffer(qbuf, size_t(b.M()) * D);
    float* p = thread_buffer(pbuf, size_t(b.M()) * b.cols);
    float* os = thread_buffer(obuf, size_t(b.M()) * D);
    gather_rows(qs, q, b);
    group_probs(p, qs, k, b, P0, o);
    if (probs) store_probs(probs, p, b, T, S);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b.M(), D, b.cols, 1.0f, p, b.cols, v + size_t(g) * D,
                Hkv * D, 0.0f, os, D);
    scatter_rows(out, os, b, /*accumulate=*/false);
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* probs, int T, int S, int H, int Hkv, int D,
                        const AttentionOpts& o) {
  // The row blocks skip the causally masked keys; encoders (causal = false) only run forward.
  LATHE_CHECK(o.causal, "attention_backward supports causal attention only");
  const int group = H / Hkv;
  const float scale = attention_scale(o, D);
  const float cap = o.softcap;
  const int P0 = S - T;  // row t attends to keys [0, P0 + t]
  const int nblocks = (T + kAttnRowBlock - 1) / kAttnRowBlock;
  // Per kv head g and row block (the group's stacked rows, M = group · rows, cols keys):
  //   P     = the block's probabilities (kept, or recomputed as the forward computed them)
  //   dP    = dO · v_g^T                              [M, cols]
  //   dv_g += P^T · dO                                [cols, D]
  //   dS    = P ∘ (dP − rowsum(dP ∘ P)) · scale
  //   dq   += dS · k_g ;  dk_g += dS^T · Q
  // dq rows belong to one block, but every block of a kv head adds into the same dk/dv rows. A kv
  // head's blocks are therefore dealt into parts of about equal work (largest first onto the
  // lightest part; fixed by the shapes, not the threads: at least 16 jobs where there are blocks for
  // them), each part with its own dk/dv partial, added into dk_g / dv_g in a fixed order (kv head,
  // part) at the end, so the result does not depend on the thread count. (With 8, SmolLM2's 3 kv
  // heads made 9 jobs of equal work: 5 on one thread, 4 on the other; 18 jobs took the backward
  // 1.04-1.08x faster at 2 threads.)
  const int nparts = std::clamp((16 + Hkv - 1) / Hkv, 1, nblocks);
  std::vector<int> part_of(size_t(nblocks), 0), part_cols(size_t(nparts), 0);
  {
    std::vector<int64_t> load(size_t(nparts), 0);
    for (int b = nblocks - 1; b >= 0; b--) {
      const int cols = P0 + std::min(T, (b + 1) * kAttnRowBlock);
      const int p = int(std::min_element(load.begin(), load.end()) - load.begin());
      part_of[size_t(b)] = p;
      load[size_t(p)] += cols;
      part_cols[size_t(p)] = std::max(part_cols[size_t(p)], cols);
    }
  }
  thread_local std::vector<float> part_buf;  // this (calling) thread's; workers use the pointer below
  float* const part = thread_buffer(part_buf, size_t(2) * nparts * Hkv * S * D);
  auto dk_part = [&](int g, int p) { return part + (size_t(p) * Hkv + g) * S * D; };
  auto dv_part = [&](int g, int p) { return part + (size_t(nparts + p) * Hkv + g) * S * D; };
#pragma omp parallel for schedule(dynamic, 1)
  for (int job = 0; job < Hkv * nparts; job++) {
    const int g = job / nparts, p = job % nparts;
    float *dkg = dk_part(g, p), *dvg = dv_part(g, p);
    std::fill(dkg, dkg + size_t(part_cols[size_t(p)]) * D, 0.0f);
    std::fill(dvg, dvg + size_t(part_cols[size_t(p)]) * D, 0.0f);
    thread_local std::vector<float> qbuf, obuf, pbuf, dsbuf, raw;
    for (int bi = 0; bi < nblocks; bi++) {
      if (part_of[size_t(bi)] != p) continue;
      const int t0 = bi * kAttnRowBlock, t1 = std::min(T, t0 + kAttnRowBlock);
      const GroupBlock b{t0, t1 - t0, P0 + t1, g * group, g, group, H, Hkv, D};
      const int M = b.M(), cols = b.cols;
      float* qs = thread_buffer(qbuf, size_t(M) * D);
      float* dos = thread_buffer(obuf, size_t(M) * D);
      float* P = thread_buffer(pbuf, size_t(M) * cols);
      float* dS = thread_buffer(dsbuf, size_t(M) * cols);
      gather_rows(qs, q, b);
      gather_rows(dos, dout, b);
      if (probs)
        load_probs(P, probs, b, T, S);
      else
        group_probs(P, qs, k, b, P0, o);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, cols, D, 1.0f, dos, D, v + size_t(g) * D, Hkv * D, 0.0f,
                  dS, cols);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, M, 1.0f, P, cols, dos, D, 1.0f, dvg, D);
      // Soft-capping: the capped score's derivative 1 - tanh²(raw / cap), from the raw scores
      // recomputed as the forward computed them.
      if (cap > 0.0f) {
        float* r = thread_buffer(raw, size_t(M) * cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, cols, D, scale, qs, D, k + size_t(g) * D, Hkv * D,
                    0.0f, r, cols);
#pragma omp simd
        for (size_t i = 0; i < size_t(M) * cols; i++) {
          const float th = fast_tanh(r[i] / cap);
          r[i] = 1.0f - th * th;
        }
      }
      for (int m = 0; m < M; m++) {
        const float* pr = P + size_t(m) * cols;
        float* ds = dS + size_t(m) * cols;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s < cols; s++) sum += ds[s] * pr[s];
#pragma omp simd
        for (int s = 0; s < cols; s++) ds[s] = pr[s] * (ds[s] - sum) * scale;
        if (cap > 0.0f)
          for (int s = 0; s < cols; s++) ds[s] *= raw[size_t(m) * cols + s];
      }
      // dq rows of this block: the product into the (now free) stacked-dout buffer, then added.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, cols, 1.0f, dS, cols, k + size_t(g) * D, Hkv * D,
                  0.0f, dos, D);
      scatter_rows(dq, dos, b, /*accumulate=*/true);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, M, 1.0f, dS, cols, qs, D, 1.0f, dkg, D);
    }
  }
#pragma omp parallel for schedule(static) if (S > 16)
  for (int s = 0; s < S; s++)
    for (int g = 0; g < Hkv; g++)
      for (int p = 0; p < nparts; p++) {
        if (s >= part_cols[size_t(p)]) continue;
        const float* sk = dk_part(g, p) + size_t(s) * D;
        const float* sv = dv_part(g, p) + size_t(s) * D;
        float* ok = dk + (size_t(s) * Hkv + g) * D;
        float* ov = dv + (size_t(s) * Hkv + g) * D;
#pragma omp simd
        for (int d = 0; d < D; d++) ok[d] += sk[d], ov[d] += sv[d];
      }
}

}  // namespace lathe
