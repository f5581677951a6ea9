#include "lathe/model/gguf_export.h"

#include "lathe/core/error.h"

namespace lathe {

GgmlType parse_gguf_type(const std::string& s) {
  if (s == "f32") return GgmlType::F32;
  if (s == "f16") return GgmlType::F16;
  if (s == "q8_0") return GgmlType::Q8_0;
  fail("export", "unknown GGUF tensor type '{}' (f32, f16, q8_0)", s);
}

std::string add_gguf_general(const ModelConfig& c, GgmlType type, const char* general_type, const std::string& name,
                             GgufWriter& w) {
  const std::string arch = gguf_arch_name(c);
  w.set_string("general.architecture", arch);
  w.set_string("general.type", general_type);
  if (!name.empty()) w.set_string("general.name", name);
  // llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7.
  w.set_u32("general.file_type", type == GgmlType::F32 ? 0u : type == GgmlType::F16 ? 1u : 7u);
  if (type == GgmlType::Q8_0) w.set_u32("general.quantization_version", 2);
  return arch;
}

void add_model_to_gguf(const Model& m, GgmlType type, const std::string& name, GgufWriter& w) {
  const ModelConfig& c = m.config;
  const std::string arch = add_gguf_general(c, type, "model", name, w);
  auto k = [&](const char* key) { return arch + "." + key; };
  w.set_u32(k("vocab_size"), uint32_t(c.vocab_size));
  w.set_u32(k("context_length"), uint32_t(c.max_position_embeddings));
  w.set_u32(k("embedding_length"), uint32_t(c.hidden_size));
  w.set_u32(k("block_count"), uint32_t(c.num_hidden_layers));
  w.set_u32(k("feed_forward_length"), uint32_t(c.intermediate_size));
  w.set_u32(k("rope.dimension_count"), uint32_t(c.rotary_dim()));  // < head_dim for partial rotary (Phi-3)
  w.set_u32(k("attention.head_count"), uint32_t(c.num_attention_heads));
  w.set_u32(k("attention.head_count_kv"), uint32_t(c.num_key_value_heads));
  if (c.head_dim * c.num_attention_heads != c.hidden_size) {
    w.set_u32(k("attention.key_length"), uint32_t(c.head_dim));
    w.set_u32(k("attention.value_length"), uint32_t(c.head_dim));
  }
  w.set_f32(k("attention.layer_norm_rms_epsilon"), c.rms_norm_eps);
  w.set_f32(k("rope.freq_base"), c.rope_theta);
  if (c.rope_scaling.type == RopeScaling::Linear) {
    w.set_string(k("rope.scaling.type"), "linear");
    w.set_f32(k("rope.scaling.factor"), c.rope_scaling.factor);
  }
  gguf_write_family(c, arch, w);
  const bool permute = gguf_rope_permuted(c);
  const float norm_shift = gguf_norm_shift(c);
  ModelWeights weights = m.weights;  // shallow copies; for_each_tensor wants a mutable reference
  for_each_tensor(c, weights, [&](TensorSlot& s) {
    Tensor t = *s.tensor;
    if (t.dtype != DType::F32) fail("export", "tensor '{}' is {}, expected f32 weights", s.hf_name, dtype_name(t.dtype));
    if (s.rope_permuted && permute) {
      Tensor p = Tensor::empty(DType::F32, t.shape);
      rope_rows_hf_to_gguf(t.f32(), p.f32(), s.rope_heads, c.head_dim, t.ndim() == 2 ? t.shape[1] : 1);
      t = p;
    }
    if (s.role == TensorRole::Norm && norm_shift != 0.0f) {  // Gemma: llama.cpp multiplies by the stored 1 + w
      Tensor p = Tensor::empty(DType::F32, t.shape);
      for (int64_t i = 0; i < t.numel(); i++) p.f32()[i] = t.f32()[i] + norm_shift;
      t = p;
    }
    GgmlType out = type;
    if (t.ndim() < 2) out = GgmlType::F32;
    else if (out == GgmlType::Q8_0 && t.shape.back() % 32 != 0) out = GgmlType::F16;
    w.add_tensor(s.gguf_name, t, out);
  });
}

}  // namespace lathe
