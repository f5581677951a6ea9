// The one projection function. Every Linear of the model (q/k/v/o, gate/up/down, lm_head) goes
// through linear_forward / linear_backward, and this is the only place adapters attach (LoRA,
// QLoRA, later DoRA/IA3 — STYLE.md §4). Prefix tuning attaches to attention's keys/values and
// lives in AdapterSet too, so family files and blocks never know which method is active.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "lathe/core/tensor.h"
#include "lathe/kernels/cpu/qblock.h"  // QType
#include "lathe/model/weights.h"

namespace lathe {

struct LinearRef;

struct AdapterContext {
  bool training = false;
  uint64_t dropout_seed = 0;  // per (step, micro-batch); adapters derive per-module streams from it
  int layer = -1;
  // One training forward pass and its backward (TrainGraph numbers them; 0: none, as in inference).
  // Within a pass an adapter may keep a product of its forward for its backward (LoRA's x A^T):
  // the backward of a pass sees the same inputs and parameters as its forward.
  uint64_t pass = 0;
  // The projection being adapted (weight and bias; its own adapters removed), set by linear_forward /
  // linear_backward for the adapter's call: DoRA reads the base weight's row norms and W x.
  const LinearRef* base = nullptr;
};

class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // y[T, out] += Δ(x[T, in]).
  virtual void forward(const float* x, float* y, int T, const AdapterContext& ctx) = 0;
  // dx[T, in] += (∂Δ/∂x)^T dy (dx may be null), and accumulates the adapter's parameter gradients.
  virtual void backward(const float* x, const float* dy, float* dx, int T, const AdapterContext& ctx) = 0;
  // Scaling adapters (IA³) rescale instead of adding: the input by input_scale()[in] before the
  // base product, or the output (bias included, as PEFT scales the base layer's result) by
  // output_scale()[out] after it; null = none. linear_forward / linear_backward apply them and
  // accumulate their gradient into scale_grad() (same length as the scale).
  virtual const float* input_scale() const { return nullptr; }
  virtual const float* output_scale() const { return nullptr; }
  virtual float* scale_grad() { return nullptr; }
};

const char* linear_id_name(LinearId id);  // "q_proj", ..., "down_proj", "qkv_proj", "gate_up_proj" (Llama-style names)
// "layers.3.q_proj", or "lm_head" for layer -1: how errors name a LinearRef's weight.
std::string linear_ref_name(int layer, LinearId id);
// Weights held in a kernel format that qmatmul_forward multiplies in place (kernels/cpu/qblock.h):
// the block-quantized Q8_0, Q4_0, Q4_K, Q6_K and plain F16 / BF16 rows. Inference only: no backward.
inline bool is_qblock_dtype(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K || t == DType::Q6_K || t == DType::F16 ||
         t == DType::BF16;
}
// The kernel type of such a dtype (same names); an error for any other dtype.
QType weight_qtype(DType t);

// Rows [row0, row0 + n) of a projection weight [out, in] as f32 (dequantized from NF4 or a kernel
// format): what an adapter that reads the base weight (DoRA's row norms, merges) sees.
void linear_weight_rows_f32(const Tensor& w, int64_t row0, int64_t n, float* out);

// Adapters attached to a model. Empty = the plain base model.
struct AdapterSet {
  std::vector<std::array<LinearAdapter*, int(LinearId::kCount)>> linears;  // [layer][id], null = none
  // Prefix tuning: per layer key/value prefixes [P, Hkv*D] (keys are not rotated; they are
  // past key/values) and their gradients (null when not training). Real tokens take positions
  // P.. as Hugging Face assigns them after a past of length P.
  int prefix_len = 0;
  std::vector<const float*> prefix_k, prefix_v;
  std::vector<float*> prefix_dk, prefix_dv;
  // Prompt tuning / P-tuning while training (the embedding hook): P virtual token embeddings
  // [P, C] go before every sequence's token embeddings, at positions 0..P-1, and their gradient
  // accumulates into prompt_dembeds [P, C]. For inference the same adapter is baked into a
  // key/value prefix (the virtual tokens' keys and values), so generation and serving only see
  // prefix_len.
  int prompt_len = 0;
  const float* prompt_embeds = nullptr;
  float* prompt_dembeds = nullptr;

  LinearAdapter* linear(int layer, LinearId id) const {
    return layer < int(linears.size()) ? linears[layer][int(id)] : nullptr;
  }
};

// An adapter that applies to rows [row0, row0 + rows) of a projection's input only: batched
// serving runs requests for different adapters (or none) through one base matmul.
struct AdapterRows {
  int row0 = 0, rows = 0;
  LinearAdapter* adapter = nullptr;
};

// A Linear: weight [out, in] (f32; NF4 for QLoRA; Q8_0 or Q4_0 blocks for inference, see
// docs/quant.md), optional bias, optional gradients (full fine-tuning), and an adapter for all rows
// or per row group. `layer` and `id` only name the weight in errors (layer -1: the lm_head).
struct LinearRef {
  const Tensor* w = nullptr;
  int layer = -1;
  LinearId id = LinearId::kCount;
  const Tensor* b = nullptr;
  Tensor* dw = nullptr;
  Tensor* db = nullptr;
  LinearAdapter* adapter = nullptr;                       // every row
  const std::vector<AdapterRows>* row_adapters = nullptr;  // or these row groups (then adapter is null)
};

// y[T, out] = x[T, in] · W^T + b (+ adapter). A Q8_0/Q4_0 weight goes through qmatmul_forward
// (activations quantized to 8-bit blocks; error bound in kernels/cpu/qblock.h).
void linear_forward(const LinearRef& l, const float* x, float* y, int T, const AdapterContext& ctx);
// Several projections of the same input x[T, in] (q/k/v; gate/up): ys[i] = linear_forward(ls[i], x).
// When every weight is block-quantized and T is decode-sized (< kQPrefillRows), x is quantized once and
// the weights are read in one parallel region (qmatmul_forward_parts); otherwise one linear_forward
// each. Either way the results equal separate calls bit for bit.
struct LinearOut {
  LinearRef l;
  float* y;
};
void linear_forward_many(std::initializer_list<LinearOut> ls, const float* x, int T, const AdapterContext& ctx);
// dx[T, in] += dy · W (+ adapter); dW += dy^T x and db += Σ dy when present. A Q8_0/Q4_0 weight
// is an error naming it: quantized weights are for inference only.
void linear_backward(const LinearRef& l, const float* x, const float* dy, float* dx, int T,
                     const AdapterContext& ctx);

}  // namespace lathe
