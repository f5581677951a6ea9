// Q4_K / Q6_K and F16 / BF16 weight rows (kernels/cpu/qblock.h, layouts core/kquant_blocks.h):
//  - the reference quantizers against ggml's quantize_row_q4_K_ref / _q6_K_ref byte for byte, and
//    dequantize_row against ggml's dequantize_row_q4_K / _q6_K of the same blocks bit for bit
//    (tests/data/qblock/golden_kquant.json; regenerate with tools/golden/gen_qblock_goldens.py);
//    the round trip's error on noise (RMS, and per element for Q6_K);
//  - every variant the CPU runs against the scalar reference: integer dot products exact (unit scales:
//    every partial sum is an exact integer in f32, so any order gives the exact total), real scales
//    within the f32 summation bound, and against the f64 product of the dequantized weights within the
//    activation bound of qblock.h;
//  - qmatmul_forward on odd shapes (K = 256·n, N odd, M = 1..9): row m of an M-row product equals the
//    1-row product bit for bit, two threads equal one, odd pointers change nothing;
//  - row lengths that are not a multiple of 256: errors naming the type.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/dtype.h"
#include "lathe/core/file_io.h"
#include "lathe/core/kquant_blocks.h"
#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/qblock.h"
#include "qtest_util.h"
#include "test_util.h"

namespace lathe {
inline void PrintTo(QIsa isa, std::ostream* os) { *os << qisa_name(isa); }

namespace {

using namespace qtest;

std::vector<float> dequantize(QType t, const std::vector<uint8_t>& w, int64_t n, int64_t k) {
  std::vector<float> out(size_t(n) * k);
  for (int64_t r = 0; r < n; r++) dequantize_row(t, w.data() + r * qblock_row_bytes(t, k), out.data() + r * k, k);
  return out;
}

const QType kBlockTypes[] = {QType::Q4_K, QType::Q6_K};
const QType kAllTypes[] = {QType::Q4_K, QType::Q6_K, QType::F16, QType::BF16};

TEST(QBlockKQuant, QuantizersAndDequantizersMatchGgml) {
  const auto j = nlohmann::json::parse(read_file(test::source_path("tests/data/qblock/golden_kquant.json")));
  std::vector<float> x;
  for (uint32_t b : j["x_bits"].get<std::vector<uint32_t>>()) {
    float f;
    std::memcpy(&f, &b, 4);
    x.push_back(f);
  }
  const int64_t n = int64_t(x.size());
  ASSERT_EQ(n % kQK_K, 0);
  for (QType t : kBlockTypes) {
    const std::string key = t == QType::Q4_K ? "q4_k" : "q6_k";
    const auto want = from_hex(j[key].get<std::string>());
    std::vector<uint8_t> got(qblock_row_bytes(t, n));
    quantize_row(t, x.data(), got.data(), n);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); i++)
      ASSERT_EQ(got[i], want[i]) << qtype_name(t) << " byte " << i << " (super-block " << i / qblock_bytes(t)
                                 << ", offset " << i % qblock_bytes(t) << ")";
    const auto deq_want = from_hex(j[key + "_deq"].get<std::string>());
    std::vector<float> deq(n);
    dequantize_row(t, want.data(), deq.data(), n);
    ASSERT_EQ(deq_want.size(), size_t(n) * 4);
    for (int64_t i = 0; i < n; i++) {
      float w;
      std::memcpy(&w, deq_want.data() + 4 * i, 4);
      ASSERT_EQ(std::memcmp(&w, &deq[i], 4), 0) << qtype_name(t) << " element " << i << ": " << deq[i] << " vs " << w;
    }
  }
}

