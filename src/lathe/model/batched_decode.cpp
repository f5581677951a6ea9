#include "lathe/model/batched_decode.h"

#include "lathe/core/error.h"

namespace lathe {

BatchedDecoder::BatchedDecoder(const Model& m, int max_batch) : fwd_(m, max_batch), max_batch_(max_batch) {}

void BatchedDecoder::step(const int32_t* ids, KVCache* const* caches, const AdapterSet* const* adapters, int n,
                          float* logits) {
  LATHE_CHECK(n > 0 && n <= max_batch_, "batch of {} rows, workspace holds {}", n, max_batch_);
  chunks_.resize(n);
  // A request without adapters must not fall back to the Forward's (it has none), so each row
  // names its own set; BlockRows treats any per-sequence set as row groups of the projections.
  for (int i = 0; i < n; i++) chunks_[i] = {caches[i], 1, adapters[i]};
  const float* h = fwd_.hidden(ids, chunks_.data(), n);
  fwd_.logits(h, n, logits);
}

}  // namespace lathe
