// Measures this machine's sgemm throughput through the same OpenBLAS lathe links, for the
// GFLOP/s-vs-peak figures of the other benchmarks. Usage: sgemm_peak [threads] [n]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lathe/kernels/cpu/cpu.h"

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  int n = argc > 2 ? std::atoi(argv[2]) : 2048;
  lathe::cpu_set_num_threads(threads);
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  lathe::matmul_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);  // warm-up
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    lathe::matmul_forward(c.data(), a.data(), b.data(), nullptr, n, n, n);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * double(n) / s / 1e9);
  }
  std::printf("{\"sgemm_n\": %d, \"gflops\": %.1f}\n", n, best);
  return 0;
}