// Round trip on noise: RMS error against the values' RMS (4 bits with a fitted offset: about 1/11 of
// sigma; 6 bits: about 1/45), and Q6_K per element: within 1.5 steps of its group's scale d*sc
// (rounding is half a step, the fit may pick a spacing up to 0.9/32 finer so the far end clips by at
// most one step); a group whose int8 scale rounded to 0 (tiny against the super-block) holds 0.
TEST(QBlockKQuant, RoundTripError) {
  for (QType t : kBlockTypes) {
    for (float scale : {1e-3f, 0.05f, 3.0f, 200.0f}) {
      const int64_t k = kQK_K * 16;
      const auto x = randn(k, scale, 17);
      std::vector<uint8_t> w(qblock_row_bytes(t, k));
      quantize_row(t, x.data(), w.data(), k);
      std::vector<float> y(k);
      dequantize_row(t, w.data(), y.data(), k);
      double se = 0, sx = 0;
      for (int64_t i = 0; i < k; i++) se += (double(x[i]) - y[i]) * (double(x[i]) - y[i]), sx += double(x[i]) * x[i];
      const double rel = std::sqrt(se / sx);
      EXPECT_LT(rel, t == QType::Q4_K ? 0.11 : 0.03) << qtype_name(t) << " scale " << scale;
      EXPECT_GT(rel, t == QType::Q4_K ? 0.03 : 0.005) << qtype_name(t) << " scale " << scale;  // it did quantize
      if (t != QType::Q6_K) continue;
      for (int64_t i = 0; i < k; i++) {
        const uint8_t* blk = w.data() + (i / kQK_K) * kQ6_KBlockBytes;
        uint16_t h;
        std::memcpy(&h, blk + 208, 2);
        const double d = std::fabs(double(f16_to_f32(h)) * int8_t(blk[192 + (i % kQK_K) / 16]));
        const double bound = d != 0 ? 1.5 * d : 17 * std::fabs(double(f16_to_f32(h)));
        ASSERT_LE(std::fabs(double(x[i]) - y[i]), bound) << "scale " << scale << " element " << i;
      }
    }
  }
}

TEST(QBlockKQuant, RejectsRowsNotMultipleOf256) {
  std::vector<float> x(320), y(1);
  std::vector<uint8_t> w(4096);
  for (QType t : kBlockTypes) {
    EXPECT_NE(test::error_of([&] { quantize_row(t, x.data(), w.data(), 320); }).find("multiple of 256"),
              std::string::npos);
    const std::string e = test::error_of([&] { qmatmul_forward(y.data(), x.data(), w.data(), t, nullptr, 1, 320, 1); });
    EXPECT_NE(e.find(std::string(qtype_name(t)) + " rows need a multiple of 256 elements, got 320"), std::string::npos) << e;
  }
}

// M >= kQPrefillRows: qmatmul_forward dequantizes weight tiles (dequantize_row) and runs sgemm, no
// activation quantization: within f32 summation error of the f64 product of the dequantized weights.
TEST(QBlockKQuant, PrefillOnDequantizedTiles) {
  // The dequantize + sgemm path (avx512vnni runs K-quant prefill on its integer GEMM: qblock_unit.cpp).
  const QIsa before = qisa_active();
  if (before == QIsa::Avx512Vnni) qisa_set(QIsa::Avx512);
  for (QType t : kAllTypes) {
    const int64_t k = 512, n = 37;
    const int M = kQPrefillRows + 3;
    const auto wq = quantize_matrix(t, randn(size_t(n) * k, 0.05f, 5), n, k);
    const auto x = randn(size_t(M) * k, 1.0f, 6);
    const auto wd = dequantize(t, wq, n, k);
    std::vector<float> out(size_t(M) * n);
    qmatmul_forward(out.data(), x.data(), wq.data(), t, nullptr, M, k, n);
    for (int m = 0; m < M; m++)
      for (int64_t r = 0; r < n; r++) {
        double exact = 0, mag = 0;
        for (int64_t j = 0; j < k; j++) {
          exact += double(wd[r * k + j]) * x[m * k + j];
          mag += std::fabs(double(wd[r * k + j]) * x[m * k + j]);
        }
        ASSERT_LE(std::fabs(out[m * n + r] - exact), double(k + 8) * kU * mag) << qtype_name(t) << " m " << m << " r " << r;
      }
  }
  qisa_set(before);
}

