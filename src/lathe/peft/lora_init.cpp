// LoRA initialisations that take the adapter from the base weight and leave the residual in the base,
// as PEFT's init_lora_weights = "pissa" / "olora" do (peft/tuners/lora/layer.py pissa_init, olora_init):
//
//   PiSSA (arXiv 2404.02948): W = U S Vh (thin SVD); A = sqrt(S_r / s) Vh_r, B = U_r sqrt(S_r / s),
//          so s·B A = U_r S_r Vh_r, the top-r part of W (pissa_niter_N: a randomized SVD, see below);
//   OLoRA (arXiv 2406.01775): W = Q R (thin QR); A = R[:r], B = Q[:, :r];
//
//   LoftQ (arXiv 2310.08659, PEFT's loftq_init with loftq_bits 4): see init_loftq below;
//
// and in PiSSA / OLoRA W_res = W − s·B A replaces the base, so base + adapter is W at step 0. The SVD and QR are
// LAPACK's (sgesdd, sgeqrf + sorgqr from the OpenBLAS lathe links), the routines PyTorch's CPU
// torch.linalg.svd / qr call. A trained adapter is saved converted, as PEFT's
// path_initial_model_for_weight_conversion does (LoraAdapter::save_peft): the base stays untouched.
#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/core/rng.h"
#include "lathe/kernels/quant/nf4.h"
#include "lathe/peft/lora.h"

extern "C" {
// LAPACK (Fortran ABI, column-major).
void sgesdd_(const char* jobz, const int* m, const int* n, float* a, const int* lda, float* s, float* u, const int* ldu,
             float* vt, const int* ldvt, float* work, const int* lwork, int* iwork, int* info);
void sgeqrf_(const int* m, const int* n, float* a, const int* lda, float* tau, float* work, const int* lwork, int* info);
void sorgqr_(const int* m, const int* n, const int* k, float* a, const int* lda, const float* tau, float* work,
             const int* lwork, int* info);
}

namespace lathe {

namespace {

// Thin SVD of M [rows, cols] (row-major): U [rows, k], S [k], Vh [k, cols], k = min(rows, cols).
void svd_thin(const float* M, int rows, int cols, std::vector<float>& U, std::vector<float>& S, std::vector<float>& Vh,
              const std::string& name) {
  // Row-major M [rows, cols] is column-major M^T [cols, rows]; its SVD M^T = U' S V'^T gives M = V' S U'^T:
  // M's left vectors V' come back in VT' (column-major [k, rows] = row-major [rows, k]) and its right
  // vectors U'^T in U' (column-major [cols, k] = row-major [k, cols]). No transposes needed.
  const int m = cols, n = rows, k = std::min(rows, cols);
  std::vector<float> a(M, M + size_t(rows) * cols);
  S.resize(k), Vh.resize(size_t(cols) * k), U.resize(size_t(k) * rows);
  std::vector<int> iwork(8 * size_t(k));
  int lwork = -1, info = 0;
  float wq = 0;
  const char jobz = 'S';
  sgesdd_(&jobz, &m, &n, a.data(), &m, S.data(), Vh.data(), &m, U.data(), &k, &wq, &lwork, iwork.data(), &info);
  lwork = int(wq) + 1;
  std::vector<float> work(lwork);
  sgesdd_(&jobz, &m, &n, a.data(), &m, S.data(), Vh.data(), &m, U.data(), &k, work.data(), &lwork, iwork.data(), &info);
  if (info != 0) fail("lora", "the SVD of {} did not converge (LAPACK sgesdd info {})", name, info);
}

// Q [rows, cols] with orthonormal columns spanning those of X [rows, cols] (row-major; rows >= cols).
std::vector<float> orthonormal_columns(const std::vector<float>& X, int rows, int cols, const std::string& name) {
  std::vector<float> a(size_t(rows) * cols), tau(cols);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) a[size_t(j) * rows + i] = X[size_t(i) * cols + j];
  int lwork = -1, info = 0;
  float wq = 0;
  sgeqrf_(&rows, &cols, a.data(), &rows, tau.data(), &wq, &lwork, &info);
  lwork = std::max(int(wq), cols) + 1;
  std::vector<float> work(lwork);
  sgeqrf_(&rows, &cols, a.data(), &rows, tau.data(), work.data(), &lwork, &info);
  if (info == 0) sorgqr_(&rows, &cols, &cols, a.data(), &rows, tau.data(), work.data(), &lwork, &info);
  if (info != 0) fail("lora", "pissa_niter: the QR of {} failed (LAPACK info {})", name, info);
  std::vector<float> Q(size_t(rows) * cols);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) Q[size_t(i) * cols + j] = a[size_t(j) * rows + i];
  return Q;
}

