// DoRA (Liu et al. 2024, arXiv 2402.09353) with PEFT's semantics (peft/tuners/lora/dora.py, REFERENCE.md
// §2.1): the adapted weight is W' = m ⊙ (W + s·B A) / ||W + s·B A||, the norm over the input dimension
// of each output row, m = lora_magnitude_vector [out]. PEFT computes it as a delta on the base output:
//
//   g = m / ||W + s·B A||                      (the norm detached: no gradient flows through it)
//   y = (W x + b) + (g - 1) ⊙ W x' + g ⊙ s·B A x'
//
// with x' = dropout(x) (x when not training or without dropout, where it is g ⊙ (W x + s·B A x) + b).
// So the gradients are dm = Σ_t dy ⊙ (W x' + s·B A x') / ||·||, and A, B and x see g ⊙ dy through the
// LoRA branch and (g - 1) ⊙ dy through W.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/peft/lora.h"

namespace lathe {

namespace {
// Rows [o0, o0 + rows) of W + s·B A: W's rows dequantized, plus s·B[o0:o0+rows] A as one GEMM
// (At = A^T [in, r], the layout matmul_forward_accumulate takes for its weight).
void adapted_rows(const Tensor& W, const float* At, const float* B, float s, int r, int in, int o0, int rows,
                  float* out) {
  linear_weight_rows_f32(W, o0, rows, out);
  matmul_forward_accumulate(out, B + size_t(o0) * r, At, s, rows, r, in);
}

std::vector<float> transposed(const float* A, int r, int in) {
  std::vector<float> At(size_t(in) * r);
  for (int j = 0; j < r; j++)
    for (int i = 0; i < in; i++) At[size_t(i) * r + j] = A[size_t(j) * in + i];
  return At;
}

float row_norm(const float* w, int in) {
  double ss = 0;  // double: in can be tens of thousands
  for (int i = 0; i < in; i++) ss += double(w[i]) * w[i];
  return float(std::sqrt(ss));
}

constexpr int kRowTile = 64;  // rows dequantized at a time (bounds the scratch for large weights)
}  // namespace

const std::vector<float>& LoraLinear::dora_row_norms(const Tensor& W) {
  LATHE_CHECK(W.dim(0) == out_ && W.dim(1) == in_, "DoRA {}: base weight {} does not match [{}, {}]", magnitude.name,
              W.shape_str(), out_, in_);
  if (norm_held_ && norm_.size() == size_t(out_)) return norm_;
  const size_t na = size_t(A.value.numel()), nb = size_t(B.value.numel());
  const bool fresh = norm_W_ == W.data && norm_.size() == size_t(out_) && norm_A_.size() == na &&
                     std::memcmp(norm_A_.data(), A.value.f32(), na * sizeof(float)) == 0 &&
                     std::memcmp(norm_B_.data(), B.value.f32(), nb * sizeof(float)) == 0;
  if (fresh) return norm_;
  norm_.resize(out_);
  std::vector<float> tile(size_t(kRowTile) * in_);
  const std::vector<float> At = transposed(A.value.f32(), r_, in_);
  for (int o0 = 0; o0 < out_; o0 += kRowTile) {
    const int rows = std::min(kRowTile, out_ - o0);
    adapted_rows(W, At.data(), B.value.f32(), scaling, r_, in_, o0, rows, tile.data());
    for (int o = 0; o < rows; o++) norm_[o0 + o] = row_norm(tile.data() + size_t(o) * in_, in_);
  }
  norm_A_.assign(A.value.f32(), A.value.f32() + na);
  norm_B_.assign(B.value.f32(), B.value.f32() + nb);
  norm_W_ = W.data;
  return norm_;
}

void LoraLinear::dora_merge(float* W) const {
  Tensor w = Tensor::empty(DType::F32, {int64_t(out_), int64_t(in_)});
  std::memcpy(w.data, W, w.nbytes());
  adapted_rows(w, transposed(A.value.f32(), r_, in_).data(), B.value.f32(), scaling, r_, in_, 0, out_, W);
  for (int o = 0; o < out_; o++) {
    float* row = W + size_t(o) * in_;
    const float g = magnitude.value.f32()[o] / row_norm(row, in_);
    for (int i = 0; i < in_; i++) row[i] *= g;
  }
}

// The base product W x' [T, out], without bias or adapters.
static void base_product(const LinearRef& base, const float* x, float* out, int T) {
  LinearRef w;
  w.w = base.w, w.layer = base.layer, w.id = base.id;
  linear_forward(w, x, out, T, AdapterContext{});
}

void LoraLinear::dora_forward(const float* x, float* y, int T, const AdapterContext& ctx) {
  LATHE_CHECK(ctx.base && ctx.base->w, "DoRA {}: called without its base projection", magnitude.name);
  const std::vector<float>& norm = dora_row_norms(*ctx.base->w);
  const float* xd = dropped(x, T, ctx);
  const size_t n = size_t(T) * out_;
  // W x': without dropout y already holds W x + b (the base ran first), as PEFT reuses base_result.
  std::vector<float> bx(n);
  if (xd == x) {
    std::memcpy(bx.data(), y, n * sizeof(float));
    if (ctx.base->b)
      for (int t = 0; t < T; t++)
        for (int o = 0; o < out_; o++) bx[size_t(t) * out_ + o] -= ctx.base->b->f32()[o];
  } else {
    base_product(*ctx.base, xd, bx.data(), T);
  }
  h_.resize(size_t(T) * r_);
  matmul_forward(h_.data(), xd, A.value.f32(), nullptr, T, in_, r_);  // h = x' A^T   [T, r]
  std::vector<float> lx(n);
  matmul_forward(lx.data(), h_.data(), B.value.f32(), nullptr, T, r_, out_);  // B A x'  [T, out]
  const float* m = magnitude.value.f32();
  for (int t = 0; t < T; t++)
    for (int o = 0; o < out_; o++) {
      const size_t i = size_t(t) * out_ + o;
      const float g = m[o] / norm[o];
      y[i] += (g - 1.0f) * bx[i] + g * (scaling * lx[i]);
    }
}

void LoraLinear::dora_backward(const float* x, const float* dy, float* dx, int T, const AdapterContext& ctx) {
  LATHE_CHECK(ctx.base && ctx.base->w, "DoRA {}: called without its base projection", magnitude.name);
  const std::vector<float>& norm = dora_row_norms(*ctx.base->w);
  const float* xd = dropped(x, T, ctx);
  const size_t n = size_t(T) * out_;
  std::vector<float> bx(n), lx(n);
  base_product(*ctx.base, xd, bx.data(), T);
  h_.resize(size_t(T) * r_);
  matmul_forward(h_.data(), xd, A.value.f32(), nullptr, T, in_, r_);
  for (auto& v : h_) v *= scaling;  // h = s · x' A^T
  matmul_forward(lx.data(), h_.data(), B.value.f32(), nullptr, T, r_, out_);  // s · B A x'
  // dm = Σ_t dy (W x' + s B A x') / ||·||;  the LoRA branch sees g dy, W sees (g - 1) dy.
  const float* m = magnitude.value.f32();
  float* dm = magnitude.grad.f32();
  std::vector<float> dyg(n), dyb(n);
  for (int t = 0; t < T; t++)
    for (int o = 0; o < out_; o++) {
      const size_t i = size_t(t) * out_ + o;
      const float g = m[o] / norm[o];
      dm[o] += dy[i] * (bx[i] + lx[i]) / norm[o];
      dyg[i] = g * dy[i];
      dyb[i] = (g - 1.0f) * dy[i];
    }
  dh_.assign(size_t(T) * r_, 0.0f);
  matmul_backward(dh_.data(), B.grad.f32(), nullptr, dyg.data(), h_.data(), B.value.f32(), T, r_, out_);
  for (auto& v : dh_) v *= scaling;
  std::vector<float> dxd(dx ? size_t(T) * in_ : 0, 0.0f);
  matmul_backward(dx ? dxd.data() : nullptr, A.grad.f32(), nullptr, dh_.data(), xd, A.value.f32(), T, in_, r_);
  if (!dx) return;
  LinearRef w;
  w.w = ctx.base->w, w.layer = ctx.base->layer, w.id = ctx.base->id;
  linear_backward(w, xd, dyb.data(), dxd.data(), T, AdapterContext{});  // dx' += W^T (g - 1) dy
  if (xd == x) {
    for (size_t i = 0; i < dxd.size(); i++) dx[i] += dxd[i];
  } else {
    const float inv = 1.0f / (1.0f - dropout_);
    for (size_t i = 0; i < dxd.size(); i++)
      if (xd[i] != 0.0f) dx[i] += dxd[i] * inv;
  }
}

void LoraAdapter::init_dora_magnitude(const Model& m) {
  for (int l = 0; l < int(set_.linears.size()); l++)
    for (int k = 0; k < int(LinearId::kCount); k++) {
      auto* lin = static_cast<LoraLinear*>(set_.linears[l][k]);
      if (!lin || !lin->dora()) continue;
      const std::vector<float>& norm = lin->dora_row_norms(linear_weight(m.weights.layers[l], LinearId(k)));
      std::memcpy(lin->magnitude.value.f32(), norm.data(), norm.size() * sizeof(float));
    }
}

}  // namespace lathe
