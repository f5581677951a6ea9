// Autoregressive generation: prefill the prompt in one chunk (logits only for its last token),
// then decode one token at a time with the KV cache.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
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

// How many new tokens a generation may really produce. `requested` is what the user asked for;
// the prompt plus the new tokens must fit the model's context (max_position_embeddings, less
// `reserved` positions such as prefix-tuning rows), since positions beyond it were never trained
// and every one of them costs KV-cache memory. Like llama.cpp's n_ctx, a request beyond the
// context is clamped, not refused: `max_new_tokens` is the clamped count, `clamped` says it was cut
// (callers print `message` as a warning). Throws "[generate] ..." when `requested` is negative or
// the prompt alone leaves no room (naming the prompt length and the context).
struct GenerationBudget {
  int max_new_tokens = 0;
  bool clamped = false;
  int context = 0;      // positions available to prompt + new tokens
  std::string message;  // the warning to show when clamped
};
GenerationBudget bounded_generation_length(const ModelConfig& c, int64_t prompt_tokens, int64_t requested,
                                           int64_t reserved = 0);

// on_token (optional) sees each new id as it is produced; returning false stops generation.
// p.max_new_tokens is bounded by bounded_generation_length (clamped to the context) before the KV
// cache is sized, so no request can allocate more than the model's context holds.
GenerateResult generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<bool(int32_t)>& on_token = {}, const AdapterSet* adapters = nullptr);

}  // namespace lathe
