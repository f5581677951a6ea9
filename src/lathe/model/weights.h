// The weights of a Llama-family model and the one table that names them. for_each_tensor visits
// every tensor with its HF name, GGUF name and expected shape; loading (HF dir, GGUF), saving,
// random init and the inspect report are all driven by it (STYLE.md §5).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lathe/core/tensor.h"
#include "lathe/model/config.h"

namespace lathe {

struct LayerWeights {
  Tensor attn_norm;           // [C]                       (pre_attn_norm)
  Tensor wq, wk, wv, wo;      // [H*D, C], [Hkv*D, C], [Hkv*D, C], [C, H*D]
  Tensor wqkv;                // [(H + 2 Hkv) D, C]        (fused_qkv: Phi-3, instead of wq/wk/wv)
  Tensor bq, bk, bv;          // [H*D], [Hkv*D], [Hkv*D]   (attention_bias: Qwen2)
  Tensor q_norm, k_norm;      // [D]                       (qk_norm: Qwen3, Gemma 3, EXAONE 4)
  Tensor post_attn_norm;      // [C]                       (post_attn_norm: Gemma 2/3, EXAONE 4)
  Tensor ffn_norm;            // [C]                       (pre_ffn_norm)
  Tensor w_gate, w_up, w_down;  // [F, C], [F, C], [C, F]
  Tensor w_gate_up;           // [2F, C]                   (fused_gate_up: Phi-3, instead of w_gate/w_up)
  Tensor post_ffn_norm;       // [C]                       (post_ffn_norm: Gemma 2/3, EXAONE 4)
};

struct ModelWeights {
  Tensor embed;       // [V, C]
  Tensor final_norm;  // [C]
  Tensor lm_head;     // [V, C]; shares embed's storage when tied
  std::vector<LayerWeights> layers;
};

enum class TensorRole { Norm, Matrix, Bias, Embedding };

struct TensorSlot {
  std::string hf_name;    // "model.layers.0.self_attn.q_proj.weight"
  std::string gguf_name;  // "blk.0.attn_q.weight"
  std::vector<int64_t> shape;
  TensorRole role;
  int layer;              // -1 for non-layer tensors
  bool rope_permuted;     // q/k weights: GGUF stores their rows in interleaved RoPE order
  int rope_heads;         // heads to unpermute with (H for q, Hkv for k)
  Tensor* tensor;
};

// Visits every stored tensor of the model described by `cfg` (lm_head skipped when tied).
void for_each_tensor(const ModelConfig& cfg, ModelWeights& w, const std::function<void(TensorSlot&)>& fn);

// The projections of a block. Q/K/V and Gate/Up exist separately or, for families that fuse them
// (Phi-3), as QKV and GateUp.
enum class LinearId : int { Q, K, V, O, Gate, Up, Down, QKV, GateUp, kCount };
// The projections the model described by `cfg` has, in block order.
std::vector<LinearId> linear_ids(const ModelConfig& cfg);
// Its module name as PEFT's target_modules spell it for this family ("q_proj", "qkv_proj",
// EXAONE 3's "out_proj" / "c_fc_0" ...) and its module path in the HF checkpoint
// ("model.layers.3.self_attn.q_proj"): the adapter's tensor names derive from it.
std::string linear_module_name(const ModelConfig& cfg, LinearId id);
std::string linear_module_path(const ModelConfig& cfg, int layer, LinearId id);
// The weight of projection `id` in a layer.
Tensor& linear_weight(LayerWeights& w, LinearId id);
const Tensor& linear_weight(const LayerWeights& w, LinearId id);
// [out, in] of the projection.
std::pair<int64_t, int64_t> linear_shape(const ModelConfig& cfg, LinearId id);

// GGUF stores q/k rows permuted for interleaved RoPE: per head, rows [0..D/2) of HF's rotate-half
// layout become the even rows. These convert between the two orders (rows of width `cols`).
void rope_rows_gguf_to_hf(const float* src, float* dst, int heads, int head_dim, int64_t cols);
void rope_rows_hf_to_gguf(const float* src, float* dst, int heads, int head_dim, int64_t cols);
// The same on rows of `row_bytes` bytes each (Q8_0/Q4_0 rows: the permutation moves whole rows).
void rope_rows_permute_bytes(const uint8_t* src, uint8_t* dst, int heads, int head_dim, size_t row_bytes,
                             bool gguf_to_hf);

}  // namespace lathe
