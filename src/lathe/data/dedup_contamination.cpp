// Contamination check: which training texts equal, contain or near-duplicate an evaluation prompt.
//
// Three tests per training text, all on dedup_normalize() text:
//   equal      hash map of the normalized prompts (byte-compared on a hash hit);
//   contains   prompts of >= kMinContainedPromptChars bytes are indexed by the hash of their first 16
//              bytes; at every word start of the training text the next 16 bytes are hashed and a hit is
//              verified by comparing the whole prompt and requiring it to end at a word boundary;
//   near       MinHash signatures of the prompts in per-band hash maps; a training text's bands are
//              looked up and hits verified by estimated Jaccard >= threshold (same options as dedup).
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "lathe/data/dedup.h"
#include "lathe/data/dedup_internal.h"

namespace lathe::data {

namespace {
constexpr size_t kAnchorBytes = 16;
static_assert(kAnchorBytes <= kMinContainedPromptChars);
}  // namespace

std::vector<int64_t> contamination_matches(const std::vector<std::string_view>& train_texts,
                                           const std::vector<std::string_view>& eval_prompts,
                                           const MinHashOptions& o) {
  validate_minhash_options(o);
  const int64_t n_train = static_cast<int64_t>(train_texts.size());
  const int64_t n_eval = static_cast<int64_t>(eval_prompts.size());
  const int B = o.bands, R = o.rows, P = o.num_perm;
  detail::Permutations perm(o);

  std::vector<std::string> eval_norm(n_eval);
  std::vector<uint32_t> eval_sig(static_cast<size_t>(n_eval) * P);
  std::unordered_multimap<uint64_t, int64_t> exact, anchors;
  std::vector<std::unordered_multimap<uint64_t, int64_t>> bands(B);
  {
    std::vector<uint64_t> shingles;
    for (int64_t e = 0; e < n_eval; ++e) {
      eval_norm[e] = dedup_normalize(eval_prompts[e]);
      const std::string& s = eval_norm[e];
      if (s.empty()) continue;  // an empty prompt matches nothing
      exact.emplace(exact_hash(s), e);
      if (s.size() >= kMinContainedPromptChars) anchors.emplace(XXH3_64bits(s.data(), kAnchorBytes), e);
      uint32_t* sig = eval_sig.data() + e * P;
      detail::signature_of(s, o, perm, shingles, sig);
      for (int b = 0; b < B; ++b) bands[b].emplace(detail::band_key(sig, b, R), e);
    }
  }
  const int need = static_cast<int>(std::ceil(o.threshold * P - 1e-9));

  std::vector<int64_t> out(n_train, -1);
  detail::for_each_signature(
      n_train, [&](int64_t t) { return train_texts[t]; }, o, perm, 64,
      [&](int64_t t, const std::string& s, const uint32_t* sig) {
        int64_t best = -1;
        auto take = [&best](int64_t e) { if (best < 0 || e < best) best = e; };
        auto [lo, hi] = exact.equal_range(exact_hash(s));
        for (auto it = lo; it != hi; ++it)
          if (eval_norm[it->second] == s) take(it->second);
        if (!anchors.empty() && s.size() >= kMinContainedPromptChars) {
          for (size_t p = 0; p + kMinContainedPromptChars <= s.size(); ++p) {
            if (p > 0 && s[p - 1] != ' ') continue;
            auto [alo, ahi] = anchors.equal_range(XXH3_64bits(s.data() + p, kAnchorBytes));
            for (auto it = alo; it != ahi; ++it) {
              const std::string& q = eval_norm[it->second];
              if (p + q.size() <= s.size() && s.compare(p, q.size(), q) == 0 &&
                  (p + q.size() == s.size() || s[p + q.size()] == ' '))
                take(it->second);
            }
          }
        }
        for (int b = 0; b < B; ++b) {
          auto [blo, bhi] = bands[b].equal_range(detail::band_key(sig, b, R));
          for (auto it = blo; it != bhi; ++it) {
            int64_t e = it->second;
            if (best >= 0 && e >= best) continue;
            const uint32_t* es = eval_sig.data() + e * P;
            int eq = 0;
            for (int p = 0; p < P; ++p) eq += es[p] == sig[p];
            if (eq >= need) take(e);
          }
        }
        out[t] = best;
      });
  return out;
}

}  // namespace lathe::data
