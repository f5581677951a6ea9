#include "lathe/model/linear.h"

#include "lathe/core/error.h"
#include "lathe/core/phase_prof.h"
#include "lathe/kernels/cpu/base_compute.h"
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
// y[rows, out] *= the adapter's output scale (IA³ on a non-feed-forward module), if it has one.
static void scale_output_rows(const LinearAdapter* a, float* y, int rows, int out) {
  const float* s = a ? a->output_scale() : nullptr;
  if (!s) return;
  for (int t = 0; t < rows; t++)
    for (int o = 0; o < out; o++) y[size_t(t) * out + o] *= s[o];
}

static void adapters_forward(const LinearRef& l, const float* x, float* y, int T, int in, int out,
                             const AdapterContext& ctx0) {
  if (!l.adapter && !l.row_adapters) return;
  prof::PhaseScope ps(prof::Phase::Lora);
  const LinearRef base = base_of(l);
  AdapterContext ctx = ctx0;
  ctx.base = &base;
  if (l.adapter) {
    l.adapter->forward(x, y, T, ctx);
    scale_output_rows(l.adapter, y, T, out);
  }
  if (!l.row_adapters) return;
  for (const AdapterRows& g : *l.row_adapters) {
    LATHE_CHECK(g.row0 >= 0 && g.row0 + g.rows <= T, "adapter rows [{}, {}) outside {} rows", g.row0, g.row0 + g.rows, T);
    g.adapter->forward(x + size_t(g.row0) * in, y + size_t(g.row0) * out, g.rows, ctx);
    scale_output_rows(g.adapter, y + size_t(g.row0) * out, g.rows, out);
  }
}

static bool scales_input(const LinearRef& l) {
  bool any = l.adapter && l.adapter->input_scale();
  if (l.row_adapters)
    for (const AdapterRows& g : *l.row_adapters) any |= g.adapter->input_scale() != nullptr;
  return any;
}

// IA³ on a feed-forward module: the base product reads x ⊙ scale on the rows whose adapter scales
// its input. A copy in `buf` (x is the caller's saved activation, read again by backward); x
// itself when no adapter scales.
static const float* scaled_input(const LinearRef& l, const float* x, int T, int in, std::vector<float>& buf) {
  if (!scales_input(l)) return x;
  buf.assign(x, x + size_t(T) * in);
  auto apply = [&](const LinearAdapter* a, int row0, int rows) {
    const float* s = a ? a->input_scale() : nullptr;
    if (!s) return;
    for (int t = row0; t < row0 + rows; t++)
      for (int i = 0; i < in; i++) buf[size_t(t) * in + i] *= s[i];
  };
  apply(l.adapter, 0, T);
  if (l.row_adapters)
    for (const AdapterRows& g : *l.row_adapters) apply(g.adapter, g.row0, g.rows);
  return buf.data();
}

static void adapters_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T, int in, int out,
                              const AdapterContext& ctx0) {
  if (!l.adapter && !l.row_adapters) return;
  prof::PhaseScope ps(prof::Phase::Lora);
  const LinearRef base = base_of(l);
  AdapterContext ctx = ctx0;
  ctx.base = &base;
  if (l.adapter) l.adapter->backward(x, dy, dx, T, ctx);
  if (!l.row_adapters) return;
  for (const AdapterRows& g : *l.row_adapters)
    g.adapter->backward(x + size_t(g.row0) * in, dy + size_t(g.row0) * out, dx ? dx + size_t(g.row0) * in : nullptr,
                        g.rows, ctx);
}

// y = x W^T + b with the base weight alone, whatever its storage.
static void base_forward(const LinearRef& l, const float* x, float* y, int T) {
  prof::PhaseScope ps(prof::Phase::BaseFwd);
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
    // A frozen f32 base (no weight gradient) may run in bf16 / int8 (--base-compute).
    if (const BaseCompute c = base_compute(); c != BaseCompute::F32 && !l.dw)
      base_compute_forward(c, l.w->f32(), out, in, x, bias, y, T);
    else
      matmul_forward(y, x, l.w->f32(), bias, T, in, out);
  }
}

void linear_forward(const LinearRef& l, const float* x, float* y, int T, const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  thread_local std::vector<float> xs_buf;
  base_forward(l, scaled_input(l, x, T, in, xs_buf), y, T);
  adapters_forward(l, x, y, T, in, out, ctx);
}

