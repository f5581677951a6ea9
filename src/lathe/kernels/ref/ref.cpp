#include "lathe/kernels/ref/ref.h"

#include <cmath>
#include <vector>

namespace lathe::ref {

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N) {
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double acc = bias ? bias[n] : 0.0;
      for (int k = 0; k < K; k++) acc += double(inp[size_t(m) * K + k]) * weight[size_t(n) * K + k];
      out[size_t(m) * N + n] = float(acc);
    }
}

void matmul_forward_accumulate(float* out, const float* inp, const float* weight, float alpha, int M, int K, int N) {
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double acc = 0.0;
      for (int k = 0; k < K; k++) acc += double(inp[size_t(m) * K + k]) * weight[size_t(n) * K + k];
      out[size_t(m) * N + n] += float(alpha * acc);
    }
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    double ss = 0;
    for (int c = 0; c < C; c++) ss += double(x[c]) * x[c];
    float r = float(1.0 / std::sqrt(ss / C + eps));
    if (rstd) rstd[n] = r;
    for (int c = 0; c < C; c++) out[size_t(n) * C + c] = x[c] * r * weight[c];
  }
}

void layernorm_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    double mean = 0, var = 0;
    for (int c = 0; c < C; c++) mean += x[c];
    mean /= C;
    for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
    const double r = 1.0 / std::sqrt(var / C + eps);
    for (int c = 0; c < C; c++) out[size_t(n) * C + c] = float((x[c] - mean) * r * weight[c] + bias[c]);
  }
}

// The rotation of each row by its angles; Inverse rotates back (rope_backward: a rotation's
// transpose is its inverse).
template <bool Inverse>
static void rope_rotate_ref(float* x, const float* cos, const float* sin, int T, int H, int D, int R) {
  int half = (R > 0 ? R : D) / 2;
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      float* v = x + (size_t(t) * H + h) * D;
      for (int i = 0; i < half; i++) {
        float c = cos[size_t(t) * half + i], s = sin[size_t(t) * half + i];
        float a = v[i], b = v[i + half];
        if constexpr (Inverse) {
          v[i] = a * c + b * s;
          v[i + half] = b * c - a * s;
        } else {
          v[i] = a * c - b * s;
          v[i + half] = b * c + a * s;
        }
      }
    }
}

void rope_forward(float* x, const float* cos, const float* sin, int T, int H, int D, int R) {
  rope_rotate_ref<false>(x, cos, sin, T, H, D, R);
}

// scale · q_t·k_s of query head h against kv head g.
static double attention_score(const float* q, const float* k, int t, int s, int h, int g, int H, int Hkv, int D,
                              double scale) {
  const float* qv = q + (size_t(t) * H + h) * D;
  const float* kv = k + (size_t(s) * Hkv + g) * D;
  double dot = 0;
  for (int d = 0; d < D; d++) dot += double(qv[d]) * kv[d];
  return dot * scale;
}

static double attention_scale_of(const AttentionOpts& o, int D) {
  return o.scale > 0.0f ? double(o.scale) : 1.0 / std::sqrt(double(D));
}

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v, int T, int S,
                       int H, int Hkv, int D, const AttentionOpts& opt) {
  int group = H / Hkv;
  const double scale = attention_scale_of(opt, D), cap = opt.softcap;
  std::vector<double> p(S);
  for (int h = 0; h < H; h++) {
    int g = h / group;
    for (int t = 0; t < T; t++) {
      const int last = opt.causal ? S - T + t : S - 1;  // last visible key
      const int first = opt.causal ? attention_first_key(opt, last) : 0;
      double mx = -INFINITY;
      for (int s = first; s <= last; s++) {
        p[s] = attention_score(q, k, t, s, h, g, H, Hkv, D, scale);
        if (cap > 0) p[s] = cap * std::tanh(p[s] / cap);
        mx = std::max(mx, p[s]);
      }
      double sum = 0;
      for (int s = first; s <= last; s++) sum += (p[s] = std::exp(p[s] - mx));
      float* o = out + (size_t(t) * H + h) * D;
      for (int d = 0; d < D; d++) o[d] = 0;
      for (int s = 0; s < S; s++) {
        const bool seen = s >= first && s <= last;
        double w = seen ? p[s] / sum : 0.0;
        if (probs) probs[(size_t(h) * T + t) * S + s] = float(w);
        if (!seen) continue;
        const float* vv = v + (size_t(s) * Hkv + g) * D;
        for (int d = 0; d < D; d++) o[d] += float(w * vv[d]);
      }
    }
  }
}

static double gelu_tanh_ref(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

void geglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = float(gelu_tanh_ref(gate[i]) * up[i]);
}

void gelu_forward(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = float(0.5 * x[i] * (1.0 + std::erf(double(x[i]) / std::sqrt(2.0))));
}

void softcap_forward(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; i++) x[i] = float(double(cap) * std::tanh(double(x[i]) / cap));
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax_forward(float* out, const float* inp, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    float* y = out + size_t(n) * C;
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < C; c++) mx = std::max(mx, double(x[c]));
    for (int c = 0; c < C; c++) sum += std::exp(double(x[c]) - mx);
    for (int c = 0; c < C; c++) y[c] = float(std::exp(double(x[c]) - mx) / sum);
  }
}

void embedding_forward(float* out, const int32_t* ids, const float* table, int N, int C) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) out[size_t(n) * C + c] = table[size_t(ids[n]) * C + c];
}

