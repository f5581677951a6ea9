// Next-token sampling. Order of the logit processors follows Hugging Face generate():
// repetition penalty -> temperature -> top-k -> top-p -> min-p, then a draw from the remaining
// distribution. temperature 0 (or do_sample off) is greedy argmax, ties to the lowest id.
#pragma once
#include <cstdint>
#include <vector>

#include "lathe/core/rng.h"

namespace lathe {

struct SamplingParams {
  float temperature = 0.0f;        // 0 = greedy
  int top_k = 0;                   // 0 = off
  float top_p = 1.0f;              // 1 = off
  float min_p = 0.0f;              // 0 = off
  float repetition_penalty = 1.0f; // 1 = off; HF/CTRL rule: logit>0 ? logit/p : logit*p
  float presence_penalty = 0.0f;   // OpenAI: subtract once per token that appeared
  float frequency_penalty = 0.0f;  // OpenAI: subtract per occurrence
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  // Picks the next id from logits[V] (modified in place). `history` holds prompt + generated ids.
  int32_t sample(float* logits, int V, const std::vector<int32_t>& history);

 private:
  SamplingParams p_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> cand_;
  std::vector<double> weight_;
};

int32_t argmax(const float* x, int n);

}  // namespace lathe
