// Helpers shared by the quantized-kernel tests (qblock_unit, qblock_kquant_unit, gemv_f32_unit):
// deterministic noise, hex goldens, matrices quantized row by row, and a fixture that pins one
// instruction-set variant for a test and restores the previous one after it.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/qblock.h"

namespace lathe::qtest {

constexpr double kU = 1.0 / (1 << 24);  // f32 unit roundoff

inline std::vector<uint8_t> from_hex(const std::string& h) {
  std::vector<uint8_t> out(h.size() / 2);
  for (size_t i = 0; i < out.size(); i++) out[i] = uint8_t(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return out;
}

inline std::vector<float> randn(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Rows of x [n, k] quantized into one buffer of n rows.
inline std::vector<uint8_t> quantize_matrix(QType t, const std::vector<float>& x, int64_t n, int64_t k) {
  const size_t rb = qblock_row_bytes(t, k);
  std::vector<uint8_t> w(size_t(n) * rb);
  for (int64_t r = 0; r < n; r++) quantize_row(t, x.data() + r * k, w.data() + r * rb, k);
  return w;
}

// Runs each test with the variant GetParam() (skipped where the CPU lacks it), one thread by default.
class IsaFixture : public ::testing::TestWithParam<QIsa> {
 protected:
  void SetUp() override {
    if (!qisa_supported(GetParam())) GTEST_SKIP() << qisa_name(GetParam()) << " is not supported on this CPU";
    before_ = qisa_active();
    ASSERT_TRUE(qisa_set(GetParam()));
  }
  void TearDown() override {
    qisa_set(before_);
    set_num_threads(1);
  }
  const qdetail::QKernels& kern() const { return qdetail::kernels_for(GetParam()); }
  const qdetail::QKernels& ref() const { return qdetail::kernels_for(QIsa::Scalar); }
  QIsa before_ = QIsa::Scalar;
};

inline std::string isa_param_name(const ::testing::TestParamInfo<QIsa>& i) { return qisa_name(i.param); }

}  // namespace lathe::qtest
