// The frozen base's products in lower precision (`lathe train --base-compute`, issue 21).
//
// When a projection's weight does not train (LoRA, DoRA, IA³, prefix and prompt tuning over an f32
// base), its forward y = x·Wᵀ and its input gradient dX += dY·W need no weight gradient, so the
// weight can be held once in a cheaper format:
//   bf16: W rounded to bf16 (round to nearest even), x / dY rounded to bf16 per call, products
//         accumulated in f32. Per element of the result, against the exact product of the f32 inputs:
//           |err| <= (2u + u² + K·2⁻²³·1.01) · Σ_k |x_k|·|w_k|,   u = 2⁻⁸ (bf16's unit roundoff).
//   int8: W symmetric int8 per output channel of the product (a row of W for x·Wᵀ, a column of W
//         for dY·W: two copies), scale s_w = max|w|/q (q = 127, or 63 where the CPU has no VNNI:
//         AVX2's vpmaddubsw adds pairs of u8·s8 products in saturating int16, 2·255·127 overflows
//         it, 2·255·63 does not); each row of x / dY symmetric int8 per call, s_x = max|x|/127;
//         s32 accumulation (exact), then y = acc·s_x·s_w. Per element:
//           |err| <= (s_x/2)·Σ_k|w_k| + (s_w/2)·Σ_k|x_k| + K·s_x·s_w/4 + 2⁻²²·|y|.
// Both run on oneDNN's matmul primitive (Debian's libdnnl, LATHE_HAVE_DNNL): AVX512-BF16 / AMX
// brgemm kernels for bf16, AVX2 vpmaddubsw / AVX512-VNNI for int8. The weights are converted and
// reordered into the primitive's blocked layout once, on first use, and kept until
// base_compute_release() (the base never changes while it is frozen). Without oneDNN only F32 exists
// and asking for another is an error naming the option.
#pragma once
#include <cstdint>
#include <string>

namespace lathe {

enum class BaseCompute { F32 = 0, BF16 = 1, Int8 = 2 };

const char* base_compute_name(BaseCompute c);  // "f32" | "bf16" | "int8"
// "f32" | "bf16" | "int8" | "auto" (-> base_compute_auto()); anything else, or a compute this build or
// CPU cannot run, throws naming `what` (e.g. "--base-compute").
BaseCompute base_compute_parse(const std::string& s, const char* what = "--base-compute");
// bf16 where the CPU has bf16 dot products (AVX512-BF16, AMX-BF16) within the ISA lathe may use
// (LATHE_CPU_ISA=avx2 caps it), else f32. int8 is never automatic: it changes the loss measurably
// (docs/bench_train.md, "Base compute").
BaseCompute base_compute_auto();
// Built with oneDNN and the CPU can run it (f32: always).
bool base_compute_available(BaseCompute c);
// Why `c` is not available ("" when it is).
std::string base_compute_unavailable_reason(BaseCompute c);

// The process-wide choice for frozen f32 base weights (default F32: library users and the golden
// tests see exactly the f32 products unless a caller asks). set_base_compute checks availability.
void set_base_compute(BaseCompute c);
BaseCompute base_compute();

// y[T, out] = x[T, in] · W[out, in]ᵀ (+ bias[out]) with compute `c` (not F32).
void base_compute_forward(BaseCompute c, const float* W, int out, int in, const float* x, const float* bias,
                          float* y, int T);
// dx[T, in] += dy[T, out] · W[out, in] with compute `c` (not F32).
void base_compute_backward_input(BaseCompute c, const float* W, int out, int in, const float* dy, float* dx, int T);
// Frees every prepared weight (the trainer calls it when a run ends; a new model at the same address
// must not meet a stale copy). Prepared copies are also keyed by a sample of the weight's values.
void base_compute_release();
// Bytes held by prepared weights now (memory plan / tests).
int64_t base_compute_bytes();
// The int8 weight range in use here: 127 with VNNI, 63 without (see above).
int base_compute_int8_wmax();

}  // namespace lathe
