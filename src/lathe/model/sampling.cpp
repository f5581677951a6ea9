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

  cand_.clear();
  for (int i = 0; i < V; i++) cand_.emplace_back(logits[i] / p_.temperature, i);
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < keep) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    keep = size_t(p_.top_k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  cand_.resize(keep);
  // Softmax over the kept candidates (sorted, so cand_[0] holds the max).
  float mx = cand_[0].first;
  double sum = 0;
  std::vector<double> prob(keep);
  for (size_t i = 0; i < keep; i++) sum += (prob[i] = std::exp(double(cand_[i].first - mx)));
  for (auto& p : prob) p /= sum;
  if (p_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p (at least one token)
    double acc = 0;
    size_t n = 0;
    while (n < keep) {
      acc += prob[n++];
      if (acc >= p_.top_p) break;
    }
    keep = n;
  }
  if (p_.min_p > 0.0f) {  // drop tokens below min_p x the top probability
    double floor = p_.min_p * prob[0];
    size_t n = 1;
    while (n < keep && prob[n] >= floor) n++;
    keep = n;
  }
  double total = 0;
  for (size_t i = 0; i < keep; i++) total += prob[i];
  double r = double(rng_.uniform()) * total, acc = 0;
  for (size_t i = 0; i < keep; i++) {
    acc += prob[i];
    if (r < acc) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace lathe
