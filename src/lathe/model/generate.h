// Autoregressive generation: prefill the prompt in one chunk (logits only for its last token),
// then decode one token at a time with the KV cache.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "lathe/model/forward.h"
#include "lathe/model/sampling.h"

namespace lathe {

struct GenerateParams {
  SamplingParams sampling;
  int max_new_tokens = 64;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these (it is included)
};

struct GenerateResult {
  std::vector<int32_t> ids;  // generated ids only
  std::string finish_reason; // "stop" or "length"
  double prefill_s = 0, decode_s = 0;
  int prompt_tokens = 0;
};

// on_token (optional) sees each new id as it is produced; returning false stops generation.
GenerateResult generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<bool(int32_t)>& on_token = {}, const AdapterSet* adapters = nullptr);

}  // namespace lathe
