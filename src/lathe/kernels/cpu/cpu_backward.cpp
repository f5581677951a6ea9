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
#include "lathe/kernels/cpu/softmax_row.h"

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

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = gate[i], s = 1.0f / (1.0f + fast_exp(-g));
    if (dgate) dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    if (dup) dup[i] = dout[i] * g * s;
  }
}

void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i], u = g * g;
    const float th = fast_tanh(k * (g + 0.044715f * u * g));
    const float gelu = 0.5f * g * (1.0f + th);
    const float dgelu = 0.5f * (1.0f + th) + 0.5f * g * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * u);
    if (dgate) dgate[i] = dout[i] * up[i] * dgelu;
    if (dup) dup[i] = dout[i] * gelu;
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
    const float mx = max_of(x, V);
    const float target_logit = x[targets[n]];
    const double sum = exp_sum<true>(x, x, V, mx);  // e^(x - max) kept in x, scaled in a second pass
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
