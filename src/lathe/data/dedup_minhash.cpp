// MinHash + LSH near-duplicate clustering and exact clustering (rules and defaults in dedup.h).
//
// Memory plan for n texts (the texts themselves belong to the caller):
//   band keys   n * bands * 8 bytes (112 B/text at the defaults) kept for the whole run,
//   one band    n * 16 bytes of (key, index) pairs sorted at a time,
//   candidates  8 bytes per candidate pair, then the signatures of only the texts in a candidate pair
//               (num_perm * 4 bytes each), recomputed instead of stored for every text.
#include <omp.h>
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <memory>
#include <unordered_map>

#include "lathe/core/error.h"
#include "lathe/core/utf8.h"
#include "lathe/data/bucket_sort.h"
#include "lathe/data/dedup.h"
#include "lathe/data/dedup_internal.h"

namespace lathe::data {

void validate_minhash_options(const MinHashOptions& o) {
  if (o.ngram < 1) fail("dedup", "minhash ngram must be >= 1, got {}", o.ngram);
  if (o.bands < 1 || o.rows < 1) fail("dedup", "minhash bands and rows must be >= 1, got {} x {}", o.bands, o.rows);
  if (o.num_perm != o.bands * o.rows)
    fail("dedup", "minhash num_perm ({}) must equal bands ({}) x rows ({})", o.num_perm, o.bands, o.rows);
  if (!(o.threshold >= 0.0 && o.threshold <= 1.0))
    fail("dedup", "minhash threshold must be in [0, 1], got {}", o.threshold);
}

namespace detail {

// Word n-grams over the single-spaced normalized text; fewer words than n -> codepoint n-grams; fewer
// codepoints than n -> the whole text is one shingle. Each shingle is the XXH3-64 of its bytes.
void shingle_hashes(std::string_view s, int n, std::vector<uint64_t>& out) {
  out.clear();
  if (s.empty()) return;
  std::vector<uint32_t> starts;  // word starts (or codepoint starts), then a sentinel end
  starts.push_back(0);
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == ' ') starts.push_back(static_cast<uint32_t>(i + 1));
  size_t words = starts.size();
  bool by_word = words >= static_cast<size_t>(n);
  if (!by_word) {
    starts.clear();
    for (size_t i = 0; i < s.size(); ++i)
      if (!utf8_is_continuation(s[i])) starts.push_back(static_cast<uint32_t>(i));
  }
  size_t units = starts.size();
  if (units < static_cast<size_t>(n)) {
    out.push_back(XXH3_64bits(s.data(), s.size()));
    return;
  }
  out.reserve(units - n + 1);
  for (size_t i = 0; i + n <= units; ++i) {
    size_t b = starts[i];
    size_t e = i + n < units ? starts[i + n] - (by_word ? 1 : 0) : s.size();
    out.push_back(XXH3_64bits(s.data() + b, e - b));
  }
}

// Permutation p maps a shingle hash x to ((a_p * x32 + b_p) mod 2^64) >> 32 with x32 the 64-bit hash
// folded to 32 bits and a_p, b_p 64-bit from splitmix64(seed): the multiply-shift family of
// Dietzfelbinger et al., 2-independent, and unlike datatrove's (a*x+b) mod (2^61-1) it vectorizes
// (so signatures are not bitwise comparable with datatrove's; the estimate is the same).
Permutations::Permutations(const MinHashOptions& o) : a(o.num_perm), b(o.num_perm) {
  uint64_t state = o.seed;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (int p = 0; p < o.num_perm; ++p) {
    a[p] = next() | 1;
    b[p] = next();
  }
}

void signature_of(std::string_view normalized, const MinHashOptions& o, const Permutations& perm,
                  std::vector<uint64_t>& shingles, uint32_t* sig) {
  shingle_hashes(normalized, o.ngram, shingles);
  const int P = o.num_perm;
  std::fill(sig, sig + P, 0xFFFFFFFFu);
  const uint64_t* a = perm.a.data();
  const uint64_t* b = perm.b.data();
  for (uint64_t h : shingles) {
    uint64_t x = (h ^ (h >> 32)) & 0xFFFFFFFFull;
#pragma omp simd
    for (int p = 0; p < P; ++p) {
      uint32_t v = static_cast<uint32_t>((a[p] * x + b[p]) >> 32);
      sig[p] = v < sig[p] ? v : sig[p];
    }
  }
}

uint64_t band_key(const uint32_t* sig, int band, int rows) {
  return XXH3_64bits_withSeed(sig + band * rows, sizeof(uint32_t) * rows, static_cast<uint64_t>(band));
}

int64_t UnionFind::find(int64_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}
void UnionFind::unite(int64_t x, int64_t y) {
  x = find(x);
  y = find(y);
  if (x == y) return;
  if (x < y) parent[y] = x; else parent[x] = y;  // the smaller index stays the root: "keep first"
}

}  // namespace detail

