// Quantizing a loaded model's weights: NF4 for QLoRA (frozen base under an adapter) and Q8_0/Q4_0/
// Q4_K/Q6_K blocks or F16/BF16 rows for inference (docs/quant.md "In the model").
#include <cstring>
#include <memory>
#include <vector>

#include "lathe/core/dtype.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/kquant_blocks.h"
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
      if (w->dtype == DType::NF4) continue;  // LoftQ's base, quantized with its adapter
      // Blocks or F16/BF16 rows (a GGUF loaded as stored): NF4 of their values, as when such a file
      // was dequantized on load. A QLoRA adapter runs on the NF4 base it was trained on.
      before += w->nbytes();
      if (is_qblock_dtype(w->dtype)) *w = dequantize_tensor_qblock(*w);
      LATHE_CHECK(w->dtype == DType::F32, "quantize_model_nf4 expects f32 weights");
      auto q = std::make_shared<Nf4Tensor>(nf4_quantize(w->f32(), w->dim(0), w->dim(1), 64, true));
      after += nf4_bytes(*q);
      set_nf4_weight(w, std::move(q));
    }
  m.weight_bytes_f32 = m.weight_bytes_f32 - before + after;
}

void set_nf4_weight(Tensor* w, std::shared_ptr<Nf4Tensor> q) {
  // A view into the model file's read-only mapping (owner shared by every tensor): drop its
  // pages so peak RSS shows the 4-bit base. A heap copy (owner held once) is freed below anyway.
  if (w->dtype == DType::F32 && w->owner.use_count() > 1) release_mapped_pages(w->data, w->nbytes());
  // The Tensor keeps its [out, in] shape; its data is the Nf4Tensor (linear.cpp reads it back).
  Tensor t;
  t.dtype = DType::NF4;
  t.shape = w->shape;
  t.data = q.get();
  t.owner = std::move(q);
  *w = t;
}

void dequantize_model_nf4(Model& m) {
  for (auto& lw : m.weights.layers)
    for (LinearId id : linear_ids(m.config)) {
      Tensor* w = &linear_weight(lw, id);
      if (w->dtype != DType::NF4) continue;
      Tensor t = Tensor::empty(DType::F32, w->shape);
      nf4_dequantize(*static_cast<const Nf4Tensor*>(w->data), t.f32());
      *w = t;
    }
  m.weight_bytes_f32 = model_weight_bytes(m);
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

// Replaces `*w` by `q`; a view into a read-only mapping gives its pages back (as quantize_model_nf4).
void replace_weight(Tensor* w, Tensor q) {
  if (w->owner.use_count() > 1 && (w->dtype == DType::F32 || w->dtype == DType::F16 || w->dtype == DType::BF16))
    release_mapped_pages(w->data, w->nbytes());
  *w = std::move(q);
}

bool is_kquant(DType t) { return t == DType::Q4_K || t == DType::Q6_K; }

}  // namespace

DType quantized_weight_dtype(DType type, bool output_side, int64_t row_len) {
  LATHE_CHECK(is_qblock_dtype(type), "not a weight conversion type: {}", dtype_name(type));
  if (type == DType::F16 || type == DType::BF16) return type;
  DType t = type;
  if (output_side) t = is_kquant(type) ? DType::Q6_K : DType::Q8_0;
  if (is_kquant(t) && row_len % kQK_K != 0) t = DType::Q8_0;
  if (row_len % kQBlock != 0) t = DType::F16;
  return t;
}