class QKIsa : public qtest::IsaFixture {
 protected:
  // A variant may leave a type's field null (qmatmul_forward then runs the scalar kernel): so do we.
  template <class F>
  static F or_ref(F f, F r) { return f ? f : r; }
  auto block_dot(QType t) const {
    return t == QType::Q4_K ? or_ref(kern().dot_q4_k, ref().dot_q4_k) : or_ref(kern().dot_q6_k, ref().dot_q6_k);
  }
  auto float_dot(QType t) const {
    return t == QType::F16 ? or_ref(kern().dot_f16, ref().dot_f16) : or_ref(kern().dot_bf16, ref().dot_bf16);
  }
};

// Unit scales (d = dmin = 1, d_a = 1) and small integers: every partial sum in any order is an exact
// integer below 2^24, so each variant must return the exact total. Extremes included: nibbles 0 and
// 15, 6-bit values 0 and 63, 6-bit scales/mins up to 63 in the first super-block.
TEST_P(QKIsa, IntegerDotProductsExact) {
  std::mt19937 rng(8);
  const uint16_t one = f32_to_f16(1.0f);
  for (QType t : kBlockTypes) {
    for (int64_t k : {256, 768, 1024}) {
      const int64_t nb = k / 32;
      std::uniform_int_distribution<int> qa(-31, 31), byte(0, 255), sc8(-8, 8), s6(0, 7);
      std::vector<BlockQ8A> a(nb);
      for (int64_t b = 0; b < nb; b++) {
        a[b].d = 1.0f;
        a[b].sum = 0;
        for (int j = 0; j < 32; j++) a[b].q[j] = int8_t(b == 0 ? (j % 2 ? 31 : -31) : qa(rng)), a[b].sum += a[b].q[j];
      }
      std::vector<uint8_t> w(qblock_row_bytes(t, k));
      for (auto& v : w) v = uint8_t(byte(rng));
      int64_t exact = 0, mag = 0;
      for (int64_t sb = 0; sb < k / kQK_K; sb++) {
        uint8_t* blk = w.data() + sb * qblock_bytes(t);
        if (t == QType::Q4_K) {
          std::memcpy(blk, &one, 2);
          std::memcpy(blk + 2, &one, 2);
          // Scales and mins: 0..7 (small enough for exactness), except sub-block 0 of the first
          // super-block, whose 6-bit scale and min are 63 (a all ±31 there keeps it within 2^24).
          for (int j = 0; j < 12; j++) blk[4 + j] = uint8_t(s6(rng) | (s6(rng) << 4));
          if (sb == 0) blk[4] = 63, blk[8] = uint8_t(63);  // j = 0: scales[0] & 63, scales[4] & 63
          for (int j = 0; j < 8; j++) {
            int sc, mn;
            q4k_scale_min(blk + 4, j, &sc, &mn);
            const BlockQ8A& ab = a[sb * 8 + j];
            for (int l = 0; l < 32; l++) {
              const int q = (blk[16 + 32 * (j / 2) + l] >> (4 * (j & 1))) & 15;
              exact += int64_t(sc) * q * ab.q[l];
              mag += std::abs(sc * q * ab.q[l]);
            }
            exact -= int64_t(mn) * ab.sum;
            mag += std::abs(mn * ab.sum);
          }
        } else {
          std::memcpy(blk + 208, &one, 2);
          for (int g = 0; g < 16; g++) blk[192 + g] = uint8_t(int8_t(sc8(rng)));
          if (sb == 0) std::memset(blk, 0xff, 192), blk[192] = uint8_t(int8_t(-8));  // all 63, scale -8
          const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
          for (int e = 0; e < kQK_K; e++) {
            const int v = sc[e / 16] * (q6k_value(blk, e) - 32) * a[sb * 8 + e / 32].q[e % 32];
            exact += v;
            mag += std::abs(v);
          }
        }
      }
      ASSERT_LT(mag, int64_t(1) << 24) << "test data too large to be exact";
      const auto dot = block_dot(t);
      float got = 0;
      dot(w.data(), a.data(), nb, nb, 1, &got);
      EXPECT_EQ(double(got), double(exact)) << qtype_name(t) << " K=" << k;
      // The variant's multi-row decode kernel, where it has one: five copies of the row (a group of
      // four and one alone), each exact.
      const auto rows = t == QType::Q6_K ? kern().rows_q6_k : kern().rows_q4_k;
      if (rows) {
        std::vector<uint8_t> w5;
        for (int c = 0; c < 5; c++) w5.insert(w5.end(), w.begin(), w.end());
        std::vector<float> got5(5);
        rows(w5.data(), w.size(), 5, a.data(), nb, got5.data());
        for (int c = 0; c < 5; c++) EXPECT_EQ(double(got5[c]), double(exact)) << qtype_name(t) << " K=" << k << " copy " << c;
      }
    }
  }
}

