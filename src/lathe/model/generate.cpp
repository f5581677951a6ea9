#include "lathe/model/generate.h"

#include <algorithm>
#include <chrono>

#include "lathe/core/error.h"

namespace lathe {

GenerateResult generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<bool(int32_t)>& on_token, const AdapterSet* adapters) {
  if (prompt.empty()) fail("generate", "the prompt is empty (give at least one token, e.g. BOS)");
  const int V = m.config.vocab_size;
  const int capacity = int(prompt.size()) + std::max(p.max_new_tokens, 0);
  KVCache cache = KVCache::create_for(m.config, capacity, adapters);
  Forward fwd(m, int(prompt.size()), adapters);
  Sampler sampler(p.sampling);
  std::vector<float> logits(V);
  std::vector<int32_t> history = prompt;
  GenerateResult r;
  r.prompt_tokens = int(prompt.size());
  r.finish_reason = "length";
  using clock = std::chrono::steady_clock;

  auto t0 = clock::now();
  const float* h = fwd.hidden(prompt.data(), int(prompt.size()), &cache);
  fwd.logits(h + size_t(prompt.size() - 1) * m.config.hidden_size, 1, logits.data());
  auto t1 = clock::now();
  r.prefill_s = std::chrono::duration<double>(t1 - t0).count();

  for (int i = 0; i < p.max_new_tokens; i++) {
    int32_t next = sampler.sample(logits.data(), V, history);
    r.ids.push_back(next);
    history.push_back(next);
    bool keep_going = !on_token || on_token(next);
    if (std::find(p.stop_ids.begin(), p.stop_ids.end(), next) != p.stop_ids.end()) {
      r.finish_reason = "stop";
      break;
    }
    if (!keep_going) {
      r.finish_reason = "stop";
      break;
    }
    if (i + 1 == p.max_new_tokens) break;
    h = fwd.hidden(&next, 1, &cache);
    fwd.logits(h, 1, logits.data());
  }
  r.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace lathe
