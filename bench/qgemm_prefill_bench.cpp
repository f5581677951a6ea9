// Prefill GEMM out = inp · Wᵀ on the Qwen2.5-0.5B shapes (K = 896 attention and gate/up rows, K = 4864
// down rows), M prompt rows (default 32, as bench/decode_bench.sh's prompt), one thread by default:
// qmatmul_forward with block-quantized weights against the same weights in F32 through
// matmul_forward (OpenBLAS sgemm) — the named reference, in the same run.
// Time is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID, so a loaded machine inflates it less
// than wall time), the minimum over REPS calls, each on a different copy of W (cold: the copies total
// COLD_MB (default 512 MiB, beyond a server's L3), so the weights stream from memory as they do across a model's layers).
// Usage: qgemm_prefill_bench [M] [REPS] [THREADS]; LATHE_CPU_ISA selects lathe's kernels; HOT=1 keeps one
// copy of W (cache resident: the arithmetic ceiling).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/qblock.h"

namespace {

double now(bool wall) {
  timespec ts;
  clock_gettime(wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Shape {
  const char* name;
  int N, K;
};

}  // namespace

int main(int argc, char** argv) {
  const int M = argc > 1 ? std::atoi(argv[1]) : 32;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  const bool hot = std::getenv("HOT") != nullptr;
  // Cold copies total more than the last-level cache (server parts have 100+ MiB of L3): COLD_MB, default 512.
  const size_t cold_bytes = size_t(std::getenv("COLD_MB") ? std::atoi(std::getenv("COLD_MB")) : 512) << 20;  // one copy of W: cache resident, the kernels' arithmetic
  lathe::set_num_threads(threads);
  const bool wall = threads > 1;  // thread CPU time counts one thread only
  const Shape shapes[] = {{"q/o 896x896", 896, 896}, {"gate/up 4864x896", 4864, 896}, {"down 896x4864", 896, 4864}};
  const lathe::QType types[] = {lathe::QType::F16, lathe::QType::Q8_0, lathe::QType::Q4_0, lathe::QType::Q4_K,
                                lathe::QType::Q6_K};
  std::printf("M=%d threads=%d isa=%s, %s per call (min of %d)\n", M, threads, lathe::qisa_name(lathe::qisa_active()),
              wall ? "wall ms" : "thread CPU ms", reps);
  std::printf("%-18s %-6s %9s %9s %8s %9s\n", "shape", "type", "ms", "f32 ms", "f32/this", "GFLOP/s");
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (const Shape& s : shapes) {
    std::vector<float> w(size_t(s.N) * s.K), x(size_t(M) * s.K), out(size_t(M) * s.N);
    for (auto& v : w) v = nd(rng);
    for (auto& v : x) v = nd(rng) * 50.0f;
    const size_t f32_bytes = w.size() * 4;
    const size_t f32_copies = hot ? 1 : std::max<size_t>(1, cold_bytes / f32_bytes + 1);
    std::vector<std::vector<float>> wf(f32_copies, w);
    double f32_best = 1e9;
    for (int r = 0; r < reps; r++) {
      const double t0 = now(wall);
      lathe::matmul_forward(out.data(), x.data(), wf[r % f32_copies].data(), nullptr, M, s.K, s.N);
      f32_best = std::min(f32_best, now(wall) - t0);
    }
    for (lathe::QType t : types) {
      if (s.K % lathe::qtype_block(t) != 0) continue;
      const size_t rb = lathe::qblock_row_bytes(t, s.K), bytes = rb * s.N;
      const size_t copies = hot ? 1 : std::max<size_t>(1, cold_bytes / bytes + 1);
      std::vector<std::vector<uint8_t>> wq(copies, std::vector<uint8_t>(bytes));
      for (int n = 0; n < s.N; n++) lathe::quantize_row(t, w.data() + size_t(n) * s.K, wq[0].data() + n * rb, s.K);
      for (size_t c = 1; c < copies; c++) wq[c] = wq[0];
      std::vector<uint8_t> scratch(lathe::qmatmul_scratch_bytes(M, s.K));
      double best = 1e9;
      for (int r = 0; r < reps; r++) {
        const double t0 = now(wall);
        lathe::qmatmul_forward(out.data(), x.data(), wq[r % copies].data(), t, nullptr, M, s.K, s.N, scratch.data());
        best = std::min(best, now(wall) - t0);
      }
      std::printf("%-18s %-6s %9.3f %9.3f %8.2f %9.1f\n", s.name, lathe::qtype_name(t), best * 1e3, f32_best * 1e3,
                  f32_best / best, 2.0 * M * s.N * s.K / best * 1e-9);
    }
  }
  return 0;
}
