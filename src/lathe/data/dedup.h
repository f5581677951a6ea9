// Deduplication (pipeline stage 5) and evaluation-set contamination checks.
//
// What is compared: dedup_normalize(text) —
//   1. NFC (utf8proc; only when the text holds combining marks or conjoining Hangul jamo, so plain
//      precomposed Korean and ASCII take a fast path),
//   2. lowercase (ASCII and Unicode simple lowercase),
//   3. punctuation and symbols removed (Unicode categories P* and S*; ASCII !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~),
//   4. whitespace runs (incl. U+00A0, U+3000 and other Z*/Cc) collapsed to one ' ', trimmed.
// Exact dedup: equal xxh3-64 of the normalized text (exact_duplicate_clusters also byte-compares, so a
// 64-bit collision cannot merge two different texts there).
// Near dedup: MinHash over shingles of the normalized text, LSH banding, candidate pairs verified by the
// estimated Jaccard (fraction of equal signature slots) >= threshold, clusters by union-find.
// Keep rule: the first record in input order is kept; every other member of its cluster is dropped.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::data {

uint64_t exact_hash(std::string_view normalized_text);  // XXH3-64, seed 0
std::string dedup_normalize(std::string_view text);

// Defaults: n-gram size, permutations and bands x rows from datatrove's MinhashConfig (n_grams=5,
// num_buckets=14, hashes_per_bucket=8 -> 112 hashes, seed=1); datatrove accepts any bucket match, we
// additionally verify candidates against text-dedup's default threshold 0.7. LSH hit probability for
// Jaccard s is 1-(1-s^8)^14 (~0.56 at 0.7, ~0.77 at 0.75, ~0.92 at 0.8).
struct MinHashOptions {
  int ngram = 5;           // word n-grams; texts with fewer than `ngram` words use character n-grams
  int num_perm = 112;      // must equal bands * rows
  int bands = 14;
  int rows = 8;
  double threshold = 0.7;  // estimated Jaccard a candidate pair must reach
  uint64_t seed = 1;
};

// Throws lathe::Error when the options are inconsistent (num_perm != bands*rows, ngram < 1, ...).
void validate_minhash_options(const MinHashOptions& options);

// The shingle hashes of one normalized text (deduplicated, unordered), as MinHash sees it.
std::vector<uint64_t> minhash_shingles(std::string_view normalized_text, int ngram);
// Signature of one text (normalizes internally): num_perm 32-bit minima.
std::vector<uint32_t> minhash_signature(std::string_view text, const MinHashOptions& options = {});
double minhash_jaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);

// Cluster id per text: the smallest index in its cluster (== own index when unique). So "keep" is
// exactly `clusters[i] == i`. Parallel over texts with OpenMP; deterministic for any thread count.
std::vector<int64_t> near_duplicate_clusters(const std::vector<std::string_view>& texts,
                                             const MinHashOptions& options = {});

// Near dedup for callers that do not hold the texts (the streaming pipeline): each text's band keys
// first, then the clusters from all keys, with the signatures of only the texts in a candidate pair
// recomputed. near_duplicate_clusters is these two steps.
namespace detail {
struct Permutations;
}
class MinHasher {
 public:
  explicit MinHasher(const MinHashOptions& options);  // validates the options
  const MinHashOptions& options() const { return o_; }
  // sig[num_perm] of a normalized text.
  void signature(std::string_view normalized, uint32_t* sig) const;
  // keys[bands] of a normalized text; false (keys untouched) when it is empty, i.e. has no shingles.
  bool band_keys(std::string_view normalized, uint64_t* keys) const;

 private:
  MinHashOptions o_;
  std::shared_ptr<const detail::Permutations> perm_;
};
// fill_band(band, bucket) appends (that band's key, i) for every text i in [0, n) that has keys, in any
// order (one band at a time is all that is held: the keys may live on disk); signatures_of(texts, sigs)
// writes the signature of each text of `texts` (the texts of candidate pairs only, in rising order, so
// that texts on disk are read in one pass) at sigs + k * num_perm.
using BandFill = std::function<void(int band, std::vector<std::pair<uint64_t, int64_t>>& bucket)>;
using SignaturesOf = std::function<void(const std::vector<int64_t>& texts, uint32_t* sigs)>;
std::vector<int64_t> near_clusters_from_keys(int64_t n, const BandFill& fill_band, const SignaturesOf& signatures_of,
                                             const MinHashOptions& options);

// Exact clusters on normalized text, same convention (smallest index of equal normalized texts).
std::vector<int64_t> exact_duplicate_clusters(const std::vector<std::string_view>& texts);

// Contamination: for each training text, the index of an evaluation prompt it equals or contains
// (after normalization; containment only for prompts of >= kMinContainedPromptChars normalized bytes
// so that "yes" does not flag everything) or near-duplicates (MinHash, same options); -1 when clean.
// When several prompts match, the smallest eval index is returned.
inline constexpr size_t kMinContainedPromptChars = 24;
std::vector<int64_t> contamination_matches(const std::vector<std::string_view>& train_texts,
                                           const std::vector<std::string_view>& eval_prompts,
                                           const MinHashOptions& options = {});

}  // namespace lathe::data
