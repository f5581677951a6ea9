#include "lathe/model/generate.h"

#include <algorithm>
#include <chrono>

#include "lathe/core/error.h"

namespace lathe {

GenerationBudget bounded_generation_length(const ModelConfig& c, int64_t prompt_tokens, int64_t requested,
                                           int64_t reserved) {
  if (requested < 0) fail("generate", "max_new_tokens must be >= 0, got {}", requested);
  GenerationBudget b;
  const int64_t context = int64_t(c.max_position_embeddings) - std::max<int64_t>(reserved, 0);
  b.context = int(std::max<int64_t>(context, 0));
  const int64_t room = context - prompt_tokens;
  if (room < 0 || (room == 0 && requested > 0))
    fail("generate", "the prompt has {} tokens{}, which leaves no room in the model's context of {} "
         "(max_position_embeddings); shorten the prompt", prompt_tokens,
         reserved > 0 ? fmt::format(" (+{} prefix positions)", reserved) : "", c.max_position_embeddings);
  b.max_new_tokens = int(std::min(requested, room));
  if (requested > room) {
    b.clamped = true;
    b.message = fmt::format("max_new_tokens {} clamped to {}: the prompt has {} tokens and the model's context "
                            "(max_position_embeddings) is {}", requested, room, prompt_tokens, c.max_position_embeddings);
  }
  return b;
}

GenerateResult generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<bool(int32_t)>& on_token, const AdapterSet* adapters) {
  if (prompt.empty()) fail("generate", "the prompt is empty (give at least one token, e.g. BOS)");
  const int V = m.config.vocab_size;
  // The KV cache is sized from the bounded length, never from the raw request.
  const int max_new = bounded_generation_length(m.config, int64_t(prompt.size()), std::max(p.max_new_tokens, 0),
                                                adapters ? adapters->prefix_len : 0)
                          .max_new_tokens;
  const int capacity = int(prompt.size()) + max_new;
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

  for (int i = 0; i < max_new; i++) {
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
    if (i + 1 == max_new) break;
    h = fwd.hidden(&next, 1, &cache);
    fwd.logits(h, 1, logits.data());
  }
  r.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace lathe
