// The logits of a whole sequence through the inference path (Forward + a fresh KV cache): what the
// model tests compare between two loads of one model (GGUF vs HF, quantized vs dequantized, golden).
#pragma once
#include <cstdint>
#include <vector>

#include "lathe/model/forward.h"
#include "lathe/model/model.h"

namespace lathe::test {

inline std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& ids) {
  Forward f(m, int(ids.size()));
  KVCache cache = KVCache::create(m.config, int(ids.size()));
  const float* h = f.hidden(ids.data(), int(ids.size()), &cache);
  std::vector<float> out(ids.size() * size_t(m.config.vocab_size));
  f.logits(h, int(ids.size()), out.data());
  return out;
}

}  // namespace lathe::test
