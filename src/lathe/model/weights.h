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
  Tensor attn_norm;           // [C]
  Tensor wq, wk, wv, wo;      // [H*D, C], [Hkv*D, C], [Hkv*D, C], [C, H*D]
  Tensor bq, bk, bv;          // [H*D], [Hkv*D], [Hkv*D]   (attention_bias: Qwen2)
  Tensor q_norm, k_norm;      // [D]                       (qk_norm: Qwen3)
  Tensor ffn_norm;            // [C]
  Tensor w_gate, w_up, w_down;  // [F, C], [F, C], [C, F]
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

// GGUF stores q/k rows permuted for interleaved RoPE: per head, rows [0..D/2) of HF's rotate-half
// layout become the even rows. These convert between the two orders (rows of width `cols`).
void rope_rows_gguf_to_hf(const float* src, float* dst, int heads, int head_dim, int64_t cols);
void rope_rows_hf_to_gguf(const float* src, float* dst, int heads, int head_dim, int64_t cols);

}  // namespace lathe
