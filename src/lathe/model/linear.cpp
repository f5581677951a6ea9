#include "lathe/model/linear.h"

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/quant/nf4.h"

#include <vector>

namespace lathe {

const char* linear_id_name(LinearId id) {
  static const char* kNames[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return kNames[int(id)];
}

// QLoRA: an NF4 weight is a Tensor of dtype NF4 whose data points at its Nf4Tensor; products
// dequantize it tile by tile into this thread's scratch (the base is frozen: no weight gradient).
static const Nf4Tensor& nf4_of(const Tensor& w) { return *static_cast<const Nf4Tensor*>(w.data); }
static float* nf4_scratch(const Nf4Tensor& w) {
  thread_local std::vector<float> buf;
  buf.resize(nf4_matmul_scratch_floats(w));
  return buf.data();
}

void linear_forward(const LinearRef& l, const float* x, float* y, int T, const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  const float* bias = l.b ? l.b->f32() : nullptr;
  if (l.w->dtype == DType::NF4) {
    const Nf4Tensor& q = nf4_of(*l.w);
    nf4_matmul_forward(y, x, q, bias, T, in, out, nf4_scratch(q));
  } else {
    LATHE_CHECK(l.w->dtype == DType::F32, "linear_forward: weight dtype {} not supported", dtype_name(l.w->dtype));
    matmul_forward(y, x, l.w->f32(), bias, T, in, out);
  }
  if (l.adapter) l.adapter->forward(x, y, T, ctx);
}

void linear_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T,
                     const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  if (l.w->dtype == DType::NF4) {
    LATHE_CHECK(l.dw == nullptr, "an NF4 base weight is frozen");
    const Nf4Tensor& q = nf4_of(*l.w);
    if (dx) nf4_matmul_backward_input(dx, dy, q, T, in, out, nf4_scratch(q));
    if (l.db) matmul_backward(nullptr, nullptr, l.db->f32(), dy, x, nullptr, T, in, out);
    if (l.adapter) l.adapter->backward(x, dy, dx, T, ctx);
    return;
  }
  LATHE_CHECK(l.w->dtype == DType::F32, "linear_backward: weight dtype {} not supported", dtype_name(l.w->dtype));
  matmul_backward(dx, l.dw ? l.dw->f32() : nullptr, l.db ? l.db->f32() : nullptr, dy, x, l.w->f32(), T, in, out);
  if (l.adapter) l.adapter->backward(x, dy, dx, T, ctx);
}

}  // namespace lathe
