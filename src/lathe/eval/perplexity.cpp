#include "lathe/eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "lathe/core/error.h"
#include "lathe/core/ignore_index.h"
#include "lathe/kernels/cpu/cpu.h"

namespace lathe::eval {

void score_window(Forward& fwd, const int32_t* ids, const int32_t* targets, int n, double* nll, int64_t* count,
                  const AdapterSet* adapters) {
  if (n < 2) return;
  const ModelConfig& c = fwd.model().config;
  KVCache cache = KVCache::create_for(c, n, adapters);
  const float* h = fwd.hidden(ids, n, &cache);
  constexpr int kRows = 64;
  std::vector<float> logits(size_t(kRows) * c.vocab_size);
  for (int r0 = 0; r0 < n - 1; r0 += kRows) {
    int rows = std::min(kRows, n - 1 - r0);
    const int32_t* t = targets ? targets + r0 : ids + r0 + 1;
    if (targets && std::all_of(t, t + rows, [](int32_t x) { return x < 0; })) continue;  // nothing to score
    fwd.logits(h + size_t(r0) * c.hidden_size, rows, logits.data());
    int64_t cnt = 0;
    *nll += cross_entropy_sum(logits.data(), t, rows, c.vocab_size, &cnt);
    *count += cnt;
  }
}

PerplexityResult sequence_perplexity(const Model& m, const std::vector<std::vector<int32_t>>& ids,
                                     const std::vector<std::vector<int32_t>>& labels, int context,
                                     const AdapterSet* adapters) {
  LATHE_CHECK(labels.empty() || labels.size() == ids.size());
  if (context < 2) fail("eval", "perplexity context must be at least 2, got {}", context);
  size_t longest = 2;
  for (auto& s : ids) longest = std::max(longest, s.size());
  Forward fwd(m, int(std::min<size_t>(longest, size_t(context))), adapters);
  double nll = 0;
  int64_t count = 0;
  std::vector<int32_t> targets;
  for (size_t i = 0; i < ids.size(); i++) {
    const auto& s = ids[i];
    if (!labels.empty()) {  // labels[j] is what position j-1 predicts
      LATHE_CHECK(labels[i].size() == s.size(), "labels {} vs ids {}", labels[i].size(), s.size());
      targets.assign(s.size(), kIgnoreIndex);
      for (size_t j = 1; j < s.size(); j++) targets[j - 1] = labels[i][j];
    }
    for (size_t w = 0; w < s.size(); w += size_t(context)) {
      int n = int(std::min(s.size() - w, size_t(context)));
      score_window(fwd, s.data() + w, labels.empty() ? nullptr : targets.data() + w, n, &nll, &count, adapters);
    }
  }
  PerplexityResult r;
  r.tokens = count;
  r.nll = count ? nll / double(count) : 0.0;
  r.ppl = count ? std::exp(r.nll) : 0.0;
  return r;
}

}  // namespace lathe::eval
