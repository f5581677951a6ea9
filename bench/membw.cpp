// Memory read bandwidth, STREAM-like: T threads each sum their slice of a buffer far larger than the
// last-level cache, the best of REPS passes (STREAM's convention: the best pass is the one the other
// jobs on a shared machine disturbed least). bench/decode_bench.sh divides it by the bytes a decoded
// token reads to get the roofline tokens/s, the speed a decoder that only streams its weights would reach.
// Usage: membw [THREADS=1] [MIB=512] [REPS=5]   prints one JSON line: {"threads", "mib", "gb_s"}
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

// Four independent integer sums: integer adds vectorize without -ffast-math and do not bound the loop
// by one add's latency, so the loads are what limits it.
uint64_t sum_slice(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; i++) a += p[i];
  return a + b + c + d;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const size_t mib = argc > 2 ? size_t(std::atoll(argv[2])) : 512;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  if (threads < 1 || mib < 1 || reps < 1) {
    std::fprintf(stderr, "usage: membw [THREADS>=1] [MIB>=1] [REPS>=1]\n");
    return 2;
  }
  const size_t n = mib * (size_t(1) << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; i++) buf[i] = i;  // touched, so every page is resident before timing
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  double best = 0;
  for (int r = 0; r < reps; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
      pool.emplace_back([&, t] {
        const size_t lo = n * size_t(t) / size_t(threads), hi = n * size_t(t + 1) / size_t(threads);
        sums[size_t(t)] = sum_slice(buf.data() + lo, hi - lo);
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / s / 1e9);
  }
  uint64_t check = 0;
  for (uint64_t s : sums) check += s;
  // The checksum is printed so the sums cannot be optimised away.
  std::printf("{\"threads\": %d, \"mib\": %zu, \"gb_s\": %.2f, \"checksum\": %llu}\n", threads, mib, best,
              (unsigned long long)check);
  return 0;
}
