// Decode GEMV y = W x on SmolLM2-135M's MLP shapes (W [1536, 576]: gate/up; W [576, 1536]: down) with
// F32 weights (matmul_forward, i.e. OpenBLAS sgemv) against Q8_0 and Q4_0 weights (qmatmul_forward,
// activation quantization included), 1 and 2 threads, google benchmark.
//   cold: the product cycles through copies of W totalling >= 64 MiB (8x this machine's L3), so every
//         call streams its weights from memory, as decode does across a model's layers;
//   hot:  one copy, cache resident: the kernels' arithmetic ceiling.
// Each GEMV is one token's worth of that matrix. Counters: GB/s = weight bytes read per second,
// tok/s = products per second. The summary prints each quantized run's speed-up over F32 with the same
// shape, mode and threads.
// The instruction set follows LATHE_CPU_ISA (scalar|avx2|avx512|avx512vnni; both lathe's kernels and OpenBLAS's
// core): bench/qgemv_bench.sh runs it natively and pinned to AVX2.
// Usage: qgemv_bench [google benchmark flags, e.g. --benchmark_min_time=0.5]
#include <benchmark/benchmark.h>
#include <cblas.h>

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

// kSgemv: the same F32 weights through OpenBLAS's sgemv, the reference lathe's own GEMV replaced.
enum Kind { kF32 = 0, kQ8 = 1, kQ4 = 2, kSgemv = 3 };
const char* kKindName[] = {"F32", "Q8_0", "Q4_0", "sgemv"};

struct Weights {
  std::vector<std::vector<float>> f32;
  std::vector<std::vector<uint8_t>> q;
  size_t bytes = 0;  // of one copy
};

// Copies of one random matrix in the given storage: 1 (hot) or enough for kColdBytes (cold).
const Weights& weights(Kind kind, int N, int K, bool cold) {
  if (kind == kSgemv) kind = kF32;
  static std::map<std::string, Weights> cache;
  const std::string key = std::to_string(kind) + "/" + std::to_string(N) + "/" + std::to_string(K) + "/" + (cold ? "c" : "h");
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::mt19937 rng(N * 31 + K);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(size_t(N) * K);
  for (auto& v : w) v = nd(rng);
  Weights out;
  const lathe::QType t = kind == kQ8 ? lathe::QType::Q8_0 : lathe::QType::Q4_0;
  out.bytes = kind == kF32 ? w.size() * 4 : size_t(N) * lathe::qblock_row_bytes(t, K);
  const size_t copies = cold ? (kColdBytes + out.bytes - 1) / out.bytes : 1;
  for (size_t c = 0; c < copies; c++) {
    if (kind == kF32) {
      out.f32.push_back(w);
    } else {
      std::vector<uint8_t> q(out.bytes);
      for (int n = 0; n < N; n++)
        lathe::quantize_row(t, w.data() + size_t(n) * K, q.data() + size_t(n) * lathe::qblock_row_bytes(t, K), K);
      out.q.push_back(std::move(q));
    }
  }
  return cache.emplace(key, std::move(out)).first->second;
}

void BM_gemv(benchmark::State& state) {
  const Kind kind = Kind(state.range(0));
  const int N = int(state.range(1)), K = int(state.range(2)), threads = int(state.range(3));
  const bool cold = state.range(4) != 0;
  const Weights& w = weights(kind, N, K, cold);
  lathe::cpu_set_num_threads(threads);
  std::vector<float> x(K), y(N);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> scratch(lathe::qmatmul_scratch_bytes(1, K));
  const size_t copies = kind == kF32 || kind == kSgemv ? w.f32.size() : w.q.size();
  size_t c = 0;
  for (auto _ : state) {
    if (kind == kSgemv)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, w.f32[c].data(), K, x.data(), 1, 0.0f, y.data(), 1);
    else if (kind == kF32)
      lathe::matmul_forward(y.data(), x.data(), w.f32[c].data(), nullptr, 1, K, N);
    else
      lathe::qmatmul_forward(y.data(), x.data(), w.q[c].data(), kind == kQ8 ? lathe::QType::Q8_0 : lathe::QType::Q4_0,
                             nullptr, 1, K, N, scratch.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    if (++c == copies) c = 0;
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(w.bytes));
  state.counters["GB/s"] = benchmark::Counter(double(state.iterations()) * double(w.bytes) * 1e-9,
                                              benchmark::Counter::kIsRate);
  state.counters["tok/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(std::string(kKindName[kind]) + " " + std::to_string(N) + "x" + std::to_string(K) + " t" +
                 std::to_string(threads) + (cold ? " cold" : " hot"));
}

// Keeps each run's time per iteration for the ratio table.
class Collect : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds;  // label -> s per GEMV
  std::map<std::string, double> gbs;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.iterations == 0) continue;
      seconds[r.report_label] = r.GetAdjustedRealTime() * 1e-9;  // default time unit: ns
      auto it = r.counters.find("GB/s");
      if (it != r.counters.end()) gbs[r.report_label] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int shapes[2][2] = {{1536, 576}, {576, 1536}};
  for (int cold : {1, 0})
    for (auto& s : shapes)
      for (int threads : {1, 2})
        for (int kind : {kSgemv, kF32, kQ8, kQ4})
          benchmark::RegisterBenchmark("gemv", BM_gemv)->Args({kind, s[0], s[1], threads, cold})->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Collect rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  std::printf("\nquant kernels: %s   OpenBLAS via LATHE_CPU_ISA=%s\n", lathe::qisa_name(lathe::qisa_active()),
              std::getenv("LATHE_CPU_ISA") ? std::getenv("LATHE_CPU_ISA") : "(native)");
  std::printf("%-22s %10s %10s %10s %10s   %10s %8s %8s\n", "shape N x K, threads", "sgemv GB/s", "F32 GB/s",
              "Q8_0 GB/s", "Q4_0 GB/s", "F32/sgemv", "Q8_0/F32", "Q4_0/F32");
  for (int cold : {1, 0})
    for (auto& s : shapes)
      for (int threads : {1, 2}) {
        auto label = [&](int kind) {
          return std::string(kKindName[kind]) + " " + std::to_string(s[0]) + "x" + std::to_string(s[1]) + " t" +
                 std::to_string(threads) + (cold ? " cold" : " hot");
        };
        if (!rep.seconds.count(label(kF32)) || !rep.seconds.count(label(kQ8)) || !rep.seconds.count(label(kQ4)) ||
            !rep.seconds.count(label(kSgemv)))
          continue;
        const double f = rep.seconds[label(kF32)];
        char name[64];
        std::snprintf(name, sizeof name, "%dx%d t%d %s", s[0], s[1], threads, cold ? "cold" : "hot");
        std::printf("%-22s %10.1f %10.1f %10.1f %10.1f   %9.2fx %7.2fx %7.2fx\n", name, rep.gbs[label(kSgemv)],
                    rep.gbs[label(kF32)], rep.gbs[label(kQ8)], rep.gbs[label(kQ4)], rep.seconds[label(kSgemv)] / f,
                    f / rep.seconds[label(kQ8)], f / rep.seconds[label(kQ4)]);
      }
  return 0;
}