Tensor quantize_tensor_qblock(const Tensor& w, DType type, const std::string& name) {
  const QType qt = weight_qtype(type);
  const bool f32 = w.dtype == DType::F32;
  LATHE_CHECK((f32 || w.dtype == DType::F16 || w.dtype == DType::BF16) && w.ndim() == 2 && w.is_contiguous(),
              "quantize_tensor_qblock needs a contiguous f32, f16 or bf16 [N, K] tensor, got {} {}",
              dtype_name(w.dtype), w.shape_str());
  const int64_t N = w.dim(0), K = w.dim(1);
  if (K % qtype_block(qt) != 0)
    fail("model", "tensor '{}' {}: {} needs rows of a multiple of {} elements, got {}", name, w.shape_str(),
         qtype_name(qt), qtype_block(qt), K);
  Tensor q = Tensor::empty(type, w.shape);
  const size_t rb = qblock_row_bytes(qt, K);
  uint8_t* dst = q.as<uint8_t>();
  // Rows are independent, so the threads' split does not change a bit. F16/BF16 rows (an HF
  // checkpoint quantized on load) are widened one row at a time: no f32 copy of the matrix.
#pragma omp parallel
  {
    std::vector<float> row(f32 ? 0 : size_t(K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const float* src = f32 ? w.f32() + n * K : row.data();
      if (!f32) {
        const uint16_t* h = static_cast<const uint16_t*>(w.data) + n * K;
        for (int64_t k = 0; k < K; k++) row[size_t(k)] = w.dtype == DType::BF16 ? bf16_to_f32(h[k]) : f16_to_f32(h[k]);
      }
      quantize_row(qt, src, dst + size_t(n) * rb, K);
    }
  }
  return q;
}

Tensor dequantize_tensor_qblock(const Tensor& q) {
  const QType qt = weight_qtype(q.dtype);
  Tensor out = Tensor::empty(DType::F32, q.shape);
  const int64_t K = q.shape.back(), N = q.numel() / K;
  const size_t rb = qblock_row_bytes(qt, K);
  const auto* src = static_cast<const uint8_t*>(q.data);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) dequantize_row(qt, src + size_t(n) * rb, out.f32() + n * K, K);
  return out;
}

void quantize_model_weights(Model& m, DType type) {
  quantized_weight_dtype(type, false, kQK_K);  // checks the argument
  for_each_tensor(m.config, m.weights, [&](TensorSlot& s) {
    if (s.role != TensorRole::Matrix || s.layer < 0) return;  // the output side is below
    Tensor* w = s.tensor;
    const DType want = quantized_weight_dtype(type, false, w->dim(1));
    if (w->dtype == want) return;  // a GGUF tensor kept as stored
    if (w->dtype != DType::F32 && !(m.format == "hf" && (w->dtype == DType::F16 || w->dtype == DType::BF16)))
      fail("model", "{}: tensor '{}' is {}; cannot convert it to {} (load it as f32 first)", m.source, s.hf_name,
           dtype_name(w->dtype), dtype_name(want));
    replace_weight(w, quantize_tensor_qblock(*w, want, s.hf_name));
  });
  Tensor& head = m.weights.lm_head;
  Tensor& embed = m.weights.embed;
  // The output side (quantized_weight_dtype): decode reads the lm_head once per token like any
  // Linear, and the logits are where 4-bit error shows most. The table gets the same type, as the
  // GGUF's token_embd: looked up by dequantizing the rows a step needs (embed_rows), and for tied
  // embeddings the very blocks the lm_head multiplies. A block-quantized lm_head came from the file.
  const bool file_decided = is_qblock_dtype(head.dtype) && head.dtype != DType::F16 && head.dtype != DType::BF16;
  if (!file_decided) {
    const DType want = quantized_weight_dtype(type, true, head.dim(1));
    const bool tied = head.data == embed.data;
    auto convert = [&](Tensor* t, const char* name) {
      if (t->dtype == want) return;
      // f32, or an HF checkpoint's f16/bf16 rows (widened row by row); blocks from a GGUF via f32.
      const bool direct = t->dtype == DType::F32 || (m.format == "hf" && (t->dtype == DType::F16 || t->dtype == DType::BF16));
      Tensor f = direct ? *t : dequantize_tensor_qblock(*t);
      replace_weight(t, quantize_tensor_qblock(f, want, name));
    };
    if (tied) {
      convert(&embed, "model.embed_tokens.weight");
      head = embed;
    } else {
      convert(&head, "lm_head.weight");
      convert(&embed, "model.embed_tokens.weight");
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
