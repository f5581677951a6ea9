// One decode step for several sequences at once: the base weights are read once for all of them (a
// matrix-matrix product over the batch's rows instead of one matrix-vector product per request),
// while each row keeps its own KV cache and position and gets its own adapter's delta. So requests
// for different adapters (or none) share a step: y_i = W x_i (+ b) + Δ_{adapter(i)}(x_i).
// The same blocks as Forward (model/forward.cpp), arranged row-wise; tests check the two agree.
#pragma once
#include <cstdint>
#include <vector>

#include "lathe/model/forward.h"

namespace lathe::serve {

class BatchedDecoder {
 public:
  BatchedDecoder(const Model& m, int max_batch);
  // ids[n]: each sequence's newest token, appended to caches[i] at its position caches[i]->len.
  // adapters[i] may be null. Writes logits [n, V].
  void step(const int32_t* ids, KVCache* const* caches, const AdapterSet* const* adapters, int n, float* logits);

 private:
  // y[n, out] = x W^T (+ b) for the whole batch, then each row's adapter delta.
  void linear(int l, LinearId id, const float* x, float* y, int n, const AdapterSet* const* adapters);

  const Model& m_;
  int max_batch_;
  std::vector<float> inv_freq_;
  // Activations for n <= max_batch rows: x/xn/proj [n,C], q/att [n,H*D], k/v [n,Hkv*D], gate/up [n,F],
  // cos/sin [n,D/2] (each row at its own position), scores [H*S] for one row's attention.
  std::vector<float> x_, xn_, q_, k_, v_, att_, proj_, gate_, up_, cos_, sin_, scores_;
};

}  // namespace lathe::serve
