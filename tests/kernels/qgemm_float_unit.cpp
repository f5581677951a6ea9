// The AVX-512 prefill GEMM for F16 and BF16 weights (kernels/cpu/qgemm_float_avx512.cpp), on the
// avx512 and avx512vnni variants where the CPU has them: against the f64 product of the converted
// weights within the bound of its summation order, two threads giving one's bits, and one-hot inputs
// returning each weight bit for bit. Odd shapes: M not a multiple of the 4-row tile, N not a multiple
// of the 6-row tile, K across the 1024-element chunks, K not a multiple of 16 (the tiles take those).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/qblock.h"
#include "qtest_util.h"

namespace lathe {
namespace {

using qtest::kU;
using qtest::randn;

std::vector<QIsa> avx512_variants() {
  std::vector<QIsa> v;
  for (QIsa isa : {QIsa::Avx512, QIsa::Avx512Vnni})
    if (qisa_supported(isa)) v.push_back(isa);
  return v;
}

TEST(QGemmFloat, MatchesTheF64ProductAndThreadCounts) {
  const auto isas = avx512_variants();
  if (isas.empty()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const QIsa before = qisa_active();
  for (QIsa isa : isas) {
    ASSERT_TRUE(qisa_set(isa));
    for (QType t : {QType::F16, QType::BF16}) {
      for (int64_t k : {16, 40, 48, 1072, 2096}) {
        for (int M : {kQPrefillRows, 17, 35}) {
          for (int64_t n : {1, 6, 7, 13, 50}) {
            const auto w = qtest::quantize_matrix(t, randn(size_t(n) * k, 0.05f, uint32_t(n * 7 + k)), n, k);
            const auto x = randn(size_t(M) * k, 1.0f, uint32_t(M + k));
            const auto bias = randn(n, 0.1f, 3);
            const float* b = n % 2 ? bias.data() : nullptr;
            std::vector<float> one(size_t(M) * n, -1.0f), two(size_t(M) * n, -2.0f), wrow(k);
            set_num_threads(1);
            qmatmul_forward(one.data(), x.data(), w.data(), t, b, M, k, n);
            set_num_threads(2);
            qmatmul_forward(two.data(), x.data(), w.data(), t, b, M, k, n);
            set_num_threads(1);
            ASSERT_EQ(std::memcmp(one.data(), two.data(), one.size() * 4), 0)
                << qisa_name(isa) << " " << qtype_name(t) << " M=" << M << " K=" << k << " N=" << n;
            for (int64_t r = 0; r < n; r++) {
              dequantize_row(t, w.data() + size_t(r) * qblock_row_bytes(t, k), wrow.data(), k);
              for (int m = 0; m < M; m++) {
                double exact = b ? b[r] : 0.0, mag = b ? std::fabs(b[r]) : 0.0;
                for (int64_t j = 0; j < k; j++) {
                  exact += double(wrow[j]) * x[size_t(m) * k + j];
                  mag += std::fabs(double(wrow[j]) * x[size_t(m) * k + j]);
                }
                // Lane sums of k/16 terms, a 16-lane reduction, one addition per chunk and the bias.
                const double bound = double(k / 16 + 4 + k / 1024 + 2) * kU * mag * 1.01 + 1e-30;
                ASSERT_LE(std::fabs(one[size_t(m) * n + r] - exact), bound)
                    << qisa_name(isa) << " " << qtype_name(t) << " M=" << M << " K=" << k << " N=" << n << " m=" << m
                    << " r=" << r;
              }
            }
          }
        }
      }
    }
  }
  qisa_set(before);
}

// One-hot input rows: out[m][r] = 1 · W[r][7m] + 0 · ... is the weight itself, bit for bit, for every
// finite half (subnormals and -0 included; -0 comes out as +0, the sum starting from +0).
TEST(QGemmFloat, OneHotRowsReturnTheWeights) {
  const auto isas = avx512_variants();
  if (isas.empty()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const QIsa before = qisa_active();
  const int M = 37;
  const int64_t k = 1296, n = 301;  // two K chunks, N and M off the tile sizes
  for (QIsa isa : isas) {
    ASSERT_TRUE(qisa_set(isa));
    for (QType t : {QType::F16, QType::BF16}) {
      std::vector<uint8_t> w(size_t(n) * k * 2);
      uint16_t h = 0;
      for (size_t i = 0; i < w.size() / 2; i++) {
        do h = uint16_t(h * 40503u + 12345u);
        while (t == QType::F16 ? (h & 0x7c00) == 0x7c00 : (h & 0x7f80) == 0x7f80);  // finite values only
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
      std::vector<float> onehot(size_t(M) * k, 0.0f), out(size_t(M) * n), row(k);
      for (int m = 0; m < M; m++) onehot[size_t(m) * k + m * 7 + (m % 3) * 512] = 1.0f;
      qmatmul_forward(out.data(), onehot.data(), w.data(), t, nullptr, M, k, n);
      for (int64_t r = 0; r < n; r++) {
        dequantize_row(t, w.data() + size_t(r) * k * 2, row.data(), k);
        for (int m = 0; m < M; m++) {
          const float want = row[size_t(m) * 7 + (m % 3) * 512] + 0.0f;
          ASSERT_EQ(std::memcmp(&out[size_t(m) * n + r], &want, 4), 0)
              << qisa_name(isa) << " " << qtype_name(t) << " row " << r << " m " << m << ": " << out[size_t(m) * n + r]
              << " vs " << want;
        }
      }
    }
  }
  qisa_set(before);
}

}  // namespace
}  // namespace lathe
