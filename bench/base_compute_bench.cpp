// The frozen base's products at the SmolLM2-135M training shapes (T = 512 rows): OpenBLAS sgemm (what
// --base-compute f32 runs) against oneDNN bf16 and int8 (kernels/cpu/base_compute.h), forward x·Wᵀ
// and input gradient dY·W, interleaved, median of REPS. Prints ms and GFLOP/s per product and the
// speed-up over sgemm. Usage: base_compute_bench [THREADS=2] [REPS=7] [T=512]
// (LATHE_CPU_ISA=avx2 OPENBLAS_CORETYPE=Haswell: both sides on AVX2.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/kernels/cpu/base_compute.h"
#include "lathe/kernels/cpu/cpu.h"

using namespace lathe;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <class F>
void time_ms(F&& f, std::vector<double>& into) {
  const double t0 = now();
  f();
  into.push_back((now() - t0) * 1e3);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2, reps = argc > 2 ? std::atoi(argv[2]) : 7;
  const int T = argc > 3 ? std::atoi(argv[3]) : 512;
  cpu_set_num_threads(threads);
  struct Shape {
    const char* name;
    int in, out;
  };
  const Shape shapes[] = {{"q/o 576x576", 576, 576}, {"k/v 576->192", 576, 192}, {"gate/up 576->1536", 576, 1536},
                          {"down 1536->576", 1536, 576}, {"lm_head 576->49152 (256 rows)", 576, 49152}};
  std::vector<BaseCompute> computes = {BaseCompute::F32};
  for (BaseCompute c : {BaseCompute::BF16, BaseCompute::Int8})
    if (base_compute_available(c)) computes.push_back(c);
    else std::printf("%s: unavailable (%s)\n", base_compute_name(c), base_compute_unavailable_reason(c).c_str());
  std::printf("threads %d, T %d, median of %d interleaved runs; int8 weight range ±%d\n", threads, T, reps,
              base_compute_int8_wmax());
  std::printf("%-30s %-5s %-5s %9s %9s %8s\n", "product", "dir", "comp", "ms", "GFLOP/s", "vs f32");
  double tot[3][2] = {};
  for (const Shape& s : shapes) {
    const int rows = s.out > 10000 ? 256 : T;  // the lm_head runs in 256-row chunks
    Rng r(1);
    std::vector<float> W(size_t(s.out) * s.in), x(size_t(rows) * s.in), y(size_t(rows) * s.out);
    for (auto& v : W) v = 0.02f * r.normal();
    for (auto& v : x) v = r.normal();
    std::vector<float> dy(y.size()), dx(x.size());
    for (auto& v : dy) v = 1e-3f * r.normal();
    std::vector<double> ms[3][2];
    for (int rep = 0; rep < reps + 1; rep++) {  // the first round prepares the weights (not timed)
      for (BaseCompute c : computes) {
        std::vector<double> f, b;
        time_ms([&] {
          if (c == BaseCompute::F32) matmul_forward(y.data(), x.data(), W.data(), nullptr, rows, s.in, s.out);
          else base_compute_forward(c, W.data(), s.out, s.in, x.data(), nullptr, y.data(), rows);
        }, f);
        time_ms([&] {
          if (c == BaseCompute::F32) matmul_backward(dx.data(), nullptr, nullptr, dy.data(), x.data(), W.data(), rows, s.in, s.out);
          else base_compute_backward_input(c, W.data(), s.out, s.in, dy.data(), dx.data(), rows);
        }, b);
        if (rep > 0) ms[int(c)][0].push_back(f[0]), ms[int(c)][1].push_back(b[0]);
      }
    }
    const double flop = 2.0 * rows * s.in * s.out;
    for (int d = 0; d < 2; d++)
      for (BaseCompute c : computes) {
        const double m = median(ms[int(c)][d]), m32 = median(ms[0][d]);
        tot[int(c)][d] += m;
        std::printf("%-30s %-5s %-5s %9.2f %9.1f %7.2fx\n", s.name, d ? "dX" : "fwd", base_compute_name(c), m,
                    flop / m / 1e6, m32 / m);
      }
    base_compute_release();
  }
  for (BaseCompute c : computes)
    std::printf("sum of medians %-5s: fwd %8.2f ms (%.2fx)  dX %8.2f ms (%.2fx)\n", base_compute_name(c),
                tot[int(c)][0], tot[0][0] / tot[int(c)][0], tot[int(c)][1], tot[0][1] / tot[int(c)][1]);
  return 0;
}
