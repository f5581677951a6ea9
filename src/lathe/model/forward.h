// Inference forward: embedding -> L x block (model/block.h) -> final norm -> lm_head.
// Tokens are processed in chunks that append to a KV cache; a sequence scored from scratch is
// one chunk into an empty cache. One call may also carry chunks of several sequences, each with
// its own cache and adapters (batched serving, model/batched_decode.h). Buffers are planned once
// per Forward and reused.
#pragma once
#include <cstdint>
#include <vector>

#include "lathe/core/tensor.h"
#include "lathe/model/block.h"
#include "lathe/model/linear.h"
#include "lathe/model/model.h"
#include "lathe/model/rope.h"

namespace lathe {

struct KVCache {
  int capacity = 0;  // max positions
  int len = 0;       // positions filled
  std::vector<Tensor> k, v;  // per layer [capacity, Hkv*D], rows after RoPE (k) / projection (v)
  static KVCache create(const ModelConfig& c, int capacity);
  // A cache for `tokens` real tokens; with prefix tuning the prefix occupies its first P rows
  // (len starts at P), so real tokens take positions P.. as in Hugging Face.
  static KVCache create_for(const ModelConfig& c, int tokens, const AdapterSet* adapters);
  void clear() { len = 0; }
  size_t bytes() const;
};


// The new tokens of one sequence in a Forward call.
struct SequenceChunk {
  KVCache* cache = nullptr;              // its tokens go at positions cache->len..
  int tokens = 0;
  const AdapterSet* adapters = nullptr;  // null: the Forward's adapters
};

class Forward {
 public:
  // max_chunk: the most tokens passed to one hidden() call. `adapters` (optional) stay owned by
  // the caller and are applied without merging.
  Forward(const Model& m, int max_chunk, const AdapterSet* adapters = nullptr);
  // Runs ids[T] at positions cache->len.. and appends them to the cache. Returns the final
  // normed hidden states [T, C] (valid until the next call).
  const float* hidden(const int32_t* ids, int T, KVCache* cache);
  // Several sequences at once: ids holds chunk 0's tokens, then chunk 1's, ...; each goes into its
  // own cache. Returns the final normed hidden states of all rows, in the same order.
  const float* hidden(const int32_t* ids, const SequenceChunk* chunks, int n);
  // logits[n, V] = hidden_rows[n, C] · lm_head^T.
  void logits(const float* hidden_rows, int n, float* out) const;
  const Model& model() const { return m_; }
  size_t workspace_bytes() const;

 private:
  const Model& m_;
  const AdapterSet* adapters_;
  int max_chunk_;
  RopeFreqs rope_;
  // One call's rows (<= max_chunk): the residual stream x [T,C], the block's activations and scratch.
  std::vector<float> x_;
  BlockRows rows_;
  BlockActs acts_;
  BlockScratch scratch_;
};

}  // namespace lathe
