#include "lathe/model/weights.h"

#include <cstring>

namespace lathe {

void for_each_tensor(const ModelConfig& c, ModelWeights& w, const std::function<void(TensorSlot&)>& fn) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
  const int64_t QD = c.q_dim(), KD = c.kv_dim();
  auto visit = [&](std::string hf, std::string gguf, std::vector<int64_t> shape, TensorRole role, int layer,
                   Tensor* t, bool permuted = false, int heads = 0) {
    TensorSlot s{std::move(hf), std::move(gguf), std::move(shape), role, layer, permuted, heads, t};
    fn(s);
  };
  visit("model.embed_tokens.weight", "token_embd.weight", {V, C}, TensorRole::Embedding, -1, &w.embed);
  w.layers.resize(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    LayerWeights& lw = w.layers[l];
    std::string hp = "model.layers." + std::to_string(l) + ".";
    std::string gp = "blk." + std::to_string(l) + ".";
    visit(hp + "input_layernorm.weight", gp + "attn_norm.weight", {C}, TensorRole::Norm, l, &lw.attn_norm);
    visit(hp + "self_attn.q_proj.weight", gp + "attn_q.weight", {QD, C}, TensorRole::Matrix, l, &lw.wq, true,
          c.num_attention_heads);
    visit(hp + "self_attn.k_proj.weight", gp + "attn_k.weight", {KD, C}, TensorRole::Matrix, l, &lw.wk, true,
          c.num_key_value_heads);
    visit(hp + "self_attn.v_proj.weight", gp + "attn_v.weight", {KD, C}, TensorRole::Matrix, l, &lw.wv);
    visit(hp + "self_attn.o_proj.weight", gp + "attn_output.weight", {C, QD}, TensorRole::Matrix, l, &lw.wo);
    if (c.attention_bias) {
      visit(hp + "self_attn.q_proj.bias", gp + "attn_q.bias", {QD}, TensorRole::Bias, l, &lw.bq, true,
            c.num_attention_heads);
      visit(hp + "self_attn.k_proj.bias", gp + "attn_k.bias", {KD}, TensorRole::Bias, l, &lw.bk, true,
            c.num_key_value_heads);
      visit(hp + "self_attn.v_proj.bias", gp + "attn_v.bias", {KD}, TensorRole::Bias, l, &lw.bv);
    }
    if (c.qk_norm) {
      visit(hp + "self_attn.q_norm.weight", gp + "attn_q_norm.weight", {D}, TensorRole::Norm, l, &lw.q_norm);
      visit(hp + "self_attn.k_norm.weight", gp + "attn_k_norm.weight", {D}, TensorRole::Norm, l, &lw.k_norm);
    }
    visit(hp + "post_attention_layernorm.weight", gp + "ffn_norm.weight", {C}, TensorRole::Norm, l, &lw.ffn_norm);
    visit(hp + "mlp.gate_proj.weight", gp + "ffn_gate.weight", {F, C}, TensorRole::Matrix, l, &lw.w_gate);
    visit(hp + "mlp.up_proj.weight", gp + "ffn_up.weight", {F, C}, TensorRole::Matrix, l, &lw.w_up);
    visit(hp + "mlp.down_proj.weight", gp + "ffn_down.weight", {C, F}, TensorRole::Matrix, l, &lw.w_down);
  }
  visit("model.norm.weight", "output_norm.weight", {C}, TensorRole::Norm, -1, &w.final_norm);
  if (!c.tie_word_embeddings)
    visit("lm_head.weight", "output.weight", {V, C}, TensorRole::Matrix, -1, &w.lm_head);
}

// llama.cpp's converter reorders each head's rows for interleaved RoPE: the HF->GGUF
// permutation reshapes rows as (heads, 2, D/2) and swaps the last two axes -> (heads, D/2, 2):
// GGUF row h*D + 2*i + p  ==  HF row h*D + p*(D/2) + i.
void rope_rows_gguf_to_hf(const float* src, float* dst, int heads, int head_dim, int64_t cols) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < half; i++)
      for (int p = 0; p < 2; p++) {
        const float* s = src + (int64_t(h) * head_dim + 2 * i + p) * cols;
        float* d = dst + (int64_t(h) * head_dim + p * half + i) * cols;
        std::memcpy(d, s, sizeof(float) * cols);
      }
}

void rope_rows_hf_to_gguf(const float* src, float* dst, int heads, int head_dim, int64_t cols) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < half; i++)
      for (int p = 0; p < 2; p++) {
        const float* s = src + (int64_t(h) * head_dim + p * half + i) * cols;
        float* d = dst + (int64_t(h) * head_dim + 2 * i + p) * cols;
        std::memcpy(d, s, sizeof(float) * cols);
      }
}

}  // namespace lathe