// C [m, n] = op(A) op(B) for small products (row-major; ta: A is stored [k, m]; tb: B is stored [n, k]).
std::vector<float> matmul(const float* A, const float* B, int m, int k, int n, bool ta, bool tb) {
  std::vector<float> C(size_t(m) * n, 0.0f);
  for (int i = 0; i < m; i++)
    for (int p = 0; p < k; p++) {
      const float a = ta ? A[size_t(p) * m + i] : A[size_t(i) * k + p];
      if (a == 0.0f) continue;
      for (int j = 0; j < n; j++) C[size_t(i) * n + j] += a * (tb ? B[size_t(j) * k + p] : B[size_t(p) * n + j]);
    }
  return C;
}

// PiSSA's factors of W [out, in]: A = sqrt(S_r / s) Vh_r [r, in], B = U_r sqrt(S_r / s) [out, r], from the
// exact thin SVD (niter < 0) or from torch.svd_lowrank's randomized one with q = r and `niter` subspace
// iterations (Halko et al.: Q = orth(W G), then Q = orth(W orth(W^T Q)) niter times; W ≈ Q (Q^T W) and
// the SVD of the small Q^T W [r, in]), as PEFT's pissa_niter_N does; G ~ N(0, 1) from `rng`.
void pissa_factors(const float* W, int out, int in, int r, float s, int niter, Rng& rng, float* A, float* B,
                   const std::string& name) {
  std::vector<float> U, S, Vh;
  int k = std::min(out, in);
  if (niter < 0) {
    svd_thin(W, out, in, U, S, Vh, name);
  } else {
    std::vector<float> G(size_t(in) * r);
    for (float& g : G) g = rng.normal();
    std::vector<float> Q = orthonormal_columns(matmul(W, G.data(), out, in, r, false, false), out, r, name);
    for (int it = 0; it < niter; it++) {
      std::vector<float> P = orthonormal_columns(matmul(W, Q.data(), in, out, r, true, false), in, r, name);
      Q = orthonormal_columns(matmul(W, P.data(), out, in, r, false, false), out, r, name);
    }
    std::vector<float> Bm = matmul(Q.data(), W, r, out, in, true, false);  // Q^T W [r, in]
    std::vector<float> Ub;
    svd_thin(Bm.data(), r, in, Ub, S, Vh, name);
    k = r;
    U = matmul(Q.data(), Ub.data(), out, r, r, false, false);  // [out, r]
  }
  for (int j = 0; j < r; j++) {
    const float g = std::sqrt(S[j] / s);
    for (int i = 0; i < in; i++) A[size_t(j) * in + i] = g * Vh[size_t(j) * in + i];
    for (int o = 0; o < out; o++) B[size_t(o) * r + j] = U[size_t(o) * k + j] * g;
  }
}

