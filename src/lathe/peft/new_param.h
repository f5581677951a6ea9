// A fresh trainable parameter for the adapters that own their tensors (prefix, prompt and P-tuning):
// value and gradient zero-filled f32 of `shape`; weight decay off for biases (HF Trainer's rule).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lathe/core/param.h"

namespace lathe {

inline std::unique_ptr<Param> new_param(const std::string& name, std::vector<int64_t> shape, bool decay = true) {
  auto p = std::make_unique<Param>();
  p->name = name;
  p->value = Tensor::zeros(DType::F32, shape);
  p->grad = Tensor::zeros(DType::F32, shape);
  p->weight_decay = decay;
  return p;
}

}  // namespace lathe
