// Attention on the CPU: forward for decode, prefill and training, and the training backward.
//
// Rows go in blocks of kAttnRowBlock queries. A block's probabilities are [rows, cols] (cols: the
// keys its last row sees, so the causally masked upper-right part is never computed) and live in a
// per-thread buffer unless the caller keeps them ([H, T, S] `probs`): a forward over T rows and the
// backward that recomputes them hold O(threads · rows · S) floats, not O(H · T · S) (at T = 4096
// with 14 heads that was 0.9 GB for the probabilities and as much again for their gradient).
// The probabilities of a block are computed by one function (probs_block) with the same calls in
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

// Probabilities of query rows [t0, t0 + rows) of head h (kv head g) over keys [0, cols) into p
// (leading dimension ldp >= cols; entries of masked keys are 0, and so are [cols, ldp)).
// q is [T, H, D], k is [S, Hkv, D]; the row t sees keys up to P0 + t (causal).
void probs_block(float* p, int ldp, const float* q, const float* k, int t0, int rows, int cols, int h, int g, int H,
                 int Hkv, int D, int P0, const AttentionOpts& o) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, D, attention_scale(o, D),
              q + (size_t(t0) * H + h) * D, H * D, k + size_t(g) * D, Hkv * D, 0.0f, p, ldp);
  for (int t = 0; t < rows; t++) {
    float* row = p + size_t(t) * ldp;
    if (o.causal)
      causal_softmax_row(row, attention_first_key(o, P0 + t0 + t), P0 + t0 + t + 1, ldp, o.softcap);
    else
      causal_softmax_row(row, 0, cols, ldp, o.softcap);
  }
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
  // Per (head, row block): scores = q_h k_g^T (sgemm on strided views of [T,H,D] and [S,Hkv,D]),
  // softmax, out_h = P v_g. OpenBLAS runs single-threaded inside an OpenMP parallel region, so the
  // pools do not nest. Rows [t0, t1) see only the first S - T + t1 keys (at T = S = 512 skipping the
  // rest saves about 3/8 of the FLOPs); bidirectional attention (encoders) sees all S. The pairs are
  // independent and handed out one at a time, the last blocks (the longest, when causal) first: 9
  // heads on 2 threads left one thread a whole head behind when heads were the unit.
  const int group = H / Hkv;
  const int P0 = S - T;  // keys before the first query (KV cache or prefix): row t sees [0, P0 + t]
  const int nblocks = (T + kAttnRowBlock - 1) / kAttnRowBlock;
#pragma omp parallel for schedule(dynamic, 1)
  for (int job = 0; job < H * nblocks; job++) {
    const int h = job % H, t0 = (nblocks - 1 - job / H) * kAttnRowBlock;
    const int t1 = std::min(T, t0 + kAttnRowBlock), rows = t1 - t0, cols = o.causal ? P0 + t1 : S;
    thread_local std::vector<float> buf;
    float* p = probs ? probs + (size_t(h) * T + t0) * S : thread_buffer(buf, size_t(rows) * cols);
    const int ldp = probs ? S : cols;
    probs_block(p, ldp, q, k, t0, rows, cols, h, h / group, H, Hkv, D, P0, o);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, cols, 1.0f, p, ldp, v + size_t(h / group) * D,
                Hkv * D, 0.0f, out + (size_t(t0) * H + h) * D, H * D);
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
  // Per query head h and row block [t0, t1) (cols = P0 + t1 keys):
  //   P     = the block's probabilities (kept, or recomputed as the forward computed them)
  //   dP    = dout_h · v_g^T                          [rows, cols]
  //   dv_h += P^T · dout_h                            [cols, D]
  //   dS    = P ∘ (dP − rowsum(dP ∘ P)) · scale
  //   dq_h += dS · k_g ;  dk_h += dS^T · q_h
  // dq rows belong to one block, but every block of a head adds into the same dk/dv rows. A head's
  // blocks are therefore dealt into two parts of about equal work (largest first onto the lighter
  // part; fixed by the shapes, not the threads), each part with its own dk/dv partial: 2·H jobs
  // keep 2 threads busy where H jobs (9 heads) left one idle for a head. The partials are added
  // into dk_g / dv_g in a fixed order (head, part), so the result does not depend on thread count.
  const int nparts = nblocks > 1 ? 2 : 1;
  std::vector<int> part_of(size_t(nblocks), 0);
  int part_cols[2] = {0, 0};  // the keys a part's blocks reach (its partials' rows in use)
  {
    int64_t load[2] = {0, 0};
    for (int b = nblocks - 1; b >= 0; b--) {
      const int cols = P0 + std::min(T, (b + 1) * kAttnRowBlock);
      const int p = nparts > 1 && load[1] < load[0] ? 1 : 0;
      part_of[size_t(b)] = p;
      load[p] += cols;
      part_cols[p] = std::max(part_cols[p], cols);
    }
  }
  thread_local std::vector<float> part_buf;  // this (calling) thread's; workers use the pointer below
  float* const part = thread_buffer(part_buf, size_t(2) * nparts * H * S * D);
  auto dk_part = [&](int h, int p) { return part + (size_t(p) * H + h) * S * D; };
  auto dv_part = [&](int h, int p) { return part + (size_t(nparts + p) * H + h) * S * D; };
