// Backward kernels for the CPU. Reductions over rows (weight gradients) either go through sgemm or
// run in a fixed order, so results do not depend on thread timing (bitwise-reproducible training).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/fast_exp.h"
#include "lathe/kernels/cpu/rope_rotate.h"

namespace lathe {

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N) {
  if (dinp)  // dinp[M,K] += dout[M,N] · W[N,K]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dout, N, weight, K, 1.0f, dinp, K);
  if (dweight)  // dW[N,K] += dout^T[N,M] · inp[M,K]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dout, N, inp, K, 1.0f, dweight, K);
  if (dbias)
#pragma omp parallel for schedule(static) if (N > 256)
    for (int n = 0; n < N; n++) {
      float acc = 0;
      for (int m = 0; m < M; m++) acc += dout[size_t(m) * N + n];
      dbias[n] += acc;
    }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  if (dinp)
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
      const float* x = inp + size_t(n) * C;
      const float* dy = dout + size_t(n) * C;
      float* dx = dinp + size_t(n) * C;
      const float r = rstd[n];
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < C; c++) dot += weight[c] * dy[c] * x[c];
      const float k = r * r * r / C * dot;
#pragma omp simd
      for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
    }
  if (dweight)  // column sums in row order: deterministic
#pragma omp parallel for schedule(static) if (C > 256)
    for (int c = 0; c < C; c++) {
      float acc = 0;
      for (int n = 0; n < N; n++) acc += dout[size_t(n) * C + c] * inp[size_t(n) * C + c] * rstd[n];
      dweight[c] += acc;
    }
}

void rope_backward(float* dx, const float* cos, const float* sin, int T, int H, int D, int R) {
  rope_rotate<true>(dx, cos, sin, T, H, D, R);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* probs, int T, int S, int H, int Hkv, int D, float* scratch,
                        const AttentionOpts& o) {
  // The row blocks below skip the causally masked keys; encoders (causal = false) only run forward.
  LATHE_CHECK(o.causal, "attention_backward supports causal attention only");
  const int group = H / Hkv;
  const float scale = o.scale > 0.0f ? o.scale : 1.0f / std::sqrt(float(D));
  const float cap = o.softcap;
  const int P0 = S - T;  // row t attends to keys [0, P0 + t]
  // Per query head h (in parallel; with 3 kv heads on 2 threads a per-kv-head split left a thread idle),
  // in blocks of rows that skip the masked keys (see attention_forward):
  //   dP_h = dout_h · v_g^T            [T,S]
  //   dv_h  = P_h^T · dout_h           [S,D]   (this head's share of dv_g)
  //   dS_h = P_h ∘ (dP_h − rowsum(dP_h ∘ P_h)) · scale
  //   dq_h += dS_h · k_g ; dk_h = dS_h^T · q_h
  // The per-head shares are then added into dk_g / dv_g in head order, so the result does not depend
  // on the thread count.
  thread_local std::vector<float> part_buf;  // this (calling) thread's; workers use the pointer below
  part_buf.assign(size_t(2) * H * S * D, 0.0f);
  float* const part = part_buf.data();
#pragma omp parallel for schedule(dynamic, 1)
  for (int h = 0; h < H; h++) {
    const int g = h / group;
    const float* P = probs + size_t(h) * T * S;
    float* dS = scratch + size_t(h) * T * S;
    float* dkh = part + size_t(h) * S * D;
    float* dvh = part + size_t(H + h) * S * D;
    for (int t0 = 0; t0 < T; t0 += kAttnRowBlock) {
      const int t1 = std::min(T, t0 + kAttnRowBlock), rows = t1 - t0, cols = P0 + t1;
      const float* dout_b = dout + (size_t(t0) * H + h) * D;
      const float* P_b = P + size_t(t0) * S;
      float* dS_b = dS + size_t(t0) * S;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, D, 1.0f, dout_b, H * D, v + size_t(g) * D,
                  Hkv * D, 0.0f, dS_b, S);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, rows, 1.0f, P_b, S, dout_b, H * D, 1.0f, dvh, D);
      // Soft-capping: the capped score's derivative 1 - tanh²(raw / cap), from the raw scores
      // recomputed as the forward computed them.
      thread_local std::vector<float> raw;
      if (cap > 0.0f) {
        raw.resize(size_t(rows) * cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, D, scale, q + (size_t(t0) * H + h) * D, H * D,
                    k + size_t(g) * D, Hkv * D, 0.0f, raw.data(), cols);
        for (float& r : raw) {
          const float th = std::tanh(r / cap);
          r = 1.0f - th * th;
        }
      }
      for (int t = 0; t < rows; t++) {
        const float* p = P_b + size_t(t) * S;
        float* ds = dS_b + size_t(t) * S;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s < cols; s++) sum += ds[s] * p[s];
#pragma omp simd
        for (int s = 0; s < cols; s++) ds[s] = p[s] * (ds[s] - sum) * scale;
        if (cap > 0.0f)
          for (int s = 0; s < cols; s++) ds[s] *= raw[size_t(t) * cols + s];
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, cols, 1.0f, dS_b, S, k + size_t(g) * D, Hkv * D,
                  1.0f, dq + (size_t(t0) * H + h) * D, H * D);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, rows, 1.0f, dS_b, S, q + (size_t(t0) * H + h) * D,
                  H * D, 1.0f, dkh, D);
    }
  }
