// NF4 linear layer vs the f32 one on SmolLM2-135M's MLP shapes: nf4_matmul_forward (dequantize a
// row tile of W, then sgemm) against matmul_forward on the dequantized weight, plus the backward
// into the input and the dequantization alone. Usage: nf4_bench [threads] [M]
// Prints one JSON line per shape; "ratio" = NF4 GFLOP/s / f32 GFLOP/s (1.0 = dequant is free).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/quant/nf4.h"

namespace {

template <class F>
double best_seconds(F&& f, int reps = 15) {
  f();  // warm-up: page faults, OpenBLAS buffers, thread pool
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void run(int M, int K, int N) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> wf(size_t(N) * K), inp(size_t(M) * K), out(size_t(M) * N), dout(size_t(M) * N),
      dinp(size_t(M) * K), bias(N, 0.0f);
  for (auto& v : wf) v = nd(rng);
  for (auto& v : inp) v = nd(rng) * 50.0f;
  for (auto& v : dout) v = nd(rng);
  lathe::Nf4Tensor w = lathe::nf4_quantize(wf.data(), N, K, 64, true);
  lathe::nf4_dequantize(w, wf.data());  // the f32 baseline multiplies the same values
  std::vector<float> scratch(lathe::nf4_matmul_scratch_floats(w));

  const double flop = 2.0 * M * double(K) * N;
  double t_f32 = best_seconds([&] { lathe::matmul_forward(out.data(), inp.data(), wf.data(), bias.data(), M, K, N); });
  double t_nf4 = best_seconds(
      [&] { lathe::nf4_matmul_forward(out.data(), inp.data(), w, bias.data(), M, K, N, scratch.data()); });
  double t_f32_bw = best_seconds(
      [&] { lathe::matmul_backward(dinp.data(), nullptr, nullptr, dout.data(), inp.data(), wf.data(), M, K, N); });
  double t_nf4_bw = best_seconds(
      [&] { lathe::nf4_matmul_backward_input(dinp.data(), dout.data(), w, M, K, N, scratch.data()); });
  double t_deq = best_seconds([&] { lathe::nf4_dequantize(w, wf.data()); });
  std::printf(
      "{\"M\": %d, \"K\": %d, \"N\": %d, \"f32_fwd_gflops\": %.1f, \"nf4_fwd_gflops\": %.1f, \"fwd_ratio\": %.3f, "
      "\"f32_bwd_in_gflops\": %.1f, \"nf4_bwd_in_gflops\": %.1f, \"bwd_ratio\": %.3f, \"dequant_ms\": %.3f, "
      "\"dequant_gelem_s\": %.2f, \"nf4_bytes\": %zu, \"f32_bytes\": %zu}\n",
      M, K, N, flop / t_f32 / 1e9, flop / t_nf4 / 1e9, t_f32 / t_nf4, flop / t_f32_bw / 1e9, flop / t_nf4_bw / 1e9,
      t_f32_bw / t_nf4_bw, t_deq * 1e3, double(N) * K / t_deq / 1e9, lathe::nf4_bytes(w), sizeof(float) * wf.size());
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  int M = argc > 2 ? std::atoi(argv[2]) : 512;
  lathe::cpu_set_num_threads(threads);
  run(M, 576, 1536);  // SmolLM2-135M gate/up projection
  run(M, 1536, 576);  // down projection
  return 0;
}
