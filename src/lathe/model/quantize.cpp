// Quantizing a loaded model's weights: NF4 for QLoRA (frozen base under an adapter) and Q8_0/Q4_0
// blocks for inference (docs/quant.md "In the model").
#include <cstring>
#include <memory>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/formats/gguf.h"
#include "lathe/kernels/cpu/qblock.h"
#include "lathe/kernels/quant/nf4.h"
#include "lathe/model/model.h"

namespace lathe {

void quantize_model_nf4(Model& m) {
  size_t before = 0, after = 0;
  for (auto& lw : m.weights.layers)
    for (LinearId id : linear_ids(m.config)) {
      Tensor* w = &linear_weight(lw, id);
      // Q8_0/Q4_0 blocks (a quantized GGUF loaded as stored): NF4 of their values, as when such a
      // file was dequantized on load. A QLoRA adapter runs on the NF4 base it was trained on.
      before += w->nbytes();
      if (is_qblock_dtype(w->dtype)) *w = dequantize_tensor_qblock(*w);
      LATHE_CHECK(w->dtype == DType::F32, "quantize_model_nf4 expects f32 weights");
      auto q = std::make_shared<Nf4Tensor>(nf4_quantize(w->f32(), w->dim(0), w->dim(1), 64, true));
      after += nf4_bytes(*q);
      // A view into the model file's read-only mapping (owner shared by every tensor): drop its
      // pages so peak RSS shows the 4-bit base. A heap copy (owner held once) is freed below anyway.
      if (w->owner.use_count() > 1) release_mapped_pages(w->data, w->nbytes());
      // The Tensor keeps its [out, in] shape; its data is the Nf4Tensor (linear.cpp reads it back).
      Tensor t;
      t.dtype = DType::NF4;
      t.shape = w->shape;
      t.data = q.get();
      t.owner = q;
      *w = t;
    }
  m.weight_bytes_f32 = m.weight_bytes_f32 - before + after;
}

void roundtrip_model_nf4(Model& m) {
  for (auto& lw : m.weights.layers)
    for (LinearId id : linear_ids(m.config)) {
      Tensor* w = &linear_weight(lw, id);
      Nf4Tensor q = nf4_quantize(w->f32(), w->dim(0), w->dim(1), 64, true);
      Tensor t = Tensor::empty(DType::F32, w->shape);
      nf4_dequantize(q, t.f32());
      *w = t;
    }
}

namespace {

QType qtype_of(DType t) {
  LATHE_CHECK(is_qblock_dtype(t), "not a block-quantized dtype: {}", dtype_name(t));
  return t == DType::Q8_0 ? QType::Q8_0 : QType::Q4_0;
}

// Replaces `*w` by `q`; a view into a read-only mapping gives its pages back (as quantize_model_nf4).
void replace_weight(Tensor* w, Tensor q) {
  if (w->owner.use_count() > 1 && w->dtype == DType::F32) release_mapped_pages(w->data, w->nbytes());
  *w = std::move(q);
}

}  // namespace

Tensor quantize_tensor_qblock(const Tensor& w, DType type) {
  const QType qt = qtype_of(type);
  LATHE_CHECK(w.dtype == DType::F32 && w.ndim() == 2 && w.dim(1) % kQBlock == 0 && w.is_contiguous(),
              "quantize_tensor_qblock needs a contiguous f32 [N, K] tensor with K % 32 == 0, got {} {}",
              dtype_name(w.dtype), w.shape_str());
  Tensor q = Tensor::empty(type, w.shape);
  const int64_t N = w.dim(0), K = w.dim(1);
  const size_t rb = qblock_row_bytes(qt, K);
  const float* src = w.f32();
  uint8_t* dst = q.as<uint8_t>();
  // Rows are independent, so the threads' split does not change a bit.
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) quantize_row(qt, src + n * K, dst + size_t(n) * rb, K);
  return q;
}

Tensor dequantize_tensor_qblock(const Tensor& q) {
  Tensor out = Tensor::empty(DType::F32, q.shape);
  const auto* src = static_cast<const uint8_t*>(q.data);
  if (q.dtype == DType::Q8_0) dequantize_q8_0(src, out.f32(), q.numel());
  else if (q.dtype == DType::Q4_0) dequantize_q4_0(src, out.f32(), q.numel());
  else LATHE_CHECK(false, "dequantize_tensor_qblock: dtype {}", dtype_name(q.dtype));
  return out;
}

void quantize_model_weights(Model& m, DType type) {
  qtype_of(type);  // checks the argument
  for_each_tensor(m.config, m.weights, [&](TensorSlot& s) {
    if (s.role != TensorRole::Matrix || s.layer < 0) return;  // the output side is below
    Tensor* w = s.tensor;
    if (w->dtype == type) return;  // a GGUF tensor kept as stored
    if (w->dtype != DType::F32)
      fail("model", "{}: tensor '{}' is {}; cannot quantize it to {} (load it as f32 first)", m.source, s.hf_name,
           dtype_name(w->dtype), dtype_name(type));
    if (w->dim(1) % kQBlock != 0) {
      // No block layout for this row length: f16 values held as f32, what the GGUF writer falls back
      // to (add_model_to_gguf, as llama.cpp does), so memory and file still compute the same.
      Tensor r = Tensor::empty(DType::F32, w->shape);
      for (int64_t i = 0; i < w->numel(); i++) r.f32()[i] = f16_to_f32(f32_to_f16(w->f32()[i]));
      replace_weight(w, r);
      return;
    }
    replace_weight(w, quantize_tensor_qblock(*w, type));
  });
  Tensor& head = m.weights.lm_head;
  Tensor& embed = m.weights.embed;
  // The output side: Q8_0 whatever `type` is. Decode reads the lm_head once per token like any
  // Linear, and the logits are where 4-bit error shows most (llama.cpp gives it Q6_K or Q8_0). The
  // table is Q8_0 too, as a Q8_0 token_embd in the GGUF: looked up by dequantizing the rows a step
  // needs (embed_rows), and for tied embeddings the very blocks the lm_head multiplies.
  if (!is_qblock_dtype(head.dtype) && head.dim(1) % kQBlock == 0) {
    const bool tied = head.data == embed.data;
    if (tied) {
      Tensor q = quantize_tensor_qblock(embed, DType::Q8_0);
      replace_weight(&embed, q);
      head = q;
    } else {
      replace_weight(&head, quantize_tensor_qblock(head, DType::Q8_0));
      if (embed.dtype == DType::F32) replace_weight(&embed, quantize_tensor_qblock(embed, DType::Q8_0));
    }
  }
  m.weight_bytes_f32 = model_weight_bytes(m);
}

size_t model_weight_bytes(const Model& m) {
  size_t n = 0;
  ModelWeights w = m.weights;  // shallow copies; for_each_tensor wants a mutable reference
  for_each_tensor(m.config, w, [&](TensorSlot& s) { n += s.tensor->nbytes(); });
  if (m.config.tie_word_embeddings && m.weights.lm_head.data != m.weights.embed.data) n += m.weights.lm_head.nbytes();
  return n;
}

}  // namespace lathe
