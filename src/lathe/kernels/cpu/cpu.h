// Fast CPU kernels: the same contracts as kernels/ref (read ref.h for shapes and formulas),
// implemented with OpenBLAS sgemm/sgemv and OpenMP loops that the compiler vectorises.
// Tested against ref on odd shapes in tests/kernels.
#pragma once
#include <cstdint>

#include "lathe/kernels/attention_opts.h"

namespace lathe {

// Attention works on blocks of this many query rows so the causally masked blocks are skipped.
// 64 rather than 128: the diagonal blocks compute half their scores for nothing, so smaller blocks
// do ~10% fewer FLOPs at T = 512, and with a GQA group of 3 a block is still a 192-row product
// (attention alone at SmolLM2's shape, 1 thread: 1.07-1.09x over 128 natively and on AVX2; 32 was
// no better than 64).
constexpr int kAttnRowBlock = 64;

// Sets threads for OpenMP and OpenBLAS (one pool: the OpenMP build of OpenBLAS). n <= 0: all cores.
// The first instruction-set extension this binary was compiled for (LATHE_NATIVE / LATHE_ARCH) that
// the running CPU lacks, or nullptr. A -march=native build copied to an older CPU would otherwise die
// with SIGILL somewhere in a kernel; main() checks this first and names the fix.
const char* cpu_missing_build_feature();

void cpu_set_num_threads(int n);

// y[N] = W[N, K] · x[K] (+ bias when not null): the decode GEMV (gemv_f32.cpp), run-time dispatched
// like the qblock kernels; the thread count does not change a bit.
void gemv_f32(float* y, const float* x, const float* W, const float* bias, int64_t K, int64_t N);
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N);
void matmul_forward_accumulate(float* out, const float* inp, const float* weight, float alpha, int M, int K, int N);
// C[M, N] = beta·C + alpha·op(A)·op(B), row-major with leading dimensions (op: transpose when asked):
// for callers that split one product into parts over threads themselves (LoRA's rank-r products).
void sgemm_strided(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc);
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void layernorm_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, float eps);
void rope_forward(float* x, const float* cos, const float* sin, int T, int H, int D, int R = 0);
// Causal (or, for encoders, bidirectional) attention of T queries [T, H, D] over S keys and values
// [S, Hkv, D] (the last T of them at the queries' positions). `probs` [H, T, S] receives the
// probabilities when not null (a backward that reads them); null: each block of rows' probabilities
// live in a per-thread buffer only (attention.cpp).
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v, int T, int S,
                       int H, int Hkv, int D, const AttentionOpts& o = {});
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
void geglu_forward(float* out, const float* gate, const float* up, int64_t n);
void gelu_forward(float* out, const float* x, int64_t n);
void softcap_forward(float* x, int64_t n, float cap);
void softmax_forward(float* out, const float* inp, int N, int C);
void embedding_forward(float* out, const int32_t* ids, const float* table, int N, int C);
void add_forward(float* out, const float* a, const float* b, int64_t n);
// Σ NLL over targets >= 0; `row_nll` (optional, N entries) receives each row's NLL (0 where no target).
double cross_entropy_sum(const float* logits, const int32_t* targets, int N, int V, int64_t* count,
                         double* row_nll = nullptr);

// Backward: same contracts as kernels/ref (gradients accumulate; null pointers are skipped).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);
void rope_backward(float* dx, const float* cos, const float* sin, int T, int H, int D, int R = 0);
// Gradients of causal attention (accumulated into dq, dk, dv). `probs`: the forward's kept
// probabilities, or null to recompute each block of rows' probabilities from q and k (bitwise the
// forward's values) without ever holding more than a block per thread.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* probs, int T, int S, int H, int Hkv, int D,
                        const AttentionOpts& o = {});
// The activations' backward writes dgate and dup (either may be null); it does not add to them, so
// the training backward need not zero 2·N·F floats a layer first.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
void softcap_backward(float* dy, const float* y, int64_t n, float cap);
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int N, int C);
// Overwrites logits with d(scale · w_n · NLL_n)/dlogits per row (w_n = row_weight[n], or 1 when null).
double cross_entropy_backward(float* logits, const int32_t* targets, int N, int V, float scale, int64_t* count,
                              const float* row_weight = nullptr);

}  // namespace lathe
