#include "lathe/train/adamw.h"

#include <cmath>
#include <cstring>
#include <set>

#include "lathe/core/error.h"

namespace lathe {

AdamW::AdamW(ParamList params, AdamWConfig cfg) : params_(std::move(params)), cfg_(cfg) {
  std::set<std::string> names;
  for (Param* p : params_) {
    LATHE_CHECK(p != nullptr);
    LATHE_CHECK(p->value.dtype == DType::F32 && p->value.is_contiguous(), "param {}", p->name);
    LATHE_CHECK(p->grad.dtype == DType::F32 && p->grad.is_contiguous() && p->grad.shape == p->value.shape,
                "param {}: grad {} vs value {}", p->name, p->grad.shape_str(), p->value.shape_str());
    if (!names.insert(p->name).second) fail("adamw", "duplicate parameter name '{}'", p->name);
    exp_avg_.push_back(Tensor::zeros(DType::F32, p->value.shape));
    exp_avg_sq_.push_back(Tensor::zeros(DType::F32, p->value.shape));
  }
  lr_scale_.assign(params_.size(), 1.0);
}

void AdamW::set_lr_scales(std::vector<double> scales) {
  LATHE_CHECK(scales.size() == params_.size(), "{} lr scales for {} params", scales.size(), params_.size());
  lr_scale_ = std::move(scales);
}

// Per element, in PyTorch's order and rounding (f64 scalars are rounded to f32 where the tensor op
// receives them, as ATen does for f32 tensors):
//   p   *= 1 - lr*wd                       (decoupled decay; skipped where it would be *1)
//   m    = fma(1-b1, g, m*b1)              (m.mul_(b1).add_(g, alpha=1-b1))
//   v    = fma((1-b2)*g, g, v*b2)          (v.mul_(b2).addcmul_(g, g, value=1-b2))
//   p   += (-step_size * m) / (sqrt(v)/sqrt(bc2) + eps),  step_size = lr/bc1, bc_i = 1 - b_i^t
// ATen's CPU kernels compute the two moment updates with fused multiply-adds (measured: torch 1.13
// on x86-64 matches these fma forms bit for bit, the unfused forms differ by an ulp); std::fma is
// correctly rounded everywhere, so this stays deterministic across machines. torch 2.x writes the
// first moment as m.lerp_(g, 1-b1), equal to ~1 ulp. Everything else is unfused: we build with
// -std=c++20 (fp-contract=off), so the compiler does not add FMAs of its own.
void AdamW::step(double lr) {
  step_++;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(step_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, double(step_));
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float b1 = float(cfg_.beta1), one_minus_b1 = float(1.0 - cfg_.beta1);
  const float b2 = float(cfg_.beta2), one_minus_b2 = float(1.0 - cfg_.beta2);
  const float eps = float(cfg_.eps);

  for (size_t k = 0; k < params_.size(); k++) {
    Param& prm = *params_[k];
    const double plr = lr * lr_scale_[k];  // the param group's lr (LoRA+)
    const bool decay = prm.weight_decay && cfg_.weight_decay != 0.0;
    const float decay_mul = float(1.0 - plr * cfg_.weight_decay);
    const float step_size_neg = float(-(plr / bc1));
    float* p = prm.value.f32();
    const float* g = prm.grad.f32();
    float* m = exp_avg_[k].f32();
    float* v = exp_avg_sq_[k].f32();
    const int64_t n = prm.value.numel();
    // Elementwise, so any split over threads gives the same bits.
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
      float pi = p[i];
      if (decay) pi = pi * decay_mul;
      const float gi = g[i];
      const float mi = std::fma(one_minus_b1, gi, m[i] * b1);
      const float vi = std::fma(one_minus_b2 * gi, gi, v[i] * b2);
      const float denom = std::sqrt(vi) / bc2_sqrt + eps;
      p[i] = pi + step_size_neg * mi / denom;
      m[i] = mi;
      v[i] = vi;
    }
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::export_state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t k = 0; k < params_.size(); k++) {
    out.emplace_back("exp_avg." + params_[k]->name, exp_avg_[k]);
    out.emplace_back("exp_avg_sq." + params_[k]->name, exp_avg_sq_[k]);
  }
  return out;
}

void AdamW::import_state(const std::map<std::string, Tensor>& tensors, int64_t step) {
  if (step < 0) fail("adamw", "negative optimizer step {}", step);
  std::set<std::string> expected;
  for (size_t k = 0; k < params_.size(); k++) {
    for (int which = 0; which < 2; which++) {
      std::string name = (which == 0 ? "exp_avg." : "exp_avg_sq.") + params_[k]->name;
      expected.insert(name);
      auto it = tensors.find(name);
      if (it == tensors.end()) fail("adamw", "optimizer state has no tensor '{}'", name);
      const Tensor& t = it->second;
      if (t.dtype != DType::F32 || t.shape != params_[k]->value.shape || !t.is_contiguous())
        fail("adamw", "optimizer state '{}' is {} {}, expected F32 {}", name, dtype_name(t.dtype), t.shape_str(),
             params_[k]->value.shape_str());
      Tensor& dst = which == 0 ? exp_avg_[k] : exp_avg_sq_[k];
      std::memcpy(dst.data, t.data, dst.nbytes());
    }
  }
  for (const auto& [name, t] : tensors)
    if (!expected.count(name))
      fail("adamw", "optimizer state has tensor '{}' that matches no trainable parameter", name);
  step_ = step;
}

}  // namespace lathe
