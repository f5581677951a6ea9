#include <cstring>
#include <memory>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/kernels/quant/nf4.h"
#include "lathe/model/model.h"

namespace lathe {

void quantize_model_nf4(Model& m) {
  size_t before = 0, after = 0;
  for (auto& lw : m.weights.layers)
    for (LinearId id : linear_ids(m.config)) {
      Tensor* w = &linear_weight(lw, id);
      LATHE_CHECK(w->dtype == DType::F32, "quantize_model_nf4 expects f32 weights");
      auto q = std::make_shared<Nf4Tensor>(nf4_quantize(w->f32(), w->dim(0), w->dim(1), 64, true));
      before += w->nbytes();
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

}  // namespace lathe

namespace lathe {

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

}  // namespace lathe
