// Deduplication: normalization rules, exact clusters, MinHash estimates against exact Jaccard,
// near-duplicate clusters on constructed edits, threshold behaviour, determinism, contamination.
#include <gtest/gtest.h>
#include <omp.h>

#include <random>
#include <set>

#include "lathe/core/error.h"
#include "lathe/data/dedup.h"

namespace {

using namespace lathe::data;

// A deterministic "document" of n words drawn from a 5,000-word synthetic vocabulary.
std::vector<std::string> words_of(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  static const char* syl[] = {"ka", "ro", "mi", "te", "su", "na", "lo", "pe", "di", "gu", "ba", "ze", "ki", "mo"};
  std::vector<std::string> w;
  for (int i = 0; i < n; ++i) {
    uint32_t id = rng() % 5000;
    std::string s;
    for (int k = 0; k < 3; ++k, id /= 14) s += syl[id % 14];
    w.push_back(s);
  }
  return w;
}
std::string join(const std::vector<std::string>& w) {
  std::string s;
  for (auto& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}
// Replace `k` words at evenly spread positions.
std::string edited(std::vector<std::string> w, int k, uint32_t seed) {
  for (int i = 0; i < k; ++i) w[(i * 37 + seed) % w.size()] = "edit" + std::to_string(i);
  return join(w);
}
double exact_jaccard(const std::string& a, const std::string& b, int n) {
  auto sa = minhash_shingles(dedup_normalize(a), n), sb = minhash_shingles(dedup_normalize(b), n);
  std::set<uint64_t> A(sa.begin(), sa.end()), B(sb.begin(), sb.end()), U = A;
  U.insert(B.begin(), B.end());
  size_t inter = 0;
  for (auto x : A) inter += B.count(x);
  return U.empty() ? 1.0 : double(inter) / U.size();
}

TEST(DedupNormalize, Rules) {
  EXPECT_EQ(dedup_normalize("  Hello,   World!\n\tAgain. "), "hello world again");
  EXPECT_EQ(dedup_normalize("안녕하세요,  세계!"), "안녕하세요 세계");
  EXPECT_EQ(dedup_normalize("a\u3000b\u00a0c"), "a b c");            // ideographic and no-break spaces
  EXPECT_EQ(dedup_normalize("zero\u200bwidth"), "zerowidth");        // format characters dropped
  EXPECT_EQ(dedup_normalize("\u1112\u1161\u11ab"), "\ud55c");        // conjoining jamo -> 한 (NFC)
  EXPECT_EQ(dedup_normalize("Cafe\u0301"), "caf\u00e9");             // combining accent -> é, lowercased
  EXPECT_EQ(dedup_normalize("ÀÉÎ ΣΑΣ"), "àéî σασ");                  // Unicode lowercase
  EXPECT_EQ(dedup_normalize("「인용」 — “quote” … ★"), "인용 quote");  // P* and S* removed
  EXPECT_EQ(dedup_normalize(""), "");
  EXPECT_EQ(dedup_normalize("!!!"), "");
  std::string bad = "ok\xff\xfe end";
  EXPECT_EQ(dedup_normalize(bad), "ok end");  // invalid UTF-8 bytes dropped, no throw
}

TEST(DedupExact, ClustersOnNormalizedText) {
  std::vector<std::string> t = {"Hello world.", "hello, WORLD", "different", "  hello   world!! ", "Different"};
  std::vector<std::string_view> v(t.begin(), t.end());
  auto c = exact_duplicate_clusters(v);
  EXPECT_EQ(c, (std::vector<int64_t>{0, 0, 2, 0, 2}));
  EXPECT_EQ(exact_hash(dedup_normalize(t[0])), exact_hash(dedup_normalize(t[1])));
  EXPECT_NE(exact_hash("a"), exact_hash("b"));
}

TEST(DedupMinHash, EstimateTracksExactJaccard) {
  MinHashOptions o;
  auto base = words_of(1, 120);
  for (int k : {0, 2, 6, 12, 25, 60}) {
    std::string a = join(base), b = edited(base, k, 3);
    double est = minhash_jaccard(minhash_signature(a, o), minhash_signature(b, o));
    double ex = exact_jaccard(a, b, o.ngram);
    // 112 permutations: standard error sqrt(J(1-J)/112) <= 0.048; allow 3.5 sigma.
    EXPECT_NEAR(est, ex, 0.17) << "k=" << k << " exact " << ex;
  }
}

TEST(DedupMinHash, NearDuplicateClustersAndKeepFirst) {
  std::vector<std::string> t;
  for (uint32_t d = 0; d < 20; ++d) t.push_back(join(words_of(100 + d, 150)));
  // Records 20..39: copies of 0..19 with 2 words edited (Jaccard ~0.88) and different punctuation/case.
  for (uint32_t d = 0; d < 20; ++d) {
    std::string e = edited(words_of(100 + d, 150), 2, d);
    e[0] = static_cast<char>(std::toupper(e[0]));
    t.push_back(e + ".");
  }
  // Records 40..59: heavily rewritten (60 of 150 words) -> not near-duplicates at 0.7.
  for (uint32_t d = 0; d < 20; ++d) t.push_back(edited(words_of(100 + d, 150), 60, d));
  std::vector<std::string_view> v(t.begin(), t.end());
  auto c = near_duplicate_clusters(v);
  int found = 0;
  for (int d = 0; d < 20; ++d) {
    EXPECT_EQ(c[d], d);  // originals come first: kept
    found += c[20 + d] == d;
    EXPECT_EQ(c[40 + d], 40 + d) << "heavy rewrite clustered, exact J=" << exact_jaccard(t[d], t[40 + d], 5);
  }
  // LSH hit probability at J~0.88 with 14x8 bands is > 0.99; all 20 expected.
  EXPECT_EQ(found, 20);
}

TEST(DedupMinHash, ThresholdControlsVerification) {
  auto base = words_of(7, 200);
  std::vector<std::string> t = {join(base), edited(base, 8, 1)};  // exact J about 0.7-0.8
  std::vector<std::string_view> v(t.begin(), t.end());
  double ex = exact_jaccard(t[0], t[1], 5);
  ASSERT_GT(ex, 0.55);
  ASSERT_LT(ex, 0.9);
  // More bands of fewer rows so the pair is surely a candidate; then the threshold alone decides.
  MinHashOptions lo;
  lo.bands = 56; lo.rows = 2; lo.num_perm = 112; lo.threshold = 0.3;
  MinHashOptions hi = lo;
  hi.threshold = 0.98;
  EXPECT_EQ(near_duplicate_clusters(v, lo)[1], 0);
  EXPECT_EQ(near_duplicate_clusters(v, hi)[1], 1);
}

TEST(DedupMinHash, DeterministicAcrossThreadCounts) {
  std::vector<std::string> t;
  for (uint32_t d = 0; d < 300; ++d) t.push_back(edited(words_of(d % 60, 80), static_cast<int>(d % 7), d));
  std::vector<std::string_view> v(t.begin(), t.end());
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  auto a = near_duplicate_clusters(v);
  omp_set_num_threads(2);
  auto b = near_duplicate_clusters(v);
  auto c = near_duplicate_clusters(v);
  omp_set_num_threads(saved);
  EXPECT_EQ(a, b);
  EXPECT_EQ(b, c);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LE(a[i], static_cast<int64_t>(i));  // id = smallest member
}

TEST(DedupMinHash, CharacterShinglesForUnspacedText) {
  // Few words (Korean written without spaces, or Chinese/Japanese): character 5-grams.
  std::string a = "대한민국은민주공화국이다대한민국의주권은국민에게있고모든권력은국민으로부터나온다";
  std::string b = "대한민국은민주공화국이다대한민국의주권은국민에게있고모든권력은국민으로부터나온다고한다";
  std::string c = "국가는전통문화의계승발전과민족문화의창달에노력하여야한다";
  EXPECT_GT(minhash_shingles(dedup_normalize(a), 5).size(), 20u);
  std::vector<std::string_view> v = {a, b, c};
  auto cl = near_duplicate_clusters(v);
  EXPECT_EQ(cl, (std::vector<int64_t>{0, 0, 2}));
  // Texts shorter than one n-gram still hash (to one shingle) and empty ones never cluster.
  std::vector<std::string_view> s = {"hi", "hi!", "", "..."};
  EXPECT_EQ(near_duplicate_clusters(s), (std::vector<int64_t>{0, 0, 2, 3}));
}

TEST(DedupMinHash, RejectsInconsistentOptions) {
  MinHashOptions o;
  o.num_perm = 100;
  EXPECT_THROW(validate_minhash_options(o), lathe::Error);
  std::vector<std::string_view> v = {"a"};
  EXPECT_THROW(near_duplicate_clusters(v, o), lathe::Error);
  o = {};
  o.ngram = 0;
  EXPECT_THROW(validate_minhash_options(o), lathe::Error);
  o = {};
  o.threshold = 1.5;
  EXPECT_THROW(validate_minhash_options(o), lathe::Error);
}

TEST(DedupContamination, ExactContainedNearAndClean) {
  std::string q0 = "What is the capital city of France? Answer in one word.";
  std::string q1 = join(words_of(42, 120));
  std::string q2 = "yes";
  std::vector<std::string> train = {
      "what is the capital city of france answer in one word",                 // 0: equal after normalizing
      "Here is a quiz. What is the capital city of France? Answer in one word. Paris.",  // 1: contains q0
      edited(words_of(42, 120), 3, 5),                                          // 2: near-dup of q1
      join(words_of(43, 120)),                                                  // 3: unrelated
      "yes, I agree with everything you said yesterday",                        // 4: q2 too short to count
      "xwhat is the capital city of france answer in one word and more",       // 5: not at a word start
  };
  std::vector<std::string_view> tv(train.begin(), train.end());
  std::vector<std::string_view> ev = {q0, q1, q2};
  auto m = contamination_matches(tv, ev);
  EXPECT_EQ(m, (std::vector<int64_t>{0, 0, 1, -1, -1, -1}));
  // "yes" still matches a training text that *is* "yes" (exact match has no length floor).
  std::vector<std::string_view> tv2 = {"Yes."};
  EXPECT_EQ(contamination_matches(tv2, ev)[0], 2);
  EXPECT_TRUE(contamination_matches({}, ev).empty());
  std::vector<std::string_view> no_eval;
  EXPECT_EQ(contamination_matches(tv, no_eval), std::vector<int64_t>(train.size(), -1));
}

}  // namespace
