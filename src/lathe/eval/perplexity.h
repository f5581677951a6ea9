// Perplexity: mean negative log-likelihood (natural log) over predicted tokens, the number
// `lathe perplexity` prints and the evaluation report compares across variants (forgetting =
// ppl_variant / ppl_base - 1 on a general-text holdout).
#pragma once
#include <cstdint>
#include <vector>

#include "lathe/model/forward.h"

namespace lathe::eval {

// Adds the NLL sum and the count of predicted tokens of one window ids[n] to *nll / *count; the
// lm_head runs in row blocks so logits never hold more than 64 x V floats. targets (optional)
// gives the id each position predicts, targets[i] for position i (i.e. labels shifted left by one);
// negative targets carry no loss. Without targets, position i predicts ids[i + 1].
void score_window(Forward& fwd, const int32_t* ids, const int32_t* targets, int n, double* nll, int64_t* count,
                  const AdapterSet* adapters);

struct PerplexityResult {
  int64_t tokens = 0;
  double nll = 0;  // mean
  double ppl = 0;  // exp(nll)
};

// Sequences (with optional labels, -100 = no loss, aligned with the ids as in training data) scored
// as consecutive independent windows of `context` tokens. labels may be empty (every token counts).
PerplexityResult sequence_perplexity(const Model& m, const std::vector<std::vector<int32_t>>& ids,
                                     const std::vector<std::vector<int32_t>>& labels, int context,
                                     const AdapterSet* adapters);

}  // namespace lathe::eval
