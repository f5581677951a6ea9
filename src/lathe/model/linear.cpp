#include "lathe/model/linear.h"

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/qblock.h"
#include "lathe/kernels/quant/nf4.h"

#include <array>
#include <cstring>
#include <vector>

namespace lathe {

const char* linear_id_name(LinearId id) {
  static const char* kNames[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",      "gate_proj",
                                 "up_proj",   "down_proj", "qkv_proj", "gate_up_proj"};
  return kNames[int(id)];
}

std::string linear_ref_name(int layer, LinearId id) {
  return layer < 0 ? std::string("lm_head") : fmt::format("layers.{}.{}", layer, linear_id_name(id));
}

QType weight_qtype(DType t) {
  switch (t) {
    case DType::Q8_0: return QType::Q8_0;
    case DType::Q4_0: return QType::Q4_0;
    case DType::Q4_K: return QType::Q4_K;
    case DType::Q6_K: return QType::Q6_K;
    case DType::F16: return QType::F16;
    case DType::BF16: return QType::BF16;
    default: fail("model", "dtype {} is not a kernel weight format", dtype_name(t));
  }
}

// QLoRA: an NF4 weight is a Tensor of dtype NF4 whose data points at its Nf4Tensor; products
// dequantize it tile by tile into this thread's scratch (the base is frozen: no weight gradient).
static const Nf4Tensor& nf4_of(const Tensor& w) { return *static_cast<const Nf4Tensor*>(w.data); }
static float* nf4_scratch(const Nf4Tensor& w) {
  thread_local std::vector<float> buf;
  buf.resize(nf4_matmul_scratch_floats(w));
  return buf.data();
}

void linear_weight_rows_f32(const Tensor& w, int64_t row0, int64_t n, float* out) {
  const int64_t in = w.dim(1);
  LATHE_CHECK(row0 >= 0 && row0 + n <= w.dim(0), "rows [{}, {}) outside a weight of {} rows", row0, row0 + n, w.dim(0));
  if (w.dtype == DType::NF4) {
    nf4_dequantize_rows(nf4_of(w), row0, n, out);
  } else if (is_qblock_dtype(w.dtype)) {
    const QType qt = weight_qtype(w.dtype);
    const size_t row = qblock_row_bytes(qt, in);
    const auto* base = static_cast<const uint8_t*>(w.data);
    for (int64_t r = 0; r < n; r++) dequantize_row(qt, base + size_t(row0 + r) * row, out + size_t(r) * in, in);
  } else {
    LATHE_CHECK(w.dtype == DType::F32, "linear weight dtype {} not supported", dtype_name(w.dtype));
    std::memcpy(out, w.f32() + size_t(row0) * in, sizeof(float) * size_t(n) * in);
  }
}

// The projection without its adapters: what an adapter's context points at.
static LinearRef base_of(const LinearRef& l) {
  LinearRef b;
  b.w = l.w, b.layer = l.layer, b.id = l.id, b.b = l.b;
  return b;
}

// The adapter deltas of `l` on x[T, in] -> y[T, out]: one call for all rows, or one per row group.
static void adapters_forward(const LinearRef& l, const float* x, float* y, int T, int in, int out,
                             const AdapterContext& ctx0) {
  if (!l.adapter && !l.row_adapters) return;
  const LinearRef base = base_of(l);
  AdapterContext ctx = ctx0;
  ctx.base = &base;
  if (l.adapter) l.adapter->forward(x, y, T, ctx);
  if (!l.row_adapters) return;
  for (const AdapterRows& g : *l.row_adapters) {
    LATHE_CHECK(g.row0 >= 0 && g.row0 + g.rows <= T, "adapter rows [{}, {}) outside {} rows", g.row0, g.row0 + g.rows, T);
    g.adapter->forward(x + size_t(g.row0) * in, y + size_t(g.row0) * out, g.rows, ctx);
  }
}

static void adapters_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T, int in, int out,
                              const AdapterContext& ctx0) {
  if (!l.adapter && !l.row_adapters) return;
  const LinearRef base = base_of(l);
  AdapterContext ctx = ctx0;
  ctx.base = &base;
  if (l.adapter) l.adapter->backward(x, dy, dx, T, ctx);
  if (!l.row_adapters) return;
  for (const AdapterRows& g : *l.row_adapters)
    g.adapter->backward(x + size_t(g.row0) * in, dy + size_t(g.row0) * out, dx ? dx + size_t(g.row0) * in : nullptr,
                        g.rows, ctx);
}

