// Allreduce bandwidth through lathe's own Communicator (dist/comm.h), the path the trainer's gradient
// buckets take: `mpirun -np N bench/allreduce_bench [MiB...]` times allreduce_sum of fp32 buffers and
// prints, per size, the time and the bus bandwidth 2(N-1)/N x bytes / time — the figure the ring
// allreduce cost model divides by (docs/distributed.md). Rank 0 prints one JSON line per size.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lathe/dist/comm.h"

int main(int argc, char** argv) {
  lathe::Communicator& w = lathe::world();
  std::vector<double> mib;
  for (int i = 1; i < argc; i++) mib.push_back(std::atof(argv[i]));
  if (mib.empty()) mib = {1, 8, 32, 128, 512};
  const int n = w.size();
  for (double m : mib) {
    const size_t count = size_t(m * 1048576.0 / sizeof(float));
    std::vector<float> buf(count, 1.0f);
    w.allreduce_sum(buf.data(), count);  // warm-up: first-touch pages, connections
    const int reps = m <= 8 ? 20 : m <= 128 ? 5 : 2;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
      std::fill(buf.begin(), buf.end(), 1.0f);
      w.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      w.allreduce_sum(buf.data(), count);
      // The slowest rank decides when the sum is everywhere.
      int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
      w.allreduce_max(&ns, 1);
      best = std::min(best, double(ns) * 1e-9);
    }
    if (buf[0] != float(n)) {
      std::fprintf(stderr, "allreduce_bench: wrong sum %g (want %d)\n", buf[0], n);
      w.abort(1);
    }
    const double bytes = double(count) * sizeof(float);
    if (w.is_root())
      std::printf("{\"ranks\": %d, \"mib\": %.1f, \"seconds\": %.6f, \"bus_gb_per_s\": %.3f}\n", n, m, best,
                  n > 1 ? 2.0 * (n - 1) / n * bytes / best / 1e9 : 0.0);
  }
  return 0;
}