void linear_forward_many(std::initializer_list<LinearOut> ls, const float* x, int T, const AdapterContext& ctx) {
  bool grouped = T < kQPrefillRows && ls.size() > 1;
  for (const LinearOut& o : ls)
    grouped = grouped && is_qblock_dtype(o.l.w->dtype) && o.l.w->dim(1) == ls.begin()->l.w->dim(1) && !scales_input(o.l);
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
  {
    prof::PhaseScope ps(prof::Phase::BaseFwd);
    qmatmul_forward_parts(x, T, in, parts.data(), np);
  }
  for (const LinearOut& o : ls) adapters_forward(o.l, x, o.y, T, in, int(o.l.w->dim(0)), ctx);
}

// dx += dy W, dW += dy^T x, db += Σ dy for the base weight alone.
static void base_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T) {
  prof::PhaseScope ps(prof::Phase::BaseBwd);
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  if (l.w->dtype == DType::NF4) {
    LATHE_CHECK(l.dw == nullptr, "an NF4 base weight is frozen");
    const Nf4Tensor& q = nf4_of(*l.w);
    if (dx) nf4_matmul_backward_input(dx, dy, q, T, in, out, nf4_scratch(q));
    if (l.db) matmul_backward(nullptr, nullptr, l.db->f32(), dy, x, nullptr, T, in, out);
    return;
  }
  LATHE_CHECK(l.w->dtype == DType::F32, "linear_backward: weight dtype {} not supported", dtype_name(l.w->dtype));
  if (const BaseCompute c = base_compute(); c != BaseCompute::F32 && !l.dw) {
    if (dx) base_compute_backward_input(c, l.w->f32(), out, in, dy, dx, T);
    if (l.db) matmul_backward(nullptr, nullptr, l.db->f32(), dy, x, nullptr, T, in, out);
    return;
  }
  matmul_backward(dx, l.dw ? l.dw->f32() : nullptr, l.db ? l.db->f32() : nullptr, dy, x, l.w->f32(), T, in, out);
}

// IA³ backward. With xs = x ⊙ s_in and y = (xs W^T + b) ⊙ s_out:
//   d s_out[o] += Σ_t dy[t,o] y0[t,o]  (y0 = xs W^T + b, recomputed: one more product, k/v only)
//   dxs = (dy ⊙ s_out) W,  d s_in[i] += Σ_t dxs[t,i] x[t,i],  dx += dxs ⊙ s_in.
static void scaled_backward(const LinearRef& l, LinearAdapter& a, const float* x, const float* dy, float* dx, int T) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  const float *si = a.input_scale(), *so = a.output_scale();
  float* g = a.scale_grad();
  LATHE_CHECK(g, "{}: a scaling adapter without a gradient", linear_ref_name(l.layer, l.id));
  std::vector<float> xs_buf, dys, dxs;
  const float* xs = scaled_input(l, x, T, in, xs_buf);
  const float* dyb = dy;
  if (so) {
    std::vector<float> y0(size_t(T) * out);
    base_forward(l, xs, y0.data(), T);
    dys.resize(y0.size());
    for (int t = 0; t < T; t++)
      for (int o = 0; o < out; o++) {
        const size_t k = size_t(t) * out + o;
        g[o] += dy[k] * y0[k];
        dys[k] = dy[k] * so[o];
      }
    dyb = dys.data();
  }
  if (!si) return base_backward(l, xs, dyb, dx, T);
  dxs.assign(size_t(T) * in, 0.0f);
  base_backward(l, xs, dyb, dxs.data(), T);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < in; i++) {
      const size_t k = size_t(t) * in + i;
      g[i] += dxs[k] * x[k];
      if (dx) dx[k] += dxs[k] * si[i];
    }
}

void linear_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T,
                     const AdapterContext& ctx) {
  const int out = int(l.w->dim(0)), in = int(l.w->dim(1));
  if (is_qblock_dtype(l.w->dtype))
    fail("train", "weight '{}' is {}: quantized weights are for inference (generate, eval, serve); load the model "
         "with f32 weights to train", linear_ref_name(l.layer, l.id), dtype_name(l.w->dtype));
  if (l.row_adapters)
    for (const AdapterRows& g : *l.row_adapters)
      LATHE_CHECK(!g.adapter->input_scale() && !g.adapter->output_scale(),
                  "{}: backward through per-row scaling adapters", linear_ref_name(l.layer, l.id));
  if (l.adapter && (l.adapter->input_scale() || l.adapter->output_scale())) {
    prof::PhaseScope ps(prof::Phase::Lora);  // IA³'s scaling (its base products switch to base)
    scaled_backward(l, *l.adapter, x, dy, dx, T);
    l.adapter->backward(x, dy, dx, T, ctx);  // its additive part, if any
    return;
  }
  base_backward(l, x, dy, dx, T);
  adapters_backward(l, x, dy, dx, T, in, out, ctx);
}

}  // namespace lathe
