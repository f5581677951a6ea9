// Gradient norm, clipping and finiteness over a ParamList, as torch.nn.utils.clip_grad_norm_ does
// with the L2 norm. The sum of squares runs in f64 over fixed-size chunks added in a fixed order, so
// the norm is bitwise the same for any thread count.
#pragma once
#include <string>

#include "lathe/train/params.h"

namespace lathe {

// sqrt(sum over all params and elements of grad^2).
double global_grad_norm(const ParamList& params);

// Returns the norm before clipping. When max_norm > 0 and max_norm / (norm + 1e-6) < 1, every grad
// is scaled by that factor (rounded to f32, as torch does). max_norm <= 0 disables clipping.
// A non-finite norm is returned as is and the grads are left alone (the caller skips the step).
double clip_grad_norm(const ParamList& params, float max_norm);

// True when every grad element is finite; otherwise false and, if given, *first_bad_name is the
// first param (in list order) holding a NaN or Inf.
bool grads_finite(const ParamList& params, std::string* first_bad_name = nullptr);

}  // namespace lathe
