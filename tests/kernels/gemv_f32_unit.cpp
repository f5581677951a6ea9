// gemv_f32 (kernels/cpu/gemv_f32.cpp), the f32 decode GEMV behind matmul_forward's M = 1: every
// instruction-set variant against an f64 reference within the f32 accumulation bound, on row lengths
// that exercise the vector tails (K not a multiple of 8 or 16) and row counts that are not a multiple
// of the 4-row pass, with and without bias; two threads give the bits one thread gives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/qblock.h"
#include "qtest_util.h"

namespace lathe {
namespace {

using qtest::randn;

class GemvF32 : public qtest::IsaFixture {};

TEST_P(GemvF32, MatchesF64ReferenceOnOddShapes) {
  for (int64_t K : {1, 7, 8, 15, 16, 17, 33, 576, 1001}) {
    for (int64_t N : {1, 3, 4, 5, 9, 13, 4099}) {  // 13: one 8-row, one 4-row and one 1-row pass
      const auto W = randn(size_t(N) * K, 0.05f, uint32_t(N * 131 + K));
      const auto x = randn(size_t(K), 1.0f, uint32_t(K));
      const auto bias = randn(size_t(N), 0.1f, 3);
      for (bool with_bias : {false, true}) {
        const float* b = with_bias ? bias.data() : nullptr;
        std::vector<float> one(N, -7.0f), two(N, -8.0f);
        set_num_threads(1);
        gemv_f32(one.data(), x.data(), W.data(), b, K, N);
        set_num_threads(2);
        gemv_f32(two.data(), x.data(), W.data(), b, K, N);
        ASSERT_EQ(std::memcmp(one.data(), two.data(), size_t(N) * 4), 0) << "K=" << K << " N=" << N;
        for (int64_t n = 0; n < N; n++) {
          double exact = b ? b[n] : 0.0, mag = b ? std::fabs(b[n]) : 0.0;
          for (int64_t k = 0; k < K; k++) {
            exact += double(W[size_t(n) * K + k]) * x[k];
            mag += std::fabs(double(W[size_t(n) * K + k]) * x[k]);
          }
          // f32 sums of K products (lanes, then a tree over 8 or 16 lanes, then the bias): each
          // partial sum rounds once per addition, at most K + 6 roundings deep.
          ASSERT_LE(std::fabs(one[n] - exact), double(K + 6) * 0x1p-24 * mag) << "K=" << K << " N=" << N << " n=" << n;
        }
      }
    }
  }
}

// matmul_forward's decode case is this kernel (bit for bit), so every f32 Linear of a decode step runs it.
TEST_P(GemvF32, MatmulForwardDecodeIsTheGemv) {
  const int K = 100, N = 37;
  const auto W = randn(size_t(N) * K, 0.05f, 1), x = randn(K, 1.0f, 2), bias = randn(N, 0.1f, 3);
  std::vector<float> a(N), g(N);
  matmul_forward(a.data(), x.data(), W.data(), bias.data(), 1, K, N);
  gemv_f32(g.data(), x.data(), W.data(), bias.data(), K, N);
  EXPECT_EQ(std::memcmp(a.data(), g.data(), size_t(N) * 4), 0);
}

INSTANTIATE_TEST_SUITE_P(Variants, GemvF32, ::testing::Values(QIsa::Scalar, QIsa::Avx2, QIsa::Avx512, QIsa::Avx512Vnni, QIsa::Neon),
                         qtest::isa_param_name);

}  // namespace
}  // namespace lathe
