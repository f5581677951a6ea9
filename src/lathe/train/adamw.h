// AdamW with PyTorch's exact semantics (torch.optim.AdamW, single-tensor path): decoupled weight
// decay, then the moment updates, then the bias-corrected step. Every Param shares one step count
// (they always step together), and the state exports as named tensors for checkpoints:
// "exp_avg.<param name>" and "exp_avg_sq.<param name>", f32, the param's shape.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lathe/core/tensor.h"
#include "lathe/train/params.h"

namespace lathe {

// Doubles because PyTorch keeps these hyper-parameters as Python floats (f64): the bias corrections
// 1 - beta^t are computed in f64, and only the per-element multipliers are rounded to f32.
struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  // `params` must outlive the optimizer; each value/grad must be contiguous f32 of equal shape.
  // Weight decay applies to a param only where Param::weight_decay is true.
  AdamW(ParamList params, AdamWConfig cfg);

  // One update with learning rate `lr` (the scheduler's value for this step) using the current
  // grads; increments step_count() first, as PyTorch does (so the first step has t = 1).
  void step(double lr);
  // Per-parameter learning-rate multipliers (LoRA+: lora_B at lr·ratio), one per param in order;
  // every param starts at 1. The schedule's lr is multiplied by them, as PyTorch's per-group lr is.
  void set_lr_scales(std::vector<double> scales);
  int64_t step_count() const { return step_; }
  const AdamWConfig& config() const { return cfg_; }
  const ParamList& params() const { return params_; }

  // Named views of m and v (they alias the live state; copy them if they must survive a step).
  std::vector<std::pair<std::string, Tensor>> export_state() const;
  // Restores m and v from tensors named as export_state() names them, and the step count. Throws
  // "[adamw] ..." naming a tensor that is missing, extra, or has the wrong shape/dtype.
  void import_state(const std::map<std::string, Tensor>& tensors, int64_t step);

 private:
  ParamList params_;
  AdamWConfig cfg_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  std::vector<double> lr_scale_;
  int64_t step_ = 0;
};

}  // namespace lathe