// The multi-row decode kernels (avx512vnni: Q8_0, Q4_K, Q6_K; Q4_0 in qblock_unit) on real data: each
// row of an n-row pass (groups of four, then single rows; unaligned rows; Q8_0 with an odd block count)
// equals the block dot of that row with m = 1 bit for bit, and the scalar reference to rounding.
TEST_P(QKIsa, RowsKernelsEqualTheDotPerRow) {
  for (QType t : {QType::Q8_0, QType::Q4_K, QType::Q6_K}) {
    const auto rows = t == QType::Q6_K ? kern().rows_q6_k : t == QType::Q4_K ? kern().rows_q4_k : kern().rows_q8_0;
    if (!rows) continue;
    const auto dot = t == QType::Q8_0 ? or_ref(kern().dot_q8_0, ref().dot_q8_0) : block_dot(t);
    const auto sdot = t == QType::Q8_0 ? ref().dot_q8_0 : t == QType::Q6_K ? ref().dot_q6_k : ref().dot_q4_k;
    for (int64_t k : t == QType::Q8_0 ? std::vector<int64_t>{96, 1536} : std::vector<int64_t>{256, 1536}) {
      const int64_t nb = k / 32;
      for (int64_t n : {1, 3, 4, 5, 9}) {
        const size_t rb = qblock_row_bytes(t, k);
        std::vector<uint8_t> w(size_t(n) * rb + 1);
        uint8_t* w0 = w.data() + 1;
        const auto wf = randn(size_t(n) * k, 0.05f, uint32_t(41 + k + n));
        for (int64_t r = 0; r < n; r++) quantize_row(t, wf.data() + r * k, w0 + r * rb, k);
        std::vector<BlockQ8A> a(nb);
        ref().quantize_act(randn(k, 1.0f, uint32_t(42 + k)).data(), a.data(), nb);
        std::vector<float> got(n);
        rows(w0, rb, n, a.data(), nb, got.data());
        for (int64_t r = 0; r < n; r++) {
          float want = 0, sref = 0;
          dot(w0 + size_t(r) * rb, a.data(), nb, nb, 1, &want);
          ASSERT_EQ(std::memcmp(&want, &got[r], 4), 0) << qtype_name(t) << " K=" << k << " n=" << n << " row " << r;
          sdot(w0 + size_t(r) * rb, a.data(), nb, nb, 1, &sref);
          EXPECT_NEAR(got[r], sref, 1e-4 * (1 + std::fabs(sref))) << qtype_name(t) << " vs scalar, K=" << k << " row " << r;
        }
      }
    }
  }
}

TEST_P(QKIsa, FloatRowsExactOnIntegers) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> wi(-64, 64), xi(-64, 64);
  for (QType t : {QType::F16, QType::BF16}) {
    for (int64_t k : {1, 7, 16, 33, 1000}) {
      std::vector<float> wf(k), x(3 * k);
      for (auto& v : wf) v = float(wi(rng));
      for (auto& v : x) v = float(xi(rng));
      std::vector<uint8_t> w(qblock_row_bytes(t, k));
      quantize_row(t, wf.data(), w.data(), k);
      float got[3];
      float_dot(t)(w.data(), x.data(), k, k, 3, got);
      for (int i = 0; i < 3; i++) {
        double exact = 0;
        for (int64_t j = 0; j < k; j++) exact += double(wf[j]) * x[i * k + j];
        EXPECT_EQ(double(got[i]), exact) << qtype_name(t) << " K=" << k << " row " << i;
      }
    }
  }
}

