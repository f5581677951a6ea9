// Decode GEMV y = W x with every weight type lathe multiplies in place, against F32 (OpenBLAS sgemv):
// Q8_0, Q4_0, Q4_K, Q6_K (qmatmul_forward, activation quantization included) and F16, BF16 (f32
// activations), 1 and 2 threads, google benchmark. Shapes: SmolLM2-135M's down_proj W [576, 1536]
// (its other matrices have K = 576, which K-quants cannot block) and a square W [2048, 2048].
//   cold: the product cycles through copies of W totalling >= 64 MiB, so weights stream from memory
//         as in decode across layers;  hot: one copy in cache (the kernels' arithmetic ceiling).
// The summary prints tokens/s (products per second) over F32's for the same shape, mode and threads.
// Instruction set: LATHE_CPU_ISA (scalar|avx2|avx512|avx512vnni). Usage: qgemv_kquant_bench [benchmark flags];
// with --benchmark_repetitions=N the summary uses each run's median.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/qblock.h"

namespace {

constexpr size_t kColdBytes = size_t(64) << 20;
constexpr int kKinds = 7;
const char* kName[kKinds] = {"F32", "Q8_0", "Q4_0", "Q4_K", "Q6_K", "F16", "BF16"};
const lathe::QType kType[kKinds] = {lathe::QType::F16,  lathe::QType::Q8_0, lathe::QType::Q4_0, lathe::QType::Q4_K,
                                    lathe::QType::Q6_K, lathe::QType::F16,  lathe::QType::BF16};  // [0] unused

struct Weights {
  std::vector<std::vector<float>> f32;
  std::vector<std::vector<uint8_t>> q;
  size_t bytes = 0;
};

const Weights& weights(int kind, int N, int K, bool cold) {
  static std::map<std::string, Weights> cache;
  const std::string key = std::to_string(kind) + "/" + std::to_string(N) + "/" + std::to_string(K) + (cold ? "c" : "h");
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::mt19937 rng(N * 31 + K);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(size_t(N) * K);
  for (auto& v : w) v = nd(rng);
  Weights out;
  const size_t rb = kind == 0 ? size_t(K) * 4 : lathe::qblock_row_bytes(kType[kind], K);
  out.bytes = size_t(N) * rb;
  const size_t copies = cold ? (kColdBytes + out.bytes - 1) / out.bytes : 1;
  for (size_t c = 0; c < copies; c++) {
    if (kind == 0) {
      out.f32.push_back(w);
      continue;
    }
    std::vector<uint8_t> q(out.bytes);
    for (int n = 0; n < N; n++) lathe::quantize_row(kType[kind], w.data() + size_t(n) * K, q.data() + n * rb, K);
    out.q.push_back(std::move(q));
  }
  return cache.emplace(key, std::move(out)).first->second;
}

std::string label(int kind, int N, int K, int threads, bool cold) {
  return std::string(kName[kind]) + " " + std::to_string(N) + "x" + std::to_string(K) + " t" + std::to_string(threads) +
         (cold ? " cold" : " hot");
}

void BM_gemv(benchmark::State& state) {
  const int kind = int(state.range(0)), N = int(state.range(1)), K = int(state.range(2)), threads = int(state.range(3));
  const bool cold = state.range(4) != 0;
  const Weights& w = weights(kind, N, K, cold);
  lathe::cpu_set_num_threads(threads);
  std::vector<float> x(K), y(N);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> scratch(lathe::qmatmul_scratch_bytes(1, K));
  const size_t copies = kind == 0 ? w.f32.size() : w.q.size();
  size_t c = 0;
  for (auto _ : state) {
    if (kind == 0)
      lathe::matmul_forward(y.data(), x.data(), w.f32[c].data(), nullptr, 1, K, N);
    else
      lathe::qmatmul_forward(y.data(), x.data(), w.q[c].data(), kType[kind], nullptr, 1, K, N, scratch.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    if (++c == copies) c = 0;
  }
  state.counters["GB/s"] = benchmark::Counter(double(state.iterations()) * double(w.bytes) * 1e-9,
                                              benchmark::Counter::kIsRate);
  state.SetLabel(label(kind, N, K, threads, cold));
}

class Collect : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds, gbs;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.iterations == 0) continue;
      // With --benchmark_repetitions the median stands for the label (the machine is shared).
      if (r.run_type == Run::RT_Aggregate ? r.aggregate_name != "median" : r.repetitions > 1) continue;
      seconds[r.report_label] = r.GetAdjustedRealTime();
      auto it = r.counters.find("GB/s");
      if (it != r.counters.end()) gbs[r.report_label] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int shapes[2][2] = {{576, 1536}, {2048, 2048}};
  for (int cold : {1, 0})
    for (auto& s : shapes)
      for (int threads : {1, 2})
        for (int kind = 0; kind < kKinds; kind++)
          benchmark::RegisterBenchmark("gemv", BM_gemv)->Args({kind, s[0], s[1], threads, cold})->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Collect rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  std::printf("\nquant kernels: %s\ntokens/s over F32 (GB/s of weights read in brackets)\n%-20s",
              lathe::qisa_name(lathe::qisa_active()), "shape, threads");
  for (int kind = 0; kind < kKinds; kind++) std::printf(" %15s", kName[kind]);
  std::printf("\n");
  for (int cold : {1, 0})
    for (auto& s : shapes)
      for (int threads : {1, 2}) {
        const std::string f = label(0, s[0], s[1], threads, cold);
        if (!rep.seconds.count(f)) continue;
        std::printf("%-20s", (std::to_string(s[0]) + "x" + std::to_string(s[1]) + " t" + std::to_string(threads) +
                              (cold ? " cold" : " hot")).c_str());
        for (int kind = 0; kind < kKinds; kind++) {
          const std::string l = label(kind, s[0], s[1], threads, cold);
          if (!rep.seconds.count(l)) {
            std::printf(" %15s", "-");
            continue;
          }
          std::printf("   %5.2fx (%4.1f)", rep.seconds[f] / rep.seconds[l], rep.gbs[l]);
        }
        std::printf("\n");
      }
  return 0;
}
