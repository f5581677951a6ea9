#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/fast_exp.h"
#include "lathe/kernels/cpu/rope_rotate.h"
#include "lathe/kernels/cpu/softmax_row.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lathe/core/threads.h"

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace lathe {

// OpenBLAS builds with DYNAMIC_ARCH pick their kernels from the CPU model at load time. A model
// the library does not know (0.3.21 on newer Xeons, or a VM that masks the model) falls back to
// the SSE3 "Prescott" kernels, 4-5x slower than the AVX-512 ones this CPU can run. When that
// happens and the user has not chosen (OPENBLAS_CORETYPE), re-select the core from the CPU's
// features through OpenBLAS's own dynamic-init entry points (weak: absent in non-dynamic builds).
extern "C" {
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
}

// LATHE_CPU_ISA (kernels/cpu/qblock.h) pins lathe's run-time dispatched kernels to one instruction
// set for tests and benchmarks; it pins OpenBLAS to the matching core too, so an "avx2" run measures
// AVX2 code on both sides. The user's own OPENBLAS_CORETYPE wins.
static const char* blas_core_for_isa(const char* isa) {
  if (!isa || !*isa) return nullptr;
#if defined(__x86_64__)
  if (std::strcmp(isa, "avx512") == 0 || std::strcmp(isa, "avx512vnni") == 0) return "SkylakeX";
  if (std::strcmp(isa, "avx2") == 0) return "Haswell";
  if (std::strcmp(isa, "scalar") == 0) return "Prescott";
#endif
  // Unknown values: qblock.cpp reports them when the kernels first run. On aarch64 "neon" and "scalar"
  // leave OpenBLAS's own choice of ARM core as it is.
  return nullptr;
}

static void select_blas_core() {
  static bool done = false;
  if (done) return;
  done = true;
  if (std::getenv("OPENBLAS_CORETYPE") || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return;
  const char* name = openblas_get_corename();
  const char* want = blas_core_for_isa(std::getenv("LATHE_CPU_ISA"));
  if (want) {
    if (name && std::strcmp(name, want) == 0) return;
  } else {
#if defined(__x86_64__)
    if (!name || std::strcmp(name, "Prescott") != 0) return;  // the generic fallback only
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      want = "Haswell";
#endif
    // Elsewhere (aarch64) OpenBLAS's own detection stands: it knows the ARM cores lathe runs on.
    if (!want) return;
  }
  const std::string before = name ? name : "?";
  setenv("OPENBLAS_CORETYPE", want, 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
  if (std::getenv("LATHE_VERBOSE"))
    std::fprintf(stderr, "lathe: OpenBLAS detected core %s; using %s kernels\n", before.c_str(),
                 openblas_get_corename());
}

const char* cpu_missing_build_feature() {
#if defined(__x86_64__)
  __builtin_cpu_init();
#if defined(__AVX512F__)
  if (!__builtin_cpu_supports("avx512f")) return "avx512f";
#endif
#if defined(__AVX512BW__)
  if (!__builtin_cpu_supports("avx512bw")) return "avx512bw";
#endif
#if defined(__AVX2__)
  if (!__builtin_cpu_supports("avx2")) return "avx2";
#endif
#if defined(__FMA__)
  if (!__builtin_cpu_supports("fma")) return "fma";
#endif
#elif defined(__aarch64__)
  // ASIMD is part of the aarch64 baseline; a build for armv8.2-a+dotprod (LATHE_ARCH) or newer may
  // use SDOT anywhere once the compiler vectorises with it.
#if defined(__ARM_FEATURE_DOTPROD)
  if (!(getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) return "dotprod";
#endif
#endif
  return nullptr;
}

void cpu_set_num_threads(int n) {
  select_blas_core();
  set_num_threads(n);
  openblas_set_num_threads(num_threads());
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N) {
  if (M == 1) {
    // Decode: a matrix-vector product, bandwidth bound (gemv_f32.cpp says why not sgemv).
    gemv_f32(out, inp, weight, bias, K, N);
    return;
  }
  if (bias) {
    for (int m = 0; m < M; m++) std::memcpy(out + size_t(m) * N, bias, sizeof(float) * N);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, inp, K, weight, K, bias ? 1.0f : 0.0f, out,
              N);
}

void matmul_forward_accumulate(float* out, const float* inp, const float* weight, float alpha, int M, int K, int N) {
  // beta = 1: sgemm adds onto out in place, no temporary and no separate (serial) add pass.
  if (M == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, weight, K, inp, 1, 1.0f, out, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, inp, K, weight, K, 1.0f, out, N);
}

void sgemm_strided(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if (N > 16)
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    float* y = out + size_t(n) * C;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    float r = 1.0f / std::sqrt(ss / C + eps);
    if (rstd) rstd[n] = r;
#pragma omp simd
    for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
  }
}

// Two passes over the row (mean, then the centred sum of squares): the one-pass E[x²] − E[x]²
// cancels badly when |mean| is large against the spread, which embeddings + residuals can be.
void layernorm_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if (N > 16)
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    float* y = out + size_t(n) * C;
    // Sums in double: activations far from zero (a mean of 30 over 4k channels) lose the centred
    // part in a float sum, by an amount that depends on the vector width (AVX2 and AVX-512 differed
    // by 5e-5 relative). Layer norm is not the hot path of the encoder; the GEMMs are.
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++) sum += double(x[c]);
    const float mean = float(sum / C);
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += double(x[c] - mean) * double(x[c] - mean);
    const float r = float(1.0 / std::sqrt(ss / C + double(eps)));
#pragma omp simd
    for (int c = 0; c < C; c++) y[c] = (x[c] - mean) * r * weight[c] + bias[c];
  }
}

