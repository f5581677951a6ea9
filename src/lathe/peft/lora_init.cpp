// LoRA initialisations that take the adapter from the base weight and leave the residual in the base,
// as PEFT's init_lora_weights = "pissa" / "olora" do (peft/tuners/lora/layer.py pissa_init, olora_init):
//
//   PiSSA (arXiv 2404.02948): W = U S Vh (thin SVD); A = sqrt(S_r / s) Vh_r, B = U_r sqrt(S_r / s),
//          so s·B A = U_r S_r Vh_r, the top-r part of W;
//   OLoRA (arXiv 2406.01775): W = Q R (thin QR); A = R[:r], B = Q[:, :r];
//
// and in both W_res = W − s·B A replaces the base, so base + adapter is W at step 0. The SVD and QR are
// LAPACK's (sgesdd, sgeqrf + sorgqr from the OpenBLAS lathe links), the routines PyTorch's CPU
// torch.linalg.svd / qr call. A trained adapter is saved converted, as PEFT's
// path_initial_model_for_weight_conversion does (LoraAdapter::save_peft): the base stays untouched.
#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"
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

// PiSSA's factors of W [out, in] (row-major), rank r: A [r, in], B [out, r].
void pissa_factors(const float* W, int out, int in, int r, float s, float* A, float* B, const std::string& name) {
  // Row-major W [out, in] is column-major W^T [in, out]; its SVD W^T = U' S V'^T gives W = V' S U'^T:
  // W's left vectors V' come back in VT' (column-major [k, out] = row-major [out, k]) and its right
  // vectors U'^T in U' (column-major [in, k] = row-major [k, in]). No transposes needed.
  const int m = in, n = out, k = std::min(in, out);
  std::vector<float> a(W, W + size_t(out) * in), S(k), U(size_t(in) * k), VT(size_t(k) * out);
  std::vector<int> iwork(8 * size_t(k));
  int lwork = -1, info = 0;
  float wq = 0;
  const char jobz = 'S';
  sgesdd_(&jobz, &m, &n, a.data(), &m, S.data(), U.data(), &m, VT.data(), &k, &wq, &lwork, iwork.data(), &info);
  lwork = int(wq) + 1;
  std::vector<float> work(lwork);
  sgesdd_(&jobz, &m, &n, a.data(), &m, S.data(), U.data(), &m, VT.data(), &k, work.data(), &lwork, iwork.data(), &info);
  if (info != 0) fail("lora", "pissa: the SVD of {} did not converge (LAPACK sgesdd info {})", name, info);
  for (int j = 0; j < r; j++) {
    const float g = std::sqrt(S[j] / s);
    for (int i = 0; i < in; i++) A[size_t(j) * in + i] = g * U[size_t(j) * in + i];
    for (int o = 0; o < out; o++) B[size_t(o) * r + j] = VT[size_t(o) * k + j] * g;
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

}  // namespace

void LoraAdapter::init_from_base(Model& m, const std::string& method) {
  if (method != "pissa" && method != "olora")
    fail("lora", "init_lora_weights '{}' is not supported (pissa, olora)", method);
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
      if (method == "pissa") pissa_factors(W.f32(), out, in, r, lin->scaling, A, B, name);
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
