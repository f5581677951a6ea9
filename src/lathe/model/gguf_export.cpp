#include "lathe/model/gguf_export.h"

#include <cstring>

#include "lathe/core/error.h"

namespace lathe {

GgmlType parse_gguf_type(const std::string& s) {
  if (s == "f32") return GgmlType::F32;
  if (s == "f16") return GgmlType::F16;
  if (s == "q8_0") return GgmlType::Q8_0;
  if (s == "q4_0") return GgmlType::Q4_0;
  fail("export", "unknown GGUF tensor type '{}' (f32, f16, q8_0, q4_0)", s);
}

std::string add_gguf_general(const ModelConfig& c, GgmlType type, const char* general_type, const std::string& name,
                             GgufWriter& w) {
  const std::string arch = gguf_arch_name(c);
  w.set_string("general.architecture", arch);
  w.set_string("general.type", general_type);
  if (!name.empty()) w.set_string("general.name", name);
  // llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7.
  w.set_u32("general.file_type", type == GgmlType::F32 ? 0u : type == GgmlType::F16 ? 1u : type == GgmlType::Q4_0 ? 2u : 7u);
  if (type == GgmlType::Q8_0 || type == GgmlType::Q4_0) w.set_u32("general.quantization_version", 2);
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
  const bool permute_arch = gguf_rope_permuted(c);
  const float norm_shift = gguf_norm_shift(c);
  ModelWeights weights = m.weights;  // shallow copies; for_each_tensor wants a mutable reference
  const bool quantized = type == GgmlType::Q8_0 || type == GgmlType::Q4_0;
  for_each_tensor(c, weights, [&](TensorSlot& s) {
    Tensor t = *s.tensor;
    if (is_qblock_dtype(t.dtype)) t = dequantize_tensor_qblock(t);  // re-encoded below (kept bytes when the type matches)
    const Tensor& held = *s.tensor;
    if (t.dtype != DType::F32) fail("export", "tensor '{}' is {}, expected f32 weights", s.hf_name, dtype_name(t.dtype));
    GgmlType out = type;
    if (t.ndim() < 2) out = GgmlType::F32;
    // The embedding table and lm_head stay 8-bit in a 4-bit file, as quantize_model_weights keeps
    // them in memory (llama.cpp's own quantizer gives them 6 bits or more too).
    else if (quantized && (s.role == TensorRole::Embedding || s.layer < 0)) out = GgmlType::Q8_0;
    if ((out == GgmlType::Q8_0 || out == GgmlType::Q4_0) && t.shape.back() % 32 != 0) out = GgmlType::F16;
    const bool permute = s.rope_permuted && permute_arch;
    if (out == GgmlType::Q8_0 || out == GgmlType::Q4_0) {
      // Rows quantized with the reference quantizers (kernels/cpu/qblock.h), or the blocks held
      // already when they are of this type, then permuted as whole rows for NORM-RoPE q/k.
      const DType dt = out == GgmlType::Q8_0 ? DType::Q8_0 : DType::Q4_0;
      Tensor q = held.dtype == dt ? held : quantize_tensor_qblock(t, dt);
      const size_t row = dtype_bytes(dt, q.dim(1));
      std::vector<uint8_t> bytes(q.nbytes());
      if (permute)
        rope_rows_permute_bytes(q.as<uint8_t>(), bytes.data(), s.rope_heads, c.head_dim, row, false);
      else
        std::memcpy(bytes.data(), q.data, bytes.size());
      w.add_tensor_raw(s.gguf_name, q.shape, uint32_t(out), std::move(bytes));
      return;
    }
    if (permute) {
      Tensor p = Tensor::empty(DType::F32, t.shape);
      rope_rows_hf_to_gguf(t.f32(), p.f32(), s.rope_heads, c.head_dim, t.ndim() == 2 ? t.shape[1] : 1);
      t = p;
    }
    if (s.role == TensorRole::Norm && norm_shift != 0.0f) {  // Gemma: llama.cpp multiplies by the stored 1 + w
      Tensor p = Tensor::empty(DType::F32, t.shape);
      for (int64_t i = 0; i < t.numel(); i++) p.f32()[i] = t.f32()[i] + norm_shift;
      t = p;
    }
    w.add_tensor(s.gguf_name, t, out);
  });
}

}  // namespace lathe