// OLoRA's factors: thin QR of W [out, in]; A = R[:r] [r, in], B = Q[:, :r] [out, r].
void olora_factors(const float* W, int out, int in, int r, float* A, float* B, const std::string& name) {
  const int m = out, n = in, k = std::min(out, in);
  std::vector<float> a(size_t(out) * in), tau(k);
  for (int o = 0; o < out; o++)
    for (int i = 0; i < in; i++) a[size_t(i) * out + o] = W[size_t(o) * in + i];  // column-major W
  int lwork = -1, info = 0;
  float wq = 0;
  sgeqrf_(&m, &n, a.data(), &m, tau.data(), &wq, &lwork, &info);
  lwork = std::max(int(wq), n) + 1;
  std::vector<float> work(lwork);
  sgeqrf_(&m, &n, a.data(), &m, tau.data(), work.data(), &lwork, &info);
  if (info != 0) fail("lora", "olora: the QR of {} failed (LAPACK sgeqrf info {})", name, info);
  for (int j = 0; j < r; j++)
    for (int i = 0; i < in; i++) A[size_t(j) * in + i] = i >= j ? a[size_t(i) * out + j] : 0.0f;
  sorgqr_(&m, &k, &k, a.data(), &m, tau.data(), work.data(), &lwork, &info);  // Q [out, k] over the reflectors
  if (info != 0) fail("lora", "olora: forming Q of {} failed (LAPACK sorgqr info {})", name, info);
  for (int o = 0; o < out; o++)
    for (int j = 0; j < r; j++) B[size_t(o) * r + j] = a[size_t(j) * out + o];
}

// LoftQ of W [out, in] with `iters` alternations, as PEFT's loftq_init (peft/utils/loftq_utils.py):
//   res = W; repeat: Q = dequant(NF4(res)); (U, S, Vh) = SVD(W − Q); L = U_r √S_r; R = √S_r Vh_r;
//   res = W − L R.
// Returns NF4(res) of the last alternation (its dequantized values are Q, the base); A = R [r, in] and
// B = L [out, r] when `A` is not null. The NF4 is plain (one f32 absmax per 64 values, no double
// quantization), as PEFT quantizes with bitsandbytes' compress_statistics=False. PEFT does not divide
// L and R by the LoRA scaling: the adapter adds s·L R, which approximates W − Q only when s = 1.
// Without A (rebuilding the base of a saved adapter) the last SVD is skipped: Q does not depend on it.
Nf4Tensor loftq_factors(const float* W, int out, int in, int r, int iters, float* A, float* B, const std::string& name) {
  const size_t n = size_t(out) * in;
  std::vector<float> res(W, W + n), Q(n), U, S, Vh;
  Nf4Tensor q;
  for (int t = 0; t < iters; t++) {
    q = nf4_quantize(res.data(), out, in, 64, /*double_quant=*/false);
    if (t == iters - 1 && !A) break;
    nf4_dequantize(q, Q.data());
    for (size_t i = 0; i < n; i++) res[i] = W[i] - Q[i];
    svd_thin(res.data(), out, in, U, S, Vh, name);
    const int k = std::min(out, in);
    std::vector<float> L(size_t(out) * r), R(size_t(r) * in);
    for (int j = 0; j < r; j++) {
      const float g = std::sqrt(S[j]);
      for (int o = 0; o < out; o++) L[size_t(o) * r + j] = U[size_t(o) * k + j] * g;
      for (int i = 0; i < in; i++) R[size_t(j) * in + i] = g * Vh[size_t(j) * in + i];
    }
    if (t == iters - 1) {
      std::memcpy(A, R.data(), R.size() * sizeof(float));
      std::memcpy(B, L.data(), L.size() * sizeof(float));
      break;
    }
    std::vector<float> LR = matmul(L.data(), R.data(), out, r, in, false, false);
    for (size_t i = 0; i < n; i++) res[i] = W[i] - LR[i];
  }
  return q;
}

}  // namespace

int pissa_niter(const std::string& method) {
  const std::string p = "pissa_niter_";
  if (method.rfind(p, 0) != 0 || method.size() == p.size() || method.size() > p.size() + 4) return -1;
  for (size_t i = p.size(); i < method.size(); i++)
    if (method[i] < '0' || method[i] > '9') return -1;
  return std::stoi(method.substr(p.size()));
}

