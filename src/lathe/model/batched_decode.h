// One decode step for several sequences at once: the base weights are read once for all of them (a
// matrix-matrix product over the batch's rows instead of one matrix-vector product per request),
// while each row keeps its own KV cache and position and gets its own adapter's delta through the
// projection hook (AdapterRows). So requests for different adapters (or none) share a step:
// y_i = W x_i (+ b) + Δ_{adapter(i)}(x_i). It is Forward with one single-token chunk per sequence
// (the same blocks, model/block.h); tests check it agrees with one Forward per request.
#pragma once
#include <cstdint>
#include <vector>

#include "lathe/model/forward.h"

namespace lathe {

class BatchedDecoder {
 public:
  BatchedDecoder(const Model& m, int max_batch);
  // ids[n]: each sequence's newest token, appended to caches[i] at its position caches[i]->len.
  // adapters[i] may be null. Writes logits [n, V].
  void step(const int32_t* ids, KVCache* const* caches, const AdapterSet* const* adapters, int n, float* logits);

 private:
  Forward fwd_;
  int max_batch_;
  std::vector<SequenceChunk> chunks_;
};

}  // namespace lathe