#pragma omp parallel for schedule(static) if (S > 16)
  for (int s = 0; s < S; s++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      const float* sk = part + (size_t(h) * S + s) * D;
      const float* sv = part + (size_t(H + h) * S + s) * D;
      float* ok = dk + (size_t(s) * Hkv + g) * D;
      float* ov = dv + (size_t(s) * Hkv + g) * D;
#pragma omp simd
      for (int d = 0; d < D; d++) ok[d] += sk[d], ov[d] += sv[d];
    }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = gate[i], s = 1.0f / (1.0f + fast_exp(-g));
    if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    if (dup) dup[i] += dout[i] * g * s;
  }
}

void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i], u = g * g;
    const float th = std::tanh(k * (g + 0.044715f * u * g));
    const float gelu = 0.5f * g * (1.0f + th);
    const float dgelu = 0.5f * (1.0f + th) + 0.5f * g * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * u);
    if (dgate) dgate[i] += dout[i] * up[i] * dgelu;
    if (dup) dup[i] += dout[i] * gelu;
  }
}

void softcap_backward(float* dy, const float* y, int64_t n, float cap) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    const float t = y[i] / cap;
    dy[i] *= 1.0f - t * t;
  }
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int N, int C) {
  // Serial over rows: repeated ids must add in a fixed order.
  for (int n = 0; n < N; n++) {
    float* d = dtable + size_t(ids[n]) * C;
    const float* g = dout + size_t(n) * C;
#pragma omp simd
    for (int c = 0; c < C; c++) d[c] += g[c];
  }
}

double cross_entropy_backward(float* logits, const int32_t* targets, int N, int V, float scale, int64_t* count,
                              const float* row_weight) {
  std::vector<double> row(N, 0.0);
#pragma omp parallel for schedule(static) if (N > 4)
  for (int n = 0; n < N; n++) {
    float* x = logits + size_t(n) * V;
    if (targets[n] < 0) {
      std::fill(x, x + V, 0.0f);
      continue;
    }
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int c = 0; c < V; c++) mx = std::max(mx, x[c]);
    const float target_logit = x[targets[n]];
    double sum = 0;  // e^(x - max) is computed once, kept in x, and scaled in a second pass
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < V; c++) {
      const float e = fast_exp(x[c] - mx);
      x[c] = e;
      sum += double(e);
    }
    row[n] = std::log(sum) + mx - target_logit;
    const float s = row_weight ? scale * row_weight[n] : scale;
    const float k = s * float(1.0 / sum);
#pragma omp simd
    for (int c = 0; c < V; c++) x[c] *= k;
    x[targets[n]] -= s;
  }
  double total = 0;
  int64_t cnt = 0;
  for (int n = 0; n < N; n++)
    if (targets[n] >= 0) total += row[n], cnt++;
  *count = cnt;
  return total;
}

}  // namespace lathe
