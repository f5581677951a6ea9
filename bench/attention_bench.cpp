// Training attention at one shape: lathe's blocked forward and backward (attention.cpp) against a
// named reference in the same run — the eager formulation PyTorch 1.13 runs without fused attention
// (per head: S = QKᵀ·scale over all T×T, causal mask, softmax, O = PV; backward through the kept
// [H, T, T] probabilities), with the same OpenBLAS.
// Usage: attention_bench [T=512] [H=9] [Hkv=3] [D=64] [threads=1] [reps=7] [lathe|eager|both=both]
// (one side alone is for a profiler).
// Prints median ms and the useful (causal) GFLOP/s of each, and lathe's ratio over the reference.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "lathe/kernels/cpu/cpu.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double median_ms(int reps, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    const double t0 = now_s();
    f();
    t.push_back((now_s() - t0) * 1e3);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The reference: per head, full T×T products (the masked half computed and discarded).
struct Eager {
  int T, H, Hkv, D;
  std::vector<float> P, dP;  // [H, T, T] kept for the backward, as autograd keeps them
  void forward(float* out, const float* q, const float* k, const float* v) {
    const float scale = 1.0f / std::sqrt(float(D));
    P.resize(size_t(H) * T * T);
#pragma omp parallel for schedule(static)
    for (int h = 0; h < H; h++) {
      const int g = h / (H / Hkv);
      float* p = P.data() + size_t(h) * T * T;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, q + size_t(h) * D, H * D,
                  k + size_t(g) * D, Hkv * D, 0.0f, p, T);
      for (int t = 0; t < T; t++) {
        float* r = p + size_t(t) * T;
        float m = -INFINITY, s = 0.0f;
        for (int j = 0; j <= t; j++) m = std::max(m, r[j]);
        for (int j = 0; j < T; j++) s += (r[j] = j <= t ? std::exp(r[j] - m) : 0.0f);
        for (int j = 0; j < T; j++) r[j] /= s;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, p, T, v + size_t(g) * D, Hkv * D,
                  0.0f, out + size_t(h) * D, H * D);
    }
  }
  void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                const float* v) {
    const float scale = 1.0f / std::sqrt(float(D));
    dP.resize(size_t(H) * T * T);
    // Heads of one kv head add into its dk/dv: one kv head per job.
#pragma omp parallel for schedule(static)
    for (int g = 0; g < Hkv; g++)
      for (int h = g * (H / Hkv); h < (g + 1) * (H / Hkv); h++) {
        const float* p = P.data() + size_t(h) * T * T;
        float* ds = dP.data() + size_t(h) * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dout + size_t(h) * D, H * D,
                    v + size_t(g) * D, Hkv * D, 0.0f, ds, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, p, T, dout + size_t(h) * D, H * D,
                    1.0f, dv + size_t(g) * D, Hkv * D);
        for (int t = 0; t < T; t++) {
          const float* pr = p + size_t(t) * T;
          float* r = ds + size_t(t) * T;
          float s = 0.0f;
          for (int j = 0; j < T; j++) s += r[j] * pr[j];
          for (int j = 0; j < T; j++) r[j] = pr[j] * (r[j] - s) * scale;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, ds, T, k + size_t(g) * D,
                    Hkv * D, 1.0f, dq + size_t(h) * D, H * D);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, ds, T, q + size_t(h) * D, H * D,
                    1.0f, dk + size_t(g) * D, Hkv * D);
      }
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int T = argc > 1 ? std::atoi(argv[1]) : 512, H = argc > 2 ? std::atoi(argv[2]) : 9;
  const int Hkv = argc > 3 ? std::atoi(argv[3]) : 3, D = argc > 4 ? std::atoi(argv[4]) : 64;
  const int threads = argc > 5 ? std::atoi(argv[5]) : 1, reps = argc > 6 ? std::atoi(argv[6]) : 7;
  const std::string which = argc > 7 ? argv[7] : "both";
  const bool run_lathe = which != "eager", run_eager = which != "lathe";
  if (T < 1 || H < 1 || Hkv < 1 || H % Hkv || D < 1 || reps < 1) {
    std::fprintf(stderr, "usage: attention_bench [T] [H] [Hkv (divides H)] [D] [threads] [reps]\n");
    return 2;
  }
  lathe::cpu_set_num_threads(threads);
  std::srand(1);
  auto rnd = [](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = float(std::rand()) / float(RAND_MAX) - 0.5f;
    return v;
  };
  const auto q = rnd(size_t(T) * H * D), k = rnd(size_t(T) * Hkv * D), v = rnd(size_t(T) * Hkv * D);
  const auto dout = rnd(size_t(T) * H * D);
  std::vector<float> out(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
  // Useful FLOPs: the causal half of QKᵀ and PV forward; the backward's dP, dV, dQ, dK and, for lathe,
  // the recomputed QKᵀ are not counted (the same work for both).
  const double half = double(T) * (T + 1) / 2.0;
  const double fwd_gf = 2.0 * 2.0 * H * half * D / 1e9, bwd_gf = 4.0 * 2.0 * H * half * D / 1e9;
  auto zero = [&] {
    std::fill(dq.begin(), dq.end(), 0.0f), std::fill(dk.begin(), dk.end(), 0.0f),
        std::fill(dv.begin(), dv.end(), 0.0f);
  };
  double lf = 0, lb = 0, ef = 0, eb = 0;
  if (run_lathe) {
    lf = median_ms(reps, [&] {
      lathe::attention_forward(out.data(), nullptr, q.data(), k.data(), v.data(), T, T, H, Hkv, D);
    });
    lb = median_ms(reps, [&] {
      zero();
      lathe::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                nullptr, T, T, H, Hkv, D);
    });
  }
  Eager e{T, H, Hkv, D, {}, {}};
  if (run_eager) {
    ef = median_ms(reps, [&] { e.forward(out.data(), q.data(), k.data(), v.data()); });
    eb = median_ms(reps, [&] {
      zero();
      e.backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data());
    });
  }
  std::printf("attention T=%d H=%d Hkv=%d D=%d, %d thread(s), median of %d\n", T, H, Hkv, D, threads, reps);
  std::printf(
      "  forward : lathe %8.2f ms (%6.1f GFLOP/s)   eager reference %8.2f ms (%6.1f GFLOP/s)   ratio %.2fx\n",
      lf, fwd_gf / lf * 1e3, ef, fwd_gf / ef * 1e3, ef / lf);
  std::printf(
      "  backward: lathe %8.2f ms (%6.1f GFLOP/s)   eager reference %8.2f ms (%6.1f GFLOP/s)   ratio %.2fx\n",
      lb, bwd_gf / lb * 1e3, eb, bwd_gf / eb * 1e3, eb / lb);
  return 0;
}
