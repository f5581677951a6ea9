#include "lathe/model/weights.h"

#include <cstring>

namespace lathe {

namespace {

// How a family names its tensors in HF checkpoints. GGUF names are llama.cpp's and the same for
// every family (its converter maps each family onto them).
struct HfNames {
  const char* embed;
  const char* final_norm;
  const char* layer;  // prefix, {} = layer index
  const char* attn;   // module holding q/k/v/o (under the layer)
  const char* mlp;    // module holding the MLP projections
  const char* pre_attn_norm;
  const char* post_attn_norm;
  const char* pre_ffn_norm;
  const char* post_ffn_norm;
  const char* lin[int(LinearId::kCount)];  // module names (PEFT target_modules)
};

constexpr HfNames kLlamaNames = {
    "model.embed_tokens.weight", "model.norm.weight", "model.layers.{}.", "self_attn.", "mlp.",
    "input_layernorm", "", "post_attention_layernorm", "",
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj", "gate_up_proj"}};
// Gemma 2/3 and EXAONE 4 put post_attention_layernorm AFTER attention (a sandwich / post norm),
// and name the MLP's pre-norm pre_feedforward_layernorm.
constexpr HfNames kSandwichNames = {
    "model.embed_tokens.weight", "model.norm.weight", "model.layers.{}.", "self_attn.", "mlp.",
    "input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm",
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj", "gate_up_proj"}};
// EXAONE 3.x (remote code): GPT-2-like module names around a Llama block.
constexpr HfNames kExaoneNames = {
    "transformer.wte.weight", "transformer.ln_f.weight", "transformer.h.{}.", "attn.attention.", "mlp.",
    "ln_1", "", "ln_2", "",
    {"q_proj", "k_proj", "v_proj", "out_proj", "c_fc_0", "c_fc_1", "c_proj", "qkv_proj", "gate_up_proj"}};

const HfNames& hf_names(const ModelConfig& c) {
  if (c.arch == Arch::Exaone) return kExaoneNames;
  if (c.post_attn_norm || c.post_ffn_norm) return kSandwichNames;
  return kLlamaNames;
}

std::string layer_prefix(const HfNames& n, int l) {
  std::string p = n.layer;
  return p.replace(p.find("{}"), 2, std::to_string(l));
}

bool is_attention(LinearId id) { return id <= LinearId::O || id == LinearId::QKV; }

}  // namespace

std::vector<LinearId> linear_ids(const ModelConfig& c) {
  std::vector<LinearId> out;
  if (c.fused_qkv) out.push_back(LinearId::QKV);
  else out.insert(out.end(), {LinearId::Q, LinearId::K, LinearId::V});
  out.push_back(LinearId::O);
  if (c.fused_gate_up) out.push_back(LinearId::GateUp);
  else out.insert(out.end(), {LinearId::Gate, LinearId::Up});
  out.push_back(LinearId::Down);
  return out;
}

std::string linear_module_name(const ModelConfig& c, LinearId id) { return hf_names(c).lin[int(id)]; }

std::string linear_module_path(const ModelConfig& c, int l, LinearId id) {
  const HfNames& n = hf_names(c);
  return layer_prefix(n, l) + (is_attention(id) ? n.attn : n.mlp) + n.lin[int(id)];
}

Tensor& linear_weight(LayerWeights& w, LinearId id) {
  Tensor* t[] = {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down, &w.wqkv, &w.w_gate_up};
  return *t[int(id)];
}

const Tensor& linear_weight(const LayerWeights& w, LinearId id) {
  return linear_weight(const_cast<LayerWeights&>(w), id);  // the same table; nothing is written
}

std::pair<int64_t, int64_t> linear_shape(const ModelConfig& c, LinearId id) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, QD = c.q_dim(), KD = c.kv_dim();
  switch (id) {
    case LinearId::Q: return {QD, C};
    case LinearId::K:
    case LinearId::V: return {KD, C};
    case LinearId::O: return {C, QD};
    case LinearId::Gate:
    case LinearId::Up: return {F, C};
    case LinearId::Down: return {C, F};
    case LinearId::QKV: return {QD + 2 * KD, C};
    case LinearId::GateUp: return {2 * F, C};
    default: return {0, 0};
  }
}

void for_each_tensor(const ModelConfig& c, ModelWeights& w, const std::function<void(TensorSlot&)>& fn) {
  const int64_t C = c.hidden_size, V = c.vocab_size, D = c.head_dim;
  const int64_t QD = c.q_dim(), KD = c.kv_dim();
  const HfNames& n = hf_names(c);
  auto visit = [&](std::string hf, std::string gguf, std::vector<int64_t> shape, TensorRole role, int layer,
                   Tensor* t, bool permuted = false, int heads = 0) {
    TensorSlot s{std::move(hf), std::move(gguf), std::move(shape), role, layer, permuted, heads, t};
    fn(s);
  };
  visit(n.embed, "token_embd.weight", {V, C}, TensorRole::Embedding, -1, &w.embed);
  w.layers.resize(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    LayerWeights& lw = w.layers[l];
    const std::string hp = layer_prefix(n, l), ha = hp + n.attn, hm = hp + n.mlp;
    const std::string gp = "blk." + std::to_string(l) + ".";
    auto lin = [&](LinearId id, const char* gguf, Tensor* t, bool permuted = false, int heads = 0) {
      auto [out, in] = linear_shape(c, id);
      visit((is_attention(id) ? ha : hm) + n.lin[int(id)] + ".weight", gp + gguf + ".weight", {out, in},
            TensorRole::Matrix, l, t, permuted, heads);
    };
    auto norm = [&](const char* hf, const char* gguf, Tensor* t) {
      visit(hp + hf + ".weight", gp + gguf + ".weight", {C}, TensorRole::Norm, l, t);
    };
    if (c.pre_attn_norm) norm(n.pre_attn_norm, "attn_norm", &lw.attn_norm);
    if (c.fused_qkv) {
      lin(LinearId::QKV, "attn_qkv", &lw.wqkv);
    } else {
      lin(LinearId::Q, "attn_q", &lw.wq, true, c.num_attention_heads);
      lin(LinearId::K, "attn_k", &lw.wk, true, c.num_key_value_heads);
      lin(LinearId::V, "attn_v", &lw.wv);
    }
    lin(LinearId::O, "attn_output", &lw.wo);
    if (c.attention_bias) {
      visit(ha + n.lin[0] + ".bias", gp + "attn_q.bias", {QD}, TensorRole::Bias, l, &lw.bq, true,
            c.num_attention_heads);
      visit(ha + n.lin[1] + ".bias", gp + "attn_k.bias", {KD}, TensorRole::Bias, l, &lw.bk, true,
            c.num_key_value_heads);
      visit(ha + n.lin[2] + ".bias", gp + "attn_v.bias", {KD}, TensorRole::Bias, l, &lw.bv);
    }
    if (c.qk_norm) {
      visit(ha + "q_norm.weight", gp + "attn_q_norm.weight", {D}, TensorRole::Norm, l, &lw.q_norm);
      visit(ha + "k_norm.weight", gp + "attn_k_norm.weight", {D}, TensorRole::Norm, l, &lw.k_norm);
    }
    if (c.post_attn_norm) norm(n.post_attn_norm, "post_attention_norm", &lw.post_attn_norm);
    if (c.pre_ffn_norm) norm(n.pre_ffn_norm, "ffn_norm", &lw.ffn_norm);
    if (c.fused_gate_up) {
      lin(LinearId::GateUp, "ffn_up", &lw.w_gate_up);  // llama.cpp keeps Phi-3's [gate; up] in ffn_up
    } else {
      lin(LinearId::Gate, "ffn_gate", &lw.w_gate);
      lin(LinearId::Up, "ffn_up", &lw.w_up);
    }
    lin(LinearId::Down, "ffn_down", &lw.w_down);
    if (c.post_ffn_norm) norm(n.post_ffn_norm, "post_ffw_norm", &lw.post_ffn_norm);
  }
  visit(n.final_norm, "output_norm.weight", {C}, TensorRole::Norm, -1, &w.final_norm);
  if (!c.tie_word_embeddings)
    visit("lm_head.weight", "output.weight", {V, C}, TensorRole::Matrix, -1, &w.lm_head);
}

// llama.cpp's converter reorders each head's rows for interleaved RoPE: the HF->GGUF
// permutation reshapes rows as (heads, 2, D/2) and swaps the last two axes -> (heads, D/2, 2):
// GGUF row h*D + 2*i + p  ==  HF row h*D + p*(D/2) + i. Rows move whole, so the same permutation
// serves f32 rows and rows of quantized blocks (each row is quantized on its own).
void rope_rows_permute_bytes(const uint8_t* src, uint8_t* dst, int heads, int head_dim, size_t row_bytes,
                             bool gguf_to_hf) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < half; i++)
      for (int p = 0; p < 2; p++) {
        const int64_t gguf_row = int64_t(h) * head_dim + 2 * i + p, hf_row = int64_t(h) * head_dim + p * half + i;
        const int64_t from = gguf_to_hf ? gguf_row : hf_row, to = gguf_to_hf ? hf_row : gguf_row;
        std::memcpy(dst + size_t(to) * row_bytes, src + size_t(from) * row_bytes, row_bytes);
      }
}

void rope_rows_gguf_to_hf(const float* src, float* dst, int heads, int head_dim, int64_t cols) {
  rope_rows_permute_bytes(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<uint8_t*>(dst), heads, head_dim,
                          sizeof(float) * size_t(cols), true);
}

void rope_rows_hf_to_gguf(const float* src, float* dst, int heads, int head_dim, int64_t cols) {
  rope_rows_permute_bytes(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<uint8_t*>(dst), heads, head_dim,
                          sizeof(float) * size_t(cols), false);
}

}  // namespace lathe