// Real scales: variant vs scalar within the f32 summation slack (nb + 24) u Σ|terms|, and both vs the
// f64 product of the dequantized weights within the activation bound Σ_b amax_b (1/254 + 2^-22) ‖ŵ_b‖₁.
// Q4_K's terms are its two products per block (scale and min), which cancel: their magnitudes count.
TEST_P(QKIsa, DotWithinTheStatedBounds) {
  for (QType t : kBlockTypes) {
    for (int64_t k : {256, 4096}) {
      const int64_t nb = k / 32;
      const auto wf = randn(k, 0.05f, uint32_t(31 + k));
      auto x = randn(k, 2.0f, uint32_t(32 + k));
      x[7] = 40.0f;
      std::vector<uint8_t> w(qblock_row_bytes(t, k));
      quantize_row(t, wf.data(), w.data(), k);
      std::vector<BlockQ8A> a(nb);
      ref().quantize_act(x.data(), a.data(), nb);
      const auto dot = block_dot(t);
      const auto dot_ref = t == QType::Q4_K ? ref().dot_q4_k : ref().dot_q6_k;
      float got = 0, want = 0;
      dot(w.data(), a.data(), nb, nb, 1, &got);
      dot_ref(w.data(), a.data(), nb, nb, 1, &want);
      std::vector<float> wd(k);
      dequantize_row(t, w.data(), wd.data(), k);
      double exact = 0, qbound = 0, mag = 0;
      for (int64_t b = 0; b < nb; b++) {
        double amax = 0, wl1 = 0;
        for (int j = 0; j < 32; j++) {
          exact += double(wd[b * 32 + j]) * x[b * 32 + j];
          amax = std::max(amax, std::fabs(double(x[b * 32 + j])));
          wl1 += std::fabs(double(wd[b * 32 + j]));
        }
        qbound += amax * (1.0 / 254 + 1.0 / (1 << 22)) * wl1;
        // |terms| of block b: Σ |ŵ + offset| |d_a q_a| plus the offset's term for Q4_K.
        const uint8_t* blk = w.data() + (b / 8) * qblock_bytes(t);
        double off = 0;
        if (t == QType::Q4_K) {
          int sc, mn;
          q4k_scale_min(blk + 4, int(b % 8), &sc, &mn);
          uint16_t h;
          std::memcpy(&h, blk + 2, 2);
          off = f16_to_f32(h) * mn;
        }
        for (int j = 0; j < 32; j++) {
          const double aj = std::fabs(double(a[b].d) * a[b].q[j]);
          mag += (std::fabs(double(wd[b * 32 + j]) + off) + off) * aj;
        }
      }
      const double slack = double(nb + 24) * kU * mag;
      EXPECT_LE(std::fabs(double(got) - want), 2 * slack) << qtype_name(t) << " K=" << k;
      EXPECT_LE(std::fabs(double(got) - exact), qbound + slack) << qtype_name(t) << " K=" << k;
      EXPECT_LT(qbound, 0.5 * mag) << qtype_name(t) << " K=" << k;
    }
  }
}