void LoraAdapter::init_from_base(Model& m, const std::string& method, uint64_t seed) {
  const int niter = pissa_niter(method);
  if (method != "pissa" && method != "olora" && niter < 0)
    fail("lora", "init_lora_weights '{}' is not supported (pissa, pissa_niter_N, olora)", method);
  Rng rng(seed);
  if (cfg_.use_dora) fail("lora", "init_lora_weights '{}' with use_dora is not supported", method);
  init_method_ = method;
  for (int l = 0; l < int(set_.linears.size()); l++)
    for (int k = 0; k < int(LinearId::kCount); k++) {
      auto* lin = static_cast<LoraLinear*>(set_.linears[l][k]);
      if (!lin) continue;
      Tensor& W = linear_weight(m.weights.layers[l], LinearId(k));
      const std::string name = linear_ref_name(l, LinearId(k));
      if (W.dtype != DType::F32)
        fail("lora", "init_lora_weights '{}' needs the f32 base weight of {} (it is {}); with qlora use the default "
             "init", method, name, dtype_name(W.dtype));
      const int out = int(W.dim(0)), in = int(W.dim(1)), r = cfg_.r;
      if (r > std::min(out, in))
        fail("lora", "init_lora_weights '{}': r={} exceeds the rank of {} [{}, {}]", method, r, name, out, in);
      float *A = lin->A.value.f32(), *B = lin->B.value.f32();
      if (method != "olora") pissa_factors(W.f32(), out, in, r, lin->scaling, method == "pissa" ? -1 : niter, rng, A, B, name);
      else olora_factors(W.f32(), out, in, r, A, B, name);
      // W_res = W − s·B A, in a new tensor (the loaded weight may be a read-only mapping).
      Tensor res = Tensor::empty(DType::F32, W.shape);
      std::memcpy(res.data, W.data, W.nbytes());
      float* d = res.f32();
      for (int o = 0; o < out; o++)
        for (int j = 0; j < r; j++) {
          const float b = lin->scaling * B[size_t(o) * r + j];
          for (int i = 0; i < in; i++) d[size_t(o) * in + i] -= b * A[size_t(j) * in + i];
        }
      W = res;
      lin->A0 = Tensor::empty(DType::F32, lin->A.value.shape);
      lin->B0 = Tensor::empty(DType::F32, lin->B.value.shape);
      std::memcpy(lin->A0.data, A, lin->A0.nbytes());
      std::memcpy(lin->B0.data, B, lin->B0.nbytes());
    }
}

}  // namespace lathe

namespace lathe {

void LoraAdapter::init_loftq(Model& m, int iters, bool set_factors) {
  if (iters < 1) fail("lora", "loftq_iter must be >= 1 (got {})", iters);
  if (cfg_.use_dora) fail("lora", "init_lora_weights 'loftq' with use_dora is not supported");
  loftq_iter_ = iters;
  for (int l = 0; l < int(set_.linears.size()); l++)
    for (int k = 0; k < int(LinearId::kCount); k++) {
      auto* lin = static_cast<LoraLinear*>(set_.linears[l][k]);
      if (!lin) continue;
      Tensor& W = linear_weight(m.weights.layers[l], LinearId(k));
      const std::string name = linear_ref_name(l, LinearId(k));
      if (is_qblock_dtype(W.dtype)) W = dequantize_tensor_qblock(W);  // a GGUF's blocks: LoftQ of their values
      if (W.dtype != DType::F32)
        fail("lora", "init_lora_weights 'loftq' needs the f32 base weight of {} (it is {})", name, dtype_name(W.dtype));
      const int out = int(W.dim(0)), in = int(W.dim(1)), r = cfg_.r;
      if (r > std::min(out, in))
        fail("lora", "init_lora_weights 'loftq': r={} exceeds the rank of {} [{}, {}]", r, name, out, in);
      auto q = std::make_shared<Nf4Tensor>(loftq_factors(W.f32(), out, in, r, iters, set_factors ? lin->A.value.f32() : nullptr,
                                                         set_factors ? lin->B.value.f32() : nullptr, name));
      m.weight_bytes_f32 = m.weight_bytes_f32 - W.nbytes() + nf4_bytes(*q);
      set_nf4_weight(&W, std::move(q));
    }
}

}  // namespace lathe
