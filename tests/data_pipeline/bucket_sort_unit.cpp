// data/bucket_sort.h: the order std::sort gives, on hash-like keys, on keys that all share a top byte
// (one bucket), on many equal keys told apart by the second field, and around the small-array cutoff;
// the same at one thread and at several.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "lathe/data/bucket_sort.h"

namespace lathe::data {
namespace {

using Pair = std::pair<uint64_t, int64_t>;

void expect_std_order(std::vector<Pair> v) {
  std::vector<Pair> want = v;
  std::sort(want.begin(), want.end());
  for (int threads : {1, 3}) {
    std::vector<Pair> got = v;
    omp_set_num_threads(threads);
    bucket_sort(got.data(), got.size(), [](const Pair& p) { return size_t(p.first >> 56); }, std::less<>());
    ASSERT_EQ(got, want) << v.size() << " entries, " << threads << " threads";
  }
}

TEST(BucketSort, GivesStdSortsOrder) {
  std::mt19937_64 rng(3);
  for (size_t n : {size_t(0), size_t(1), size_t(1000), (size_t(1) << 16) - 1, size_t(1) << 16, size_t(300000)}) {
    std::vector<Pair> hashes(n), one_bucket(n), equal_keys(n);
    for (size_t i = 0; i < n; i++) {
      hashes[i] = {rng(), int64_t(i)};
      one_bucket[i] = {rng() >> 8, int64_t(rng() % 1000)};              // top byte 0 for all
      equal_keys[i] = {(rng() % 5) << 60 | 7, int64_t(n - i)};          // five keys, each many times
    }
    expect_std_order(hashes);
    expect_std_order(one_bucket);
    expect_std_order(equal_keys);
  }
}

}  // namespace
}  // namespace lathe::data
