// A trainable parameter (core, so adapters in peft/ and the trainer in train/ share it): its PEFT/HF name, f32 value and gradient of the same shape, and whether
// weight decay applies (HF Trainer: not to biases and norm weights). The optimizer, clipping,
// checkpoints and adapter export all walk one ParamList.
#pragma once
#include <string>
#include <vector>

#include "lathe/core/tensor.h"

namespace lathe {

struct Param {
  std::string name;
  Tensor value;  // f32, contiguous
  Tensor grad;   // f32, same shape
  bool weight_decay = true;
};
using ParamList = std::vector<Param*>;

}  // namespace lathe
