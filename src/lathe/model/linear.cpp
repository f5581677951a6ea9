#include "lathe/model/linear.h"

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"

namespace lathe {

const char* linear_id_name(LinearId id) {
  static const char* kNames[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return kNames[int(id)];
}

void linear_forward(const LinearRef& l, const float* x, float* y, int T, const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  const float* bias = l.b ? l.b->f32() : nullptr;
  LATHE_CHECK(l.w->dtype == DType::F32, "linear_forward: weight dtype {} not supported", dtype_name(l.w->dtype));
  matmul_forward(y, x, l.w->f32(), bias, T, in, out);
  if (l.adapter) l.adapter->forward(x, y, T, ctx);
}

void linear_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T,
                     const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  LATHE_CHECK(l.w->dtype == DType::F32, "linear_backward: weight dtype {} not supported", dtype_name(l.w->dtype));
  matmul_backward(dx, l.dw ? l.dw->f32() : nullptr, l.db ? l.db->f32() : nullptr, dy, x, l.w->f32(), T, in, out);
  if (l.adapter) l.adapter->backward(x, dy, dx, T, ctx);
}

}  // namespace lathe
