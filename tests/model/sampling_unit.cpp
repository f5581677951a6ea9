// The sampler draws from the distribution Hugging Face's processors define (temperature -> top-k ->
// top-p -> min-p): checked against a reference that sorts the whole vocabulary, by the set of tokens
// that can appear and by their frequencies over many draws.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "lathe/model/sampling.h"

using lathe::Sampler;
using lathe::SamplingParams;

namespace {

// Reference: the full sort, softmax over top-k, top-p prefix, min-p floor, renormalised.
std::map<int32_t, double> reference(const std::vector<float>& logits, const SamplingParams& p) {
  std::vector<std::pair<float, int32_t>> c;
  for (size_t i = 0; i < logits.size(); i++) c.emplace_back(logits[i] / p.temperature, int32_t(i));
  std::sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  if (p.top_k > 0 && size_t(p.top_k) < c.size()) c.resize(size_t(p.top_k));
  std::vector<double> pr;
  double s = 0;
  for (auto& [l, id] : c) s += pr.emplace_back(std::exp(double(l - c[0].first)));
  for (auto& x : pr) x /= s;
  size_t n = c.size();
  if (p.top_p < 1.0f) {
    double acc = 0;
    n = 0;
    while (n < c.size()) {
      acc += pr[n++];
      if (acc >= p.top_p) break;
    }
  }
  if (p.min_p > 0.0f) {
    size_t m = 1;
    while (m < n && pr[m] >= p.min_p * pr[0]) m++;
    n = m;
  }
  double t = 0;
  for (size_t i = 0; i < n; i++) t += pr[i];
  std::map<int32_t, double> out;
  for (size_t i = 0; i < n; i++) out[c[i].second] = pr[i] / t;
  return out;
}

std::vector<float> random_logits(int V, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> l(static_cast<size_t>(V), 0.0f);
  for (auto& x : l) x = d(rng);
  for (int i = 0; i < V; i += 97) l[size_t(i)] = l[size_t(i / 2)];  // ties, broken by the lower id
  return l;
}

void expect_distribution(const std::vector<float>& logits, const SamplingParams& p, int draws) {
  const auto want = reference(logits, p);
  Sampler s(p);
  std::map<int32_t, int> seen;
  for (int k = 0; k < draws; k++) {
    std::vector<float> l = logits;
    seen[s.sample(l.data(), int(l.size()), {})]++;
  }
  for (auto& [id, n] : seen) ASSERT_TRUE(want.count(id)) << "token " << id << " is outside the allowed set";
  for (auto& [id, q] : want) {
    const double f = double(seen[id]) / draws, sd = std::sqrt(q * (1 - q) / draws);
    EXPECT_NEAR(f, q, 5 * sd + 2e-3) << "token " << id << " top_k " << p.top_k << " top_p " << p.top_p << " min_p " << p.min_p;
  }
}

TEST(Sampler, GreedyIsArgmaxWithTiesToTheLowestId) {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.sample(l.data(), 4, {}), 1);
}

TEST(Sampler, EveryFilterCombinationDrawsTheReferenceDistribution) {
  const std::vector<float> logits = random_logits(300, 7, 1.5f);
  for (int top_k : {0, 5, 40})
    for (float top_p : {1.0f, 0.9f, 0.5f})
      for (float min_p : {0.0f, 0.05f}) {
        SamplingParams p;
        p.temperature = 0.8f;
        p.top_k = top_k;
        p.top_p = top_p;
        p.min_p = min_p;
        p.seed = 11;
        expect_distribution(logits, p, 6000);
      }
}

// A vocabulary of Qwen's size where top-p needs far more than the first sorted chunk, and one where
// min-p keeps many tokens: the lazy sort must extend itself until the filter is decided.
TEST(Sampler, LargeVocabularyFiltersNeedingLongPrefixes) {
  const std::vector<float> flat = random_logits(151936, 3, 0.3f);
  for (auto [top_p, min_p] : {std::pair{0.95f, 0.0f}, std::pair{1.0f, 0.5f}, std::pair{0.3f, 0.2f}}) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = top_p;
    p.min_p = min_p;
    const auto want = reference(flat, p);
    Sampler s(p);
    for (int k = 0; k < 40; k++) {
      std::vector<float> l = flat;
      ASSERT_TRUE(want.count(s.sample(l.data(), int(l.size()), {}))) << "top_p " << top_p << " min_p " << min_p;
    }
    EXPECT_GT(want.size(), 64u);  // more than the first chunk
  }
}

TEST(Sampler, SameSeedSameDraws) {
  const std::vector<float> logits = random_logits(1000, 5, 2.0f);
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 99;
  Sampler a(p), b(p);
  for (int k = 0; k < 200; k++) {
    std::vector<float> la = logits, lb = logits;
    ASSERT_EQ(a.sample(la.data(), 1000, {}), b.sample(lb.data(), 1000, {}));
  }
}

TEST(Sampler, PenaltiesFollowTheHfAndOpenAiRules) {
  std::vector<float> l = {2.0f, -2.0f, 1.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p);
  s.sample(l.data(), 3, {0, 1, 1});
  EXPECT_FLOAT_EQ(l[0], 2.0f / 2.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[1], -2.0f * 2.0f - 0.5f - 0.5f);
  EXPECT_FLOAT_EQ(l[2], 1.0f);
}

}  // namespace