void rope_forward(float* x, const float* cos, const float* sin, int T, int H, int D, int R) {
  rope_rotate<false>(x, cos, sin, T, H, D, R);
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g / (1.0f + fast_exp(-g)) * up[i];
  }
}

// GELU with the tanh approximation (PyTorch's approximate="tanh").
static inline float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + fast_tanh(k * (x + 0.044715f * x * x * x)));
}

void geglu_forward(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = gelu_tanh(gate[i]) * up[i];
}

void gelu_forward(float* out, const float* x, int64_t n) {
  const float k = 0.7071067811865476f;  // 1 / sqrt(2)
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * k));
}

void softcap_forward(float* x, int64_t n, float cap) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (int64_t i = 0; i < n; i++) x[i] = cap * fast_tanh(x[i] / cap);
}

void softmax_forward(float* out, const float* inp, int N, int C) {
#pragma omp parallel for schedule(static) if (N > 4)
  for (int n = 0; n < N; n++) softmax_row(inp + size_t(n) * C, out + size_t(n) * C, C, C);
}

void embedding_forward(float* out, const int32_t* ids, const float* table, int N, int C) {
  for (int n = 0; n < N; n++) std::memcpy(out + size_t(n) * C, table + size_t(ids[n]) * C, sizeof(float) * C);
}

void add_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

double cross_entropy_sum(const float* logits, const int32_t* targets, int N, int V, int64_t* count, double* row_nll) {
  double total = 0;
  int64_t cnt = 0;
  // Fixed-order reduction: per-row results land in their slot, then a serial sum (deterministic).
  std::vector<double> row(N, 0.0);
#pragma omp parallel for schedule(static) if (N > 4)
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    const float* x = logits + size_t(n) * V;
    const float mx = max_of(x, V);
    const double sum = exp_sum<false>(x, nullptr, V, mx);
    row[n] = std::log(sum) + mx - x[targets[n]];
  }
  if (row_nll) std::copy(row.begin(), row.end(), row_nll);
  for (int n = 0; n < N; n++)
    if (targets[n] >= 0) {
      total += row[n];
      cnt++;
    }
  *count = cnt;
  return total;
}

}  // namespace lathe
