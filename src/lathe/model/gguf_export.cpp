#include "lathe/model/gguf_export.h"

#include <cstring>

#include "lathe/core/error.h"

namespace lathe {

GgmlType parse_gguf_type(const std::string& s) {
  if (s == "f32") return GgmlType::F32;
  if (s == "f16") return GgmlType::F16;
  if (s == "q8_0") return GgmlType::Q8_0;
  if (s == "q4_0") return GgmlType::Q4_0;
  if (s == "q4_k") return GgmlType::Q4_K;
  if (s == "q6_k") return GgmlType::Q6_K;
  if (s == "bf16") return GgmlType::BF16;
  fail("export", "unknown GGUF tensor type '{}' (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)", s);
}

namespace {

DType dtype_of_ggml(GgmlType t) {
  switch (t) {
    case GgmlType::F16: return DType::F16;
    case GgmlType::BF16: return DType::BF16;
    case GgmlType::Q8_0: return DType::Q8_0;
    case GgmlType::Q4_0: return DType::Q4_0;
    case GgmlType::Q4_K: return DType::Q4_K;
    case GgmlType::Q6_K: return DType::Q6_K;
    default: return DType::F32;
  }
}

GgmlType ggml_of_dtype(DType t) {
  switch (t) {
    case DType::F16: return GgmlType::F16;
    case DType::BF16: return GgmlType::BF16;
    case DType::Q8_0: return GgmlType::Q8_0;
    case DType::Q4_0: return GgmlType::Q4_0;
    case DType::Q4_K: return GgmlType::Q4_K;
    case DType::Q6_K: return GgmlType::Q6_K;
    default: return GgmlType::F32;
  }
}

// llama_ftype of the file: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_Q4_K_S 14
// (Q4_K matrices, Q6_K output: lathe's q4_k mix), MOSTLY_Q6_K 18, MOSTLY_BF16 32.
uint32_t llama_ftype(GgmlType t) {
  switch (t) {
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q4_K: return 14;
    case GgmlType::Q6_K: return 18;
    case GgmlType::BF16: return 32;
    default: return 0;
  }
}

}  // namespace

std::string add_gguf_general(const ModelConfig& c, GgmlType type, const char* general_type, const std::string& name,
                             GgufWriter& w) {
  const std::string arch = gguf_arch_name(c);
  w.set_string("general.architecture", arch);
  w.set_string("general.type", general_type);
  if (!name.empty()) w.set_string("general.name", name);
  w.set_u32("general.file_type", llama_ftype(type));
  if (type == GgmlType::Q8_0 || type == GgmlType::Q4_0 || type == GgmlType::Q4_K || type == GgmlType::Q6_K)
    w.set_u32("general.quantization_version", 2);
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
  const DType conv = dtype_of_ggml(type);  // F32 when nothing is converted
  for_each_tensor(c, weights, [&](TensorSlot& s) {
    Tensor t = *s.tensor;
    if (is_qblock_dtype(t.dtype)) t = dequantize_tensor_qblock(t);  // re-encoded below (kept bytes when the type matches)
    const Tensor& held = *s.tensor;
    if (t.dtype != DType::F32) fail("export", "tensor '{}' is {}, expected f32 weights", s.hf_name, dtype_name(t.dtype));
    // Matrices get the type quantize_model_weights holds in memory for them (one rule: output side
    // 8 or 6 bits in a 4-bit file, fallbacks for rows the block does not divide); vectors stay F32.
    GgmlType out = GgmlType::F32;
    if (t.ndim() >= 2 && conv != DType::F32)
      out = ggml_of_dtype(quantized_weight_dtype(conv, s.role == TensorRole::Embedding || s.layer < 0, t.shape.back()));
    const bool permute = s.rope_permuted && permute_arch;
    if (out != GgmlType::F32) {
      // Rows quantized with the reference quantizers (kernels/cpu/qblock.h), or the blocks held
      // already when they are of this type, then permuted as whole rows for NORM-RoPE q/k.
      const DType dt = dtype_of_ggml(out);
      Tensor q = held.dtype == dt ? held : quantize_tensor_qblock(t, dt, s.hf_name);
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
