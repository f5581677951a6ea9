// Pieces of the MinHash implementation shared by near-dup clustering and the contamination check.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/data/dedup.h"

namespace lathe::data::detail {

void shingle_hashes(std::string_view normalized, int n, std::vector<uint64_t>& out);

struct Permutations {
  explicit Permutations(const MinHashOptions& o);
  std::vector<uint64_t> a, b;
};

// sig[0..num_perm) = per-permutation minimum over the text's shingles (all 0xFFFFFFFF when none).
void signature_of(std::string_view normalized, const MinHashOptions& o, const Permutations& perm,
                  std::vector<uint64_t>& shingles_scratch, uint32_t* sig);
uint64_t band_key(const uint32_t* sig, int band, int rows);

// Calls fn(i, normalized, sig) for each i in [0, n) whose text_of(i) is not empty after
// dedup_normalize, in parallel (OpenMP, dynamic chunks of `chunk`), each thread with its own scratch.
template <class TextOf, class Fn>
void for_each_signature(int64_t n, TextOf text_of, const MinHashOptions& o, const Permutations& perm, int chunk,
                        Fn fn) {
#pragma omp parallel
  {
    std::vector<uint64_t> shingles;
    std::vector<uint32_t> sig(o.num_perm);
#pragma omp for schedule(dynamic, chunk)
    for (int64_t i = 0; i < n; ++i) {
      std::string norm = dedup_normalize(text_of(i));
      if (norm.empty()) continue;
      signature_of(norm, o, perm, shingles, sig.data());
      fn(i, norm, sig.data());
    }
  }
}

// Union-find whose root is always the smallest index of the set.
struct UnionFind {
  explicit UnionFind(int64_t n) : parent(n) { for (int64_t i = 0; i < n; ++i) parent[i] = i; }
  int64_t find(int64_t x);
  void unite(int64_t x, int64_t y);
  std::vector<int64_t> parent;
};

}  // namespace lathe::data::detail