void add_forward(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

double cross_entropy_sum(const float* logits, const int32_t* targets, int N, int V, int64_t* count) {
  double total = 0;
  int64_t cnt = 0;
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    const float* x = logits + size_t(n) * V;
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < V; c++) mx = std::max(mx, double(x[c]));
    for (int c = 0; c < V; c++) sum += std::exp(double(x[c]) - mx);
    total += std::log(sum) + mx - x[targets[n]];
    cnt++;
  }
  *count = cnt;
  return total;
}

}  // namespace lathe::ref

namespace lathe::ref {

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N) {
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      float g = dout[size_t(m) * N + n];
      if (dbias) dbias[n] += g;
      for (int k = 0; k < K; k++) {
        if (dinp) dinp[size_t(m) * K + k] += g * weight[size_t(n) * K + k];
        if (dweight) dweight[size_t(n) * K + k] += g * inp[size_t(m) * K + k];
      }
    }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    const float* dy = dout + size_t(n) * C;
    double r = rstd[n], dot = 0;
    for (int c = 0; c < C; c++) dot += double(weight[c]) * dy[c] * x[c];
    for (int c = 0; c < C; c++) {
      if (dweight) dweight[c] += float(dy[c] * x[c] * r);
      if (dinp) dinp[size_t(n) * C + c] += float(r * weight[c] * dy[c] - r * r * r / C * x[c] * dot);
    }
  }
}

void rope_backward(float* dx, const float* cos, const float* sin, int T, int H, int D, int R) {
  rope_rotate_ref<true>(dx, cos, sin, T, H, D, R);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* probs, int T, int S, int H, int Hkv, int D,
                        const AttentionOpts& opt) {
  int group = H / Hkv;
  const double scale = attention_scale_of(opt, D), cap = opt.softcap;
  std::vector<double> dp(S);
  for (int h = 0; h < H; h++) {
    int g = h / group;
    for (int t = 0; t < T; t++) {
      const float* p = probs + (size_t(h) * T + t) * S;
      const float* go = dout + (size_t(t) * H + h) * D;
      double sum = 0;
      for (int s = 0; s < S; s++) {
        const float* vv = v + (size_t(s) * Hkv + g) * D;
        double d = 0;
        for (int i = 0; i < D; i++) d += double(go[i]) * vv[i];
        dp[s] = d;
        sum += d * p[s];
        float* dvv = dv + (size_t(s) * Hkv + g) * D;
        for (int i = 0; i < D; i++) dvv[i] += p[s] * go[i];
      }
      const float* qv = q + (size_t(t) * H + h) * D;
      float* dqv = dq + (size_t(t) * H + h) * D;
      for (int s = 0; s < S; s++) {
        double ds = p[s] * (dp[s] - sum) * scale;
        if (ds == 0) continue;
        if (cap > 0) {  // through the cap: d(cap·tanh(r/cap))/dr = 1 − tanh²(r/cap)
          const double th = std::tanh(attention_score(q, k, t, s, h, g, H, Hkv, D, scale) / cap);
          ds *= 1.0 - th * th;
        }
        const float* kv = k + (size_t(s) * Hkv + g) * D;
        float* dkv = dk + (size_t(s) * Hkv + g) * D;
        for (int i = 0; i < D; i++) {
          dqv[i] += float(ds * kv[i]);
          dkv[i] += float(ds * qv[i]);
        }
      }
    }
  }
}

void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  const double k = std::sqrt(2.0 / M_PI);
  for (int64_t i = 0; i < n; i++) {
    const double g = gate[i], th = std::tanh(k * (g + 0.044715 * g * g * g));
    const double dgelu = 0.5 * (1.0 + th) + 0.5 * g * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * g * g);
    if (dgate) dgate[i] += float(dout[i] * up[i] * dgelu);
    if (dup) dup[i] += float(dout[i] * gelu_tanh_ref(g));
  }
}

void softcap_backward(float* dy, const float* y, int64_t n, float cap) {
  for (int64_t i = 0; i < n; i++) {
    const double t = double(y[i]) / cap;
    dy[i] = float(dy[i] * (1.0 - t * t));
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double g = gate[i], s = 1.0 / (1.0 + std::exp(-g));
    if (dgate) dgate[i] += float(dout[i] * up[i] * s * (1.0 + g * (1.0 - s)));
    if (dup) dup[i] += float(dout[i] * g * s);
  }
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int N, int C) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) dtable[size_t(ids[n]) * C + c] += dout[size_t(n) * C + c];
}

double cross_entropy_backward(float* logits, const int32_t* targets, int N, int V, float scale, int64_t* count) {
  double total = 0;
  int64_t cnt = 0;
  for (int n = 0; n < N; n++) {
    float* x = logits + size_t(n) * V;
    if (targets[n] < 0) {
      for (int c = 0; c < V; c++) x[c] = 0;
      continue;
    }
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < V; c++) mx = std::max(mx, double(x[c]));
    for (int c = 0; c < V; c++) sum += std::exp(double(x[c]) - mx);
    total += std::log(sum) + mx - x[targets[n]];
    cnt++;
    for (int c = 0; c < V; c++) x[c] = float(scale * (std::exp(double(x[c]) - mx) / sum - (c == targets[n])));
  }
  *count = cnt;
  return total;
}

}  // namespace lathe::ref
