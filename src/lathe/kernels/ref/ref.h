// Plain scalar kernels: the specification of every op (STYLE.md §1). Each fast kernel in cpu/ is
// tested against these on odd shapes, and the backward passes (training) are checked against
// finite differences of these forwards.
//
// Letters: N rows (tokens), C channels, T query tokens, S key tokens (past + current), H query
// heads, Hkv key/value heads (H % Hkv == 0, query head h reads kv head h / (H/Hkv)), D head dim,
// F feed-forward width, V vocab. Every matrix is row-major. A Linear weight is [out, in] (PyTorch),
// so matmul_forward computes out[M,N] = inp[M,K] · weight[N,K]^T + bias[N].
#pragma once
#include <cstdint>

#include "lathe/kernels/attention_opts.h"

namespace lathe::ref {

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N);
// out[M,N] += alpha · inp[M,K] · weight[N,K]^T (adapters add their low-rank product onto the base output).
void matmul_forward_accumulate(float* out, const float* inp, const float* weight, float alpha, int M, int K, int N);

// out[N,C] = inp * rstd * weight with rstd = 1/sqrt(mean(inp^2) + eps); rstd[N] is saved if non-null.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);

// LayerNorm (BERT-family encoders): out[N,C] = (inp - mean) / sqrt(var + eps) * weight + bias, mean
// and the biased variance over each row's C channels. out may alias inp.
void layernorm_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, float eps);

// Rotary embedding in place, Hugging Face "rotate half" pairing over the first R channels of each
// head (R = D, or the rotary dimension of partial rotary; 0 means D): for i < R/2 the pair is
// (x[i], x[i + R/2]) rotated by angle pos * inv_freq[i]; channels R.. are untouched. x is
// [T, H, D]; cos/sin are [T, R/2].
void rope_forward(float* x, const float* cos, const float* sin, int T, int H, int D, int R = 0);

// Causal grouped-query attention. q [T,H,D], k and v [S,Hkv,D]; query t sits at position
// S - T + t and sees keys 0..S-T+t (keys before the first query are past tokens or prefixes).
// out [T,H,D] = softmax(cap(q k^T · scale)) v, scale 1/sqrt(D) unless `o` gives it, cap the
// soft-capping of `o` (identity when off), keys outside `o`'s window masked like future ones. With
// o.causal false every query sees all S keys (bidirectional encoder attention).
// probs [H,T,S] (softmax result, 0 where masked) is saved if non-null.
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v, int T, int S,
                       int H, int Hkv, int D, const AttentionOpts& o = {});

// out = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
// out = gelu_tanh(gate) * up, gelu_tanh(x) = x/2 · (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GeGLU, Gemma).
void geglu_forward(float* out, const float* gate, const float* up, int64_t n);
// out = gelu(x) = x/2 · (1 + erf(x / sqrt(2))), the exact GELU of BERT's hidden_act "gelu". out may alias x.
void gelu_forward(float* out, const float* x, int64_t n);
// x = cap * tanh(x / cap) in place (Gemma 2's final-logit soft-capping).
void softcap_forward(float* x, int64_t n, float cap);

// Row-wise softmax of inp[N,C], numerically stable (max subtracted).
void softmax_forward(float* out, const float* inp, int N, int C);

// out[N,C] = table[ids[n], :].
void embedding_forward(float* out, const int32_t* ids, const float* table, int N, int C);

// out = a + b (out may alias a).
void add_forward(float* out, const float* a, const float* b, int64_t n);

// Mean negative log-likelihood of targets under softmax(logits[N,V]); targets < 0 are skipped.
// Returns the sum of NLL; *count receives the number of counted rows.
double cross_entropy_sum(const float* logits, const int32_t* targets, int N, int V, int64_t* count);

// ---- Backward. Every gradient ACCUMULATES (+=) into its output, so a tensor used twice (tied
// embeddings, residual streams) sums its contributions; any gradient pointer may be null (not needed).

// dinp[M,K] += dout[M,N]·weight[N,K]; dweight[N,K] += dout^T·inp; dbias[N] += column sums of dout.
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N);
// y = x·r·w, r = rstd saved by the forward: dx = r·(w∘dy) − r³/C · x · Σ(w∘dy∘x); dw += Σ_n dy∘x·r.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);
// The transpose of the rotation (rotation by −angle), in place on dx [T,H,D].
void rope_backward(float* dx, const float* cos, const float* sin, int T, int H, int D, int R = 0);
// Given probs [H,T,S] from the forward: dP = dout·v^T, dS = P∘(dP − Σ dP∘P),
// dq += dS·k/√D, dk += dS^T·q/√D, dv += P^T·dout (kv heads sum over their query group).
// With soft-capping, dS is further multiplied by cap'(raw) = 1 − tanh²(raw / cap), raw recomputed.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* probs, int T, int S, int H, int Hkv, int D,
                        const AttentionOpts& o = {});
// out = silu(g)·u: dg += dout·u·σ(g)(1 + g(1 − σ(g))), du += dout·silu(g).
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
// out = gelu_tanh(g)·u: dg += dout·u·gelu_tanh'(g), du += dout·gelu_tanh(g).
void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
// Given y = softcap(x) (the forward's output): dx = dy · (1 − (y / cap)²), in place on dy.
void softcap_backward(float* dy, const float* y, int64_t n, float cap);
// dtable[ids[n]] += dout[n].
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int N, int C);
// Fused softmax + cross-entropy: returns Σ NLL over rows with target >= 0 (count in *count) and
// OVERWRITES logits with d(loss·scale)/dlogits = scale·(softmax − onehot) (0 for ignored rows).
double cross_entropy_backward(float* logits, const int32_t* targets, int N, int V, float scale, int64_t* count);

}  // namespace lathe::ref
