// Sorting millions of hash-keyed entries (dedup's (hash, record) pairs, one MinHash band's (key,
// record) pairs) on every core, in place: the entries are first moved into 256 buckets by the top
// byte of their key (one counting pass and one pass of swaps, no second array: these arrays are what
// is resident when dedup runs), then the buckets are sorted side by side. The order is std::sort's
// with the same comparison, provided it orders by the key first: the result does not depend on the
// thread count. Hash keys spread evenly over the buckets; a skewed key only costs balance.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace lathe::data {

template <class T, class TopByte, class Less>
void bucket_sort(T* a, size_t n, TopByte top_byte, Less less) {
  if (n < (size_t(1) << 16)) {  // small: one sort is cheaper than the passes
    std::sort(a, a + n, less);
    return;
  }
  std::array<size_t, 257> start{};
  for (size_t i = 0; i < n; i++) start[size_t(top_byte(a[i])) + 1]++;
  for (int b = 0; b < 256; b++) start[size_t(b) + 1] += start[size_t(b)];
  std::array<size_t, 256> head;
  for (int b = 0; b < 256; b++) head[size_t(b)] = start[size_t(b)];
  // Each entry is swapped straight into the next free place of its bucket (American flag sort).
  for (int b = 0; b < 256; b++) {
    while (head[size_t(b)] < start[size_t(b) + 1]) {
      T& x = a[head[size_t(b)]];
      const size_t d = top_byte(x);
      if (int(d) == b) {
        head[size_t(b)]++;
        continue;
      }
      std::swap(x, a[head[d]++]);
    }
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < 256; b++) std::sort(a + start[size_t(b)], a + start[size_t(b) + 1], less);
}

}  // namespace lathe::data
