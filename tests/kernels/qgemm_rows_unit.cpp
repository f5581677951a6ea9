// The prefill GEMMs over weight rows converted to f32: the AVX2 variant's for every type
// (kernels/cpu/qgemm_rows_avx2.cpp) and the AVX-512 variants' for F16 and BF16
// (kernels/cpu/qgemm_float_avx512.cpp), where the CPU has them: against the f64 product of the
// dequantized weights within the bound of their summation order, two threads giving one's bits, and
// one-hot inputs returning each dequantized weight bit for bit (the conversions are dequantize_row's
// values exactly). Odd shapes: M and N off the register tiles (3×4, 4×6), K across the 512- and
// 1024-element chunks, K not a multiple of 16 (the AVX-512 variants' tiles take those).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/qblock.h"
#include "qtest_util.h"

namespace lathe {
namespace {

using qtest::kU;
using qtest::randn;

std::vector<QIsa> variants() {
  std::vector<QIsa> v;
  for (QIsa isa : {QIsa::Avx2, QIsa::Avx512, QIsa::Avx512Vnni})
    if (qisa_supported(isa)) v.push_back(isa);
  return v;
}

// The types whose prefill on `isa` runs on f32 weight rows (avx512vnni quantizes the activations of
// the block types: qgemm_vnni_unit.cpp and qblock_unit.cpp test those).
std::vector<QType> row_types(QIsa isa) {
  if (isa == QIsa::Avx512Vnni) return {QType::F16, QType::BF16};
  return {QType::F16, QType::BF16, QType::Q8_0, QType::Q4_0, QType::Q4_K, QType::Q6_K};
}

std::vector<int64_t> ks_for(QType t) {
  if (t == QType::Q4_K || t == QType::Q6_K) return {256, 1280};
  if (t == QType::Q8_0 || t == QType::Q4_0) return {32, 96, 1056};
  return {16, 40, 48, 1072, 2096};
}

TEST(QGemmRows, MatchesTheF64ProductAndThreadCounts) {
  const auto isas = variants();
  if (isas.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const QIsa before = qisa_active();
  for (QIsa isa : isas) {
    ASSERT_TRUE(qisa_set(isa));
    for (QType t : row_types(isa)) {
      for (int64_t k : ks_for(t)) {
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
                // Lane sums of k/8 terms at most, a 16-lane reduction, one addition per chunk, the bias.
                const double bound = double(k / 8 + 4 + k / 512 + 2) * kU * mag * 1.01 + 1e-30;
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

// One-hot input rows: out[m][r] = 1 · W[r][c] + 0 · ... is the dequantized weight itself, bit for bit:
// every finite half and bf16 (subnormals and -0 included; -0 comes out as +0, the sum starting from
// +0), and random blocks of the block types (random bytes: every scale, min and code).
TEST(QGemmRows, OneHotRowsReturnTheWeights) {
  const auto isas = variants();
  if (isas.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const QIsa before = qisa_active();
  const int M = 37;
  const int64_t k = 1536, n = 301;  // K chunks, N and M off the tile sizes
  std::mt19937 rng(9);
  for (QIsa isa : isas) {
    ASSERT_TRUE(qisa_set(isa));
    for (QType t : row_types(isa)) {
      std::vector<uint8_t> w(size_t(n) * qblock_row_bytes(t, k));
      if (t == QType::F16 || t == QType::BF16) {
        uint16_t h = 0;
        for (size_t i = 0; i < w.size() / 2; i++) {
          do h = uint16_t(h * 40503u + 12345u);
          while (t == QType::F16 ? (h & 0x7c00) == 0x7c00 : (h & 0x7f80) == 0x7f80);  // finite values only
          std::memcpy(w.data() + 2 * i, &h, 2);
        }
      } else {
        for (auto& b : w) b = uint8_t(rng());
        // Finite scales: clear the exponent's top bit of every f16 scale/min (Q8_0/Q4_0 d at 0,
        // Q4_K d and dmin at 0 and 2, Q6_K d at 208).
        const size_t bb = qblock_bytes(t);
        for (size_t off = 0; off < w.size(); off += bb)
          for (size_t at : t == QType::Q4_K ? std::vector<size_t>{0, 2} : t == QType::Q6_K ? std::vector<size_t>{208}
                                                                                            : std::vector<size_t>{0})
            w[off + at + 1] &= 0xbf;
      }
      std::vector<float> onehot(size_t(M) * k, 0.0f), out(size_t(M) * n), row(k);
      for (int m = 0; m < M; m++) onehot[size_t(m) * k + m * 7 + (m % 3) * 512] = 1.0f;
      qmatmul_forward(out.data(), onehot.data(), w.data(), t, nullptr, M, k, n);
      for (int64_t r = 0; r < n; r++) {
        dequantize_row(t, w.data() + size_t(r) * qblock_row_bytes(t, k), row.data(), k);
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