// qmatmul_forward on odd shapes, every new type; M = 9 covers two 8-row groups and 1..4-row tails.
TEST_P(QKIsa, MatmulOddShapesAndPointers) {
  for (QType t : kAllTypes) {
    const bool fl = qtype_is_float(t);
    for (int64_t k : fl ? std::vector<int64_t>{7, 256, 1000} : std::vector<int64_t>{256, 768}) {
      for (int64_t n : {1, 3, 17, 101}) {
        const int M = 9;
        const auto wf = randn(size_t(n) * k, 0.03f, uint32_t(n * 7 + k));
        const auto xin = randn(size_t(M) * k, 1.0f, uint32_t(n + k));
        const auto wq = quantize_matrix(t, wf, n, k);
        const auto bias = randn(n, 0.1f, 9);
        std::vector<uint8_t> wbuf(wq.size() + 3);
        std::memcpy(wbuf.data() + 3, wq.data(), wq.size());
        std::vector<float> xbuf(xin.size() + 1);
        std::copy(xin.begin(), xin.end(), xbuf.begin() + 1);
        std::vector<float> all(size_t(M) * n), one(n), two(size_t(M) * n);
        set_num_threads(1);
        qmatmul_forward(all.data(), xbuf.data() + 1, wbuf.data() + 3, t, bias.data(), M, k, n);
        set_num_threads(2);
        qmatmul_forward(two.data(), xin.data(), wq.data(), t, bias.data(), M, k, n);
        set_num_threads(1);
        ASSERT_EQ(std::memcmp(all.data(), two.data(), all.size() * 4), 0) << qtype_name(t) << " K=" << k << " N=" << n;
        const auto wd = dequantize(t, wq, n, k);
        for (int m : {0, 3, 7, 8}) {
          qmatmul_forward(one.data(), xin.data() + size_t(m) * k, wq.data(), t, bias.data(), 1, k, n);
          ASSERT_EQ(std::memcmp(one.data(), all.data() + size_t(m) * n, size_t(n) * 4), 0)
              << qtype_name(t) << " K=" << k << " N=" << n << " row " << m;
          for (int64_t r : {int64_t(0), n / 2, n - 1}) {
            double exact = bias[r], qbound = 0, mag = 0;
            for (int64_t b = 0; b < (fl ? 1 : k / 32); b++) {
              const int64_t len = fl ? k : 32;
              double amax = 0, wl1 = 0;
              for (int64_t j = 0; j < len; j++) {
                const double wv = wd[size_t(r) * k + b * len + j], xv = xin[size_t(m) * k + b * len + j];
                exact += wv * xv;
                amax = std::max(amax, std::fabs(xv));
                wl1 += std::fabs(wv);
                mag += std::fabs(wv * xv);
              }
              if (!fl) qbound += amax * (1.0 / 254 + 1.0 / (1 << 22)) * wl1;
            }
            // Q4_K's scale and min products cancel: allow their size (a few times |ŵ||x|) in the slack.
            const double slack = double(k / 8 + 40) * kU * 4 * (mag + qbound + std::fabs(bias[r]));
            ASSERT_LE(std::fabs(double(one[r]) - exact), qbound + slack)
                << qtype_name(t) << " K=" << k << " N=" << n << " row " << r;
          }
        }
      }
    }
  }
}

// Every M from 1 to 8 (one pass over W, row groups of 4 + remainder): each row of the M-row product
// equals the 1-row product of that row bit for bit.
TEST_P(QKIsa, EveryBatchSizeMatchesTheGemv) {
  for (QType t : kAllTypes) {
    const int64_t k = 512, n = 19;
    const auto wq = quantize_matrix(t, randn(size_t(n) * k, 0.05f, 3), n, k);
    const auto xin = randn(size_t(8) * k, 1.0f, 4);
    std::vector<float> one(size_t(8) * n);
    for (int m = 0; m < 8; m++)
      qmatmul_forward(one.data() + size_t(m) * n, xin.data() + size_t(m) * k, wq.data(), t, nullptr, 1, k, n);
    for (int M = 1; M <= 8; M++) {
      std::vector<float> all(size_t(M) * n);
      qmatmul_forward(all.data(), xin.data(), wq.data(), t, nullptr, M, k, n);
      ASSERT_EQ(std::memcmp(all.data(), one.data(), all.size() * 4), 0) << qtype_name(t) << " M=" << M;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, QKIsa, ::testing::Values(QIsa::Scalar, QIsa::Avx2, QIsa::Avx512, QIsa::Avx512Vnni),
                         qtest::isa_param_name);

}  // namespace
}  // namespace lathe