#pragma omp parallel for schedule(dynamic, 1)
  for (int job = 0; job < H * nparts; job++) {
    const int h = job / nparts, p = job % nparts, g = h / group;
    float *dkh = dk_part(h, p), *dvh = dv_part(h, p);
    std::fill(dkh, dkh + size_t(part_cols[p]) * D, 0.0f);
    std::fill(dvh, dvh + size_t(part_cols[p]) * D, 0.0f);
    thread_local std::vector<float> pbuf, dsbuf, raw;
    for (int b = 0; b < nblocks; b++) {
      if (part_of[size_t(b)] != p) continue;
      const int t0 = b * kAttnRowBlock, t1 = std::min(T, t0 + kAttnRowBlock), rows = t1 - t0, cols = P0 + t1;
      const float* dout_b = dout + (size_t(t0) * H + h) * D;
      const float* q_b = q + (size_t(t0) * H + h) * D;
      const float* P_b;
      int ldp;
      if (probs) {
        P_b = probs + (size_t(h) * T + t0) * S, ldp = S;
      } else {
        float* pb = thread_buffer(pbuf, size_t(rows) * cols);
        probs_block(pb, cols, q, k, t0, rows, cols, h, g, H, Hkv, D, P0, o);
        P_b = pb, ldp = cols;
      }
      float* dS_b = thread_buffer(dsbuf, size_t(rows) * cols);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, D, 1.0f, dout_b, H * D, v + size_t(g) * D,
                  Hkv * D, 0.0f, dS_b, cols);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, rows, 1.0f, P_b, ldp, dout_b, H * D, 1.0f, dvh, D);
      // Soft-capping: the capped score's derivative 1 - tanh²(raw / cap), from the raw scores
      // recomputed as the forward computed them.
      if (cap > 0.0f) {
        float* r = thread_buffer(raw, size_t(rows) * cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, D, scale, q_b, H * D, k + size_t(g) * D,
                    Hkv * D, 0.0f, r, cols);
        for (size_t i = 0; i < size_t(rows) * cols; i++) {
          const float th = std::tanh(r[i] / cap);
          r[i] = 1.0f - th * th;
        }
      }
      for (int t = 0; t < rows; t++) {
        const float* pr = P_b + size_t(t) * ldp;
        float* ds = dS_b + size_t(t) * cols;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s < cols; s++) sum += ds[s] * pr[s];
#pragma omp simd
        for (int s = 0; s < cols; s++) ds[s] = pr[s] * (ds[s] - sum) * scale;
        if (cap > 0.0f)
          for (int s = 0; s < cols; s++) ds[s] *= raw[size_t(t) * cols + s];
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, cols, 1.0f, dS_b, cols, k + size_t(g) * D,
                  Hkv * D, 1.0f, dq + (size_t(t0) * H + h) * D, H * D);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, rows, 1.0f, dS_b, cols, q_b, H * D, 1.0f, dkh, D);
    }
  }
#pragma omp parallel for schedule(static) if (S > 16)
  for (int s = 0; s < S; s++)
    for (int h = 0; h < H; h++)
      for (int p = 0; p < nparts; p++) {
        if (s >= part_cols[p]) continue;
        const float* sk = dk_part(h, p) + size_t(s) * D;
        const float* sv = dv_part(h, p) + size_t(s) * D;
        float* ok = dk + (size_t(s) * Hkv + h / group) * D;
        float* ov = dv + (size_t(s) * Hkv + h / group) * D;
#pragma omp simd
        for (int d = 0; d < D; d++) ok[d] += sk[d], ov[d] += sv[d];
      }
}

}  // namespace lathe
