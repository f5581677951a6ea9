#include "lathe/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace lathe {

int32_t argmax(const float* x, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

int32_t Sampler::sample(float* logits, int V, const std::vector<int32_t>& history) {
  if (p_.repetition_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t id : history)
      if (id >= 0 && id < V) counts[id]++;
    for (auto [id, n] : counts) {
      float& l = logits[id];
      if (p_.repetition_penalty != 1.0f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
      l -= p_.presence_penalty + p_.frequency_penalty * float(n);
    }
  }
  if (p_.temperature <= 0.0f) return argmax(logits, V);

  // No full sort of the vocabulary (at 150K ids it cost more per token than a small model's decode
  // step): top-k is a partial sort, top-p a selection by probability mass (quickselect on halves),
  // min-p a filter. The kept set is the same as after a full sort in the total order (logit, then
  // id); the draw walks it in whatever order the selection left it, which is deterministic.
  cand_.clear();
  for (int i = 0; i < V; i++) cand_.emplace_back(logits[i] / p_.temperature, i);
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < keep) {
    std::nth_element(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    keep = size_t(p_.top_k);
  }
  cand_.resize(keep);
  float mx = cand_[0].first;
  for (size_t i = 1; i < keep; i++) mx = std::max(mx, cand_[i].first);
  weight_.resize(size_t(V));  // exp(logit - max) by token id: one exp per candidate, whatever the order
  double sum = 0;
  for (size_t i = 0; i < keep; i++) sum += (weight_[size_t(cand_[i].second)] = std::exp(double(cand_[i].first - mx)));
  auto prob = [&](size_t i) { return weight_[size_t(cand_[i].second)] / sum; };
  size_t n = keep;  // the candidates left: cand_[0, n)
  if (p_.top_p < 1.0f) {  // the smallest top set whose mass reaches top_p (at least one token)
    size_t lo = 0, hi = keep;  // the answer n is in (lo, hi]; cand_[0, lo) are the top lo, of mass `before`
    double before = 0;
    while (hi - lo > 64) {
      const size_t mid = lo + (hi - lo) / 2;
      std::nth_element(cand_.begin() + lo, cand_.begin() + mid, cand_.begin() + hi, by_logit);
      double m = 0;
      for (size_t i = lo; i < mid; i++) m += prob(i);
      if (before + m >= p_.top_p) {
        hi = mid;
      } else {
        before += m;
        lo = mid;
      }
    }
    std::sort(cand_.begin() + lo, cand_.begin() + hi, by_logit);
    n = lo;
    while (n < hi) {
      before += prob(n++);
      if (before >= p_.top_p) break;
    }
  }
  if (p_.min_p > 0.0f) {  // drop tokens below min_p x the top probability: the max has weight 1
    const double floor = std::min(1.0, double(p_.min_p));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (weight_[size_t(cand_[i].second)] >= floor) std::swap(cand_[m++], cand_[i]);
    n = m;
  }
  double total = 0;
  if (n == keep) total = 1.0;
  else
    for (size_t i = 0; i < n; i++) total += prob(i);
  double r = double(rng_.uniform()) * total, acc = 0;
  for (size_t i = 0; i < n; i++) {
    acc += prob(i);
    if (r < acc) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace lathe