std::vector<uint64_t> minhash_shingles(std::string_view normalized_text, int ngram) {
  std::vector<uint64_t> out;
  detail::shingle_hashes(normalized_text, ngram, out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<uint32_t> minhash_signature(std::string_view text, const MinHashOptions& options) {
  validate_minhash_options(options);
  detail::Permutations perm(options);
  std::vector<uint32_t> sig(options.num_perm);
  std::vector<uint64_t> shingles;
  detail::signature_of(dedup_normalize(text), options, perm, shingles, sig.data());
  return sig;
}

double minhash_jaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  LATHE_CHECK(a.size() == b.size() && !a.empty(), "signature sizes {} vs {}", a.size(), b.size());
  size_t eq = 0;
  for (size_t i = 0; i < a.size(); ++i) eq += a[i] == b[i];
  return static_cast<double>(eq) / static_cast<double>(a.size());
}

MinHasher::MinHasher(const MinHashOptions& o) : o_(o) {
  validate_minhash_options(o);
  perm_ = std::make_shared<detail::Permutations>(o);
}

void MinHasher::signature(std::string_view normalized, uint32_t* sig) const {
  thread_local std::vector<uint64_t> shingles;
  detail::signature_of(normalized, o_, *perm_, shingles, sig);
}

bool MinHasher::band_keys(std::string_view normalized, uint64_t* keys) const {
  if (normalized.empty()) return false;
  thread_local std::vector<uint32_t> sig;
  sig.resize(size_t(o_.num_perm));
  signature(normalized, sig.data());
  for (int band = 0; band < o_.bands; ++band) keys[band] = detail::band_key(sig.data(), band, o_.rows);
  return true;
}

std::vector<int64_t> near_clusters_from_keys(int64_t n, const BandFill& fill_band, const SignaturesOf& signatures_of,
                                             const MinHashOptions& o) {
  validate_minhash_options(o);
  const int B = o.bands, P = o.num_perm;
  // Per band, sort (key, index); every member of a bucket pairs with the bucket's first index.
  std::vector<std::pair<int64_t, int64_t>> cand;
  std::vector<std::pair<uint64_t, int64_t>> bucket;
  bucket.reserve(n);
  for (int band = 0; band < B; ++band) {
    bucket.clear();
    fill_band(band, bucket);
    bucket_sort(bucket.data(), bucket.size(), [](const std::pair<uint64_t, int64_t>& p) { return size_t(p.first >> 56); },
                std::less<>());
    for (size_t s = 0; s < bucket.size();) {
      size_t e = s + 1;
      while (e < bucket.size() && bucket[e].first == bucket[s].first) ++e;
      for (size_t k = s + 1; k < e; ++k) cand.emplace_back(bucket[s].second, bucket[k].second);
      s = e;
    }
  }
  std::sort(cand.begin(), cand.end());
  cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
  // The signatures of the texts that appear in a candidate pair, recomputed; verify, unite.
  std::vector<int64_t> involved;
  involved.reserve(cand.size() * 2);
  for (auto& [x, y] : cand) { involved.push_back(x); involved.push_back(y); }
  std::sort(involved.begin(), involved.end());
  involved.erase(std::unique(involved.begin(), involved.end()), involved.end());
  std::vector<uint32_t> sigs(involved.size() * P);
  signatures_of(involved, sigs.data());
  auto slot = [&](int64_t idx) {
    return std::lower_bound(involved.begin(), involved.end(), idx) - involved.begin();
  };
  const int need = static_cast<int>(std::ceil(o.threshold * P - 1e-9));
  detail::UnionFind uf(n);
  for (auto& [x, y] : cand) {
    const uint32_t* sx = sigs.data() + slot(x) * P;
    const uint32_t* sy = sigs.data() + slot(y) * P;
    int eq = 0;
    for (int p = 0; p < P; ++p) eq += sx[p] == sy[p];
    if (eq >= need) uf.unite(x, y);
  }
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = uf.find(i);
  return out;
}

std::vector<int64_t> near_duplicate_clusters(const std::vector<std::string_view>& texts, const MinHashOptions& o) {
  const MinHasher mh(o);
  const int64_t n = static_cast<int64_t>(texts.size());
  const int B = o.bands;
  // Band keys per text, kept for the whole run (n * bands * 8 bytes); texts with no shingles (empty
  // after normalization) get none.
  std::vector<uint64_t> keys(static_cast<size_t>(n) * B);
  std::vector<uint8_t> has_shingles(n, 0);
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < n; ++i) has_shingles[i] = mh.band_keys(dedup_normalize(texts[i]), keys.data() + i * B);
  return near_clusters_from_keys(
      n,
      [&](int band, std::vector<std::pair<uint64_t, int64_t>>& bucket) {
        for (int64_t i = 0; i < n; ++i)
          if (has_shingles[i]) bucket.emplace_back(keys[i * B + band], i);
      },
      [&](const std::vector<int64_t>& which, uint32_t* sigs) {
        const int P = o.num_perm;
#pragma omp parallel for schedule(dynamic, 64)
        for (int64_t k = 0; k < static_cast<int64_t>(which.size()); ++k)
          mh.signature(dedup_normalize(texts[which[k]]), sigs + k * P);
      },
      o);
}

std::vector<int64_t> exact_duplicate_clusters(const std::vector<std::string_view>& texts) {
  const int64_t n = static_cast<int64_t>(texts.size());
  std::vector<std::string> norm(n);
  std::vector<uint64_t> h(n);
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < n; ++i) {
    norm[i] = dedup_normalize(texts[i]);
    h[i] = exact_hash(norm[i]);
  }
  std::vector<int64_t> out(n);
  std::unordered_map<uint64_t, std::vector<int64_t>> first;  // hash -> representatives seen so far
  first.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    auto& reps = first[h[i]];
    out[i] = i;
    for (int64_t r : reps)
      if (norm[r] == norm[i]) { out[i] = r; break; }
    if (out[i] == i) reps.push_back(i);
  }
  return out;
}

}  // namespace lathe::data