void linear_forward(const LinearRef& l, const float* x, float* y, int T, const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  const float* bias = l.b ? l.b->f32() : nullptr;
  if (l.w->dtype == DType::NF4) {
    const Nf4Tensor& q = nf4_of(*l.w);
    nf4_matmul_forward(y, x, q, bias, T, in, out, nf4_scratch(q));
  } else if (is_qblock_dtype(l.w->dtype)) {
    // Rows of blocks (or F16/BF16 halves), in place (a GGUF mapping or a quantized copy); the kernel
    // keeps its activation blocks in a per-thread buffer, so decode allocates nothing per token.
    qmatmul_forward(y, x, static_cast<const uint8_t*>(l.w->data), weight_qtype(l.w->dtype), bias, T, in, out);
  } else {
    LATHE_CHECK(l.w->dtype == DType::F32, "linear_forward: weight dtype {} not supported", dtype_name(l.w->dtype));
    matmul_forward(y, x, l.w->f32(), bias, T, in, out);
  }
  adapters_forward(l, x, y, T, in, out, ctx);
}

void linear_forward_many(std::initializer_list<LinearOut> ls, const float* x, int T, const AdapterContext& ctx) {
  bool grouped = T < kQPrefillRows && ls.size() > 1;
  for (const LinearOut& o : ls)
    grouped = grouped && is_qblock_dtype(o.l.w->dtype) && o.l.w->dim(1) == ls.begin()->l.w->dim(1);
  if (!grouped) {
    for (const LinearOut& o : ls) linear_forward(o.l, x, o.y, T, ctx);
    return;
  }
  std::array<QMatmulPart, 4> parts{};
  LATHE_CHECK(ls.size() <= parts.size(), "linear_forward_many: {} projections, at most {}", ls.size(), parts.size());
  int np = 0;
  for (const LinearOut& o : ls)
    parts[np++] = {static_cast<const uint8_t*>(o.l.w->data), weight_qtype(o.l.w->dtype), o.l.b ? o.l.b->f32() : nullptr,
                   o.y, o.l.w->dim(0)};
  const int in = int(ls.begin()->l.w->dim(1));
  qmatmul_forward_parts(x, T, in, parts.data(), np);
  for (const LinearOut& o : ls) adapters_forward(o.l, x, o.y, T, in, int(o.l.w->dim(0)), ctx);
}

void linear_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T,
                     const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  if (is_qblock_dtype(l.w->dtype))
    fail("train", "weight '{}' is {}: quantized weights are for inference (generate, eval, serve); load the model "
         "with f32 weights to train", linear_ref_name(l.layer, l.id), dtype_name(l.w->dtype));
  if (l.w->dtype == DType::NF4) {
    LATHE_CHECK(l.dw == nullptr, "an NF4 base weight is frozen");
    const Nf4Tensor& q = nf4_of(*l.w);
    if (dx) nf4_matmul_backward_input(dx, dy, q, T, in, out, nf4_scratch(q));
    if (l.db) matmul_backward(nullptr, nullptr, l.db->f32(), dy, x, nullptr, T, in, out);
    adapters_backward(l, x, dy, dx, T, in, out, ctx);
    return;
  }
  LATHE_CHECK(l.w->dtype == DType::F32, "linear_backward: weight dtype {} not supported", dtype_name(l.w->dtype));
  matmul_backward(dx, l.dw ? l.dw->f32() : nullptr, l.db ? l.db->f32() : nullptr, dy, x, l.w->f32(), T, in, out);
  adapters_backward(l, x, dy, dx, T, in, out, ctx);
}

}  // namespace lathe
