// Q8_0 / Q4_0 kernels (kernels/cpu/qblock.h):
//  - the weight quantizers against ggml's own quantize_row_*_ref, byte for byte (tests/data/qblock/
//    golden.json; regenerate with tools/golden/gen_qblock_goldens.py), against the GGUF writer's
//    Q8_0 encoder, and through the GGUF reader's dequantizers within the stated round-trip bound;
//  - every instruction-set variant the CPU runs (the others are reported SKIPPED) against the scalar
//    reference: activation blocks bit for bit; integer dot products exactly (unit scales make every f32
//    partial sum an exact integer, so any summation order must give the same bits); with real scales
//    within the f32 summation bound (only the order of the f32 additions differs);
//  - the products against the f64 product of the dequantized weights and the f32 input within the
//    bound of qblock.h; the GEMM's row m against the GEMV of row m bit for bit, one vs two threads,
//    odd shapes (N = 1, 3, 17, 4097; K = 32, 96, 4096), unaligned weight, input and scratch pointers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/dtype.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/threads.h"
#include "lathe/formats/gguf.h"
#include "lathe/formats/gguf_write.h"
#include "lathe/kernels/cpu/qblock.h"
#include "qtest_util.h"
#include "test_util.h"

namespace lathe {
// gtest names a failing variant by this instead of its bytes.
inline void PrintTo(QIsa isa, std::ostream* os) { *os << qisa_name(isa); }

namespace {

using namespace qtest;

std::vector<float> dequantize(QType t, const uint8_t* w, int64_t n) {
  std::vector<float> out(n);
  if (t == QType::Q8_0)
    dequantize_q8_0(w, out.data(), n);
  else
    dequantize_q4_0(w, out.data(), n);
  return out;
}

TEST(QBlock, WeightQuantizersMatchGgmlByteForByte) {
  const auto j = nlohmann::json::parse(read_file(test::source_path("tests/data/qblock/golden.json")));
  std::vector<float> x;
  for (uint32_t b : j["x_bits"].get<std::vector<uint32_t>>()) {
    float f;
    std::memcpy(&f, &b, 4);
    x.push_back(f);
  }
  const int64_t n = int64_t(x.size());
  for (QType t : {QType::Q8_0, QType::Q4_0}) {
    const auto want = from_hex(j[t == QType::Q8_0 ? "q8_0" : "q4_0"].get<std::string>());
    std::vector<uint8_t> got(qblock_row_bytes(t, n));
    quantize_row(t, x.data(), got.data(), n);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); i++)
      ASSERT_EQ(got[i], want[i]) << qtype_name(t) << " byte " << i << " (block " << i / qblock_bytes(t) << ")"
                                 << " (regenerate: tools/golden/gen_qblock_goldens.py)";
  }
}

TEST(QBlock, Q8_0MatchesTheGgufWriter) {
  const auto x = randn(32 * 40, 0.7f, 3);
  std::vector<uint8_t> a(qblock_row_bytes(QType::Q8_0, 32 * 40)), b(a.size());
  quantize_row_q8_0(x.data(), a.data(), 32 * 40);
  quantize_q8_0(x.data(), b.data(), 32 * 40);
  EXPECT_EQ(a, b);
}

// Round trip through the GGUF reader's dequantizers. q is chosen with the f32 d but the f16 of d is
// stored, so |x - dh*q| <= (|d|/2)(1 + 4u) + |d - dh| * qmax: the rounding to the grid plus the
// scale's f16 error times the largest code (127 for Q8_0, 8 for Q4_0); |d| instead of |d|/2 where
// Q4_0 clips (code 15: x*id in (7.5, 8], the side opposite the block's extreme).
TEST(QBlock, RoundTripThroughTheGgufDequantizers) {
  for (QType t : {QType::Q8_0, QType::Q4_0}) {
    for (float scale : {1e-3f, 0.05f, 3.0f, 200.0f}) {
      const int64_t k = 32 * 64;
      const auto x = randn(k, scale, 11);
      std::vector<uint8_t> w(qblock_row_bytes(t, k));
      quantize_row(t, x.data(), w.data(), k);
      const auto y = dequantize(t, w.data(), k);
      for (int64_t b = 0; b < k / 32; b++) {
        float amax = 0, m = 0;
        for (int j = 0; j < 32; j++)
          if (std::fabs(x[b * 32 + j]) > amax) amax = std::fabs(x[b * 32 + j]), m = x[b * 32 + j];
        const double d = t == QType::Q8_0 ? amax / 127.0f : m / -8.0f;
        uint16_t h;
        std::memcpy(&h, w.data() + b * qblock_bytes(t), 2);
        const double dh = f16_to_f32(h);
        const double qmax = t == QType::Q8_0 ? 127 : 8;
        for (int j = 0; j < 32; j++) {
          // Q4_0 has codes -8..7 for x*id in [-8, 8]: x*id above 7.5 clips to 7, an error up to |d|.
          const int code = t == QType::Q8_0 ? 0 : (j < 16 ? w[b * 18 + 2 + j] & 15 : w[b * 18 + 2 + j - 16] >> 4);
          const double grid = code == 15 ? 1.0 : 0.5;
          const double bound = std::fabs(d) * grid * (1 + 4 * kU) + std::fabs(d - dh) * qmax + 1e-30;
          ASSERT_LE(std::fabs(double(x[b * 32 + j]) - y[b * 32 + j]), bound)
              << qtype_name(t) << " scale " << scale << " block " << b << " elem " << j;
        }
      }
    }
  }
}

// The Q4_0 rule on a hand-made block: the largest magnitude (-8) gives d = 1; x + 8.5 truncates, so
// ties round up; 8 (same magnitude, later) clips to 15; layout: element j low nibble, j+16 high.
TEST(QBlock, Q4_0HandBlock) {
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;
  x[1] = -7.5f;   // -7.5 + 8.5 = 1  -> nibble 1
  x[2] = -7.49f;  // 1.01 -> 1
  x[3] = 0.5f;    // 9 -> 9
  x[4] = 0.49f;   // 8.99 -> 8
  x[16] = 8.0f;   // 16.5 -> 16 -> clips to 15
  x[17] = 7.5f;   // 16 -> 15
  x[18] = -0.5f;  // 8 -> 8
  std::vector<uint8_t> w(18);
  quantize_row_q4_0(x.data(), w.data(), 32);
  uint16_t h;
  std::memcpy(&h, w.data(), 2);
  EXPECT_EQ(f16_to_f32(h), 1.0f);
  const int want_lo[5] = {0, 1, 1, 9, 8};
  for (int j = 0; j < 5; j++) EXPECT_EQ(w[2 + j] & 0x0f, want_lo[j]) << j;
  EXPECT_EQ(w[2 + 0] >> 4, 15);
  EXPECT_EQ(w[2 + 1] >> 4, 15);
  EXPECT_EQ(w[2 + 2] >> 4, 8);
  for (int j = 5; j < 16; j++) EXPECT_EQ(w[2 + j], 0x88) << j;  // zeros: 0 + 8.5 -> 8 in both nibbles
}

TEST(QBlock, IsaParseAndSelection) {
  EXPECT_EQ(qisa_parse("scalar"), QIsa::Scalar);
  EXPECT_EQ(qisa_parse("avx512"), QIsa::Avx512);
  EXPECT_EQ(qisa_parse("avx512vnni"), QIsa::Avx512Vnni);
  EXPECT_EQ(qisa_parse("neon"), QIsa::Neon);
  EXPECT_EQ(qisa_parse("dotprod"), QIsa::NeonDot);
  EXPECT_NE(test::error_of([] { qisa_parse("sse9"); }).find("LATHE_CPU_ISA='sse9'"), std::string::npos);
  EXPECT_TRUE(qisa_supported(QIsa::Scalar));
  EXPECT_TRUE(qisa_supported(qisa_active()));
  const QIsa before = qisa_active();
  for (QIsa isa : {QIsa::Scalar, QIsa::Avx2, QIsa::Avx512, QIsa::Avx512Vnni, QIsa::Neon, QIsa::NeonDot}) {
    EXPECT_EQ(qisa_parse(qisa_name(isa)), isa);
    EXPECT_EQ(qisa_set(isa), qisa_supported(isa)) << qisa_name(isa);
    if (qisa_supported(isa)) {
      EXPECT_EQ(qisa_active(), isa);
    }
  }
  qisa_set(before);
#if defined(__x86_64__)
  // Every x86 machine lathe targets has AVX2 (x86-64-v3); the selection must not fall to scalar.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    EXPECT_TRUE(qisa_supported(QIsa::Avx2));
  }
  EXPECT_FALSE(qisa_supported(QIsa::Neon));
  EXPECT_EQ(qisa_supported(QIsa::Avx512Vnni), qisa_supported(QIsa::Avx512) && __builtin_cpu_supports("avx512vnni"));
#endif
#if defined(__aarch64__)
  // ASIMD is part of every aarch64 Linux target; the best choice is never scalar there.
  EXPECT_TRUE(qisa_supported(QIsa::Neon));
  EXPECT_NE(qisa_active(), QIsa::Scalar);
  EXPECT_FALSE(qisa_supported(QIsa::Avx2));
  EXPECT_FALSE(qisa_supported(QIsa::Avx512Vnni));
#endif
}

// LATHE_CPU_ISA is read once per process, so each case runs in a fresh process: this binary again,
// running only QBlockIsaChild.ReportActive with the variable set. (Not a gtest death test: under
// ASan the parent hung in glibc's regexec while matching the child's stderr.)
TEST(QBlockIsaChild, ReportActive) {
  if (!std::getenv("LATHE_QBLOCK_ISA_CHILD")) GTEST_SKIP() << "runs only as LatheCpuIsaIsReadAndChecked's child";
  try {
    std::printf("active=%d\n", int(qisa_active()));
    std::fflush(stdout);
    std::_Exit(10 + int(qisa_active()));
  } catch (const Error& e) {
    std::printf("error: %s\n", e.what());
    std::fflush(stdout);
    std::_Exit(3);
  }
}

TEST(QBlock, LatheCpuIsaIsReadAndChecked) {
  auto run_with = [](const char* v, std::string* out) {
    // The path behind /proc/self/exe, not /proc/<pid>/exe: under qemu-user the latter is the emulator,
    // while qemu answers /proc/self/exe with the program it runs (which binfmt_misc then runs again).
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::string cmd = std::string("LATHE_QBLOCK_ISA_CHILD=1 LATHE_CPU_ISA=") + v + " '" + self +
                            "' --gtest_filter=QBlockIsaChild.ReportActive 2>&1";
    return lathe::test::run_shell(cmd, out);
  };
  std::string out;
  EXPECT_EQ(run_with("sse9", &out), 3) << out;
  EXPECT_NE(out.find("LATHE_CPU_ISA='sse9'"), std::string::npos) << out;
  EXPECT_EQ(run_with("scalar", &out), 10) << out;
  for (QIsa isa : {QIsa::Avx2, QIsa::Avx512, QIsa::Avx512Vnni, QIsa::Neon, QIsa::NeonDot}) {
    if (qisa_supported(isa)) {
      EXPECT_EQ(run_with(qisa_name(isa), &out), 10 + int(isa)) << out;
    } else {
      EXPECT_EQ(run_with(qisa_name(isa), &out), 3) << out;
      EXPECT_NE(out.find("cannot run it"), std::string::npos) << out;
    }
  }
}

class QBlockIsa : public qtest::IsaFixture {};

// Inputs with exact ties of x*id at k + 0.5 (amax 127 makes d = 1, id = 1), zeros, a zero block, tiny
// and huge scales, then noise; odd offsets so the loads are unaligned.
TEST_P(QBlockIsa, ActivationBlocksBitForBitAndWithinTheBound) {
  std::vector<float> x;
  for (int j = 0; j < 32; j++) x.push_back(j == 0 ? 127.0f : float(j) - 16.5f);
  for (int j = 0; j < 32; j++) x.push_back(j == 5 ? -127.0f : -(float(j) + 0.5f));
  for (int j = 0; j < 32; j++) x.push_back(0.0f);
  for (float s : {1e-30f, 1e-6f, 1.0f, 1e5f}) {
    auto r = randn(96, s, 7);
    x.insert(x.end(), r.begin(), r.end());
  }
  for (size_t off : {size_t(0), size_t(1), size_t(3)}) {
    std::vector<float> buf(off + x.size());
    std::copy(x.begin(), x.end(), buf.begin() + off);
    const int64_t nb = int64_t(x.size()) / 32;
    std::vector<BlockQ8A> want(nb), got(nb);
    ref().quantize_act(buf.data() + off, want.data(), nb);
    kern().quantize_act(buf.data() + off, got.data(), nb);
    for (int64_t b = 0; b < nb; b++) {
      ASSERT_EQ(std::memcmp(&want[b].d, &got[b].d, 4), 0) << "block " << b;
      ASSERT_EQ(want[b].sum, got[b].sum) << "block " << b;
      int32_t sum = 0;
      for (int j = 0; j < 32; j++) sum += got[b].q[j];
      ASSERT_EQ(got[b].sum, sum) << "block " << b;
      float amax = 0;
      for (int j = 0; j < 32; j++) {
        ASSERT_EQ(want[b].q[j], got[b].q[j]) << "block " << b << " elem " << j << " x=" << x[b * 32 + j];
        amax = std::max(amax, std::fabs(x[b * 32 + j]));
      }
      const double bound = double(amax) * (1.0 / 254 + 1.0 / (1 << 22));
      for (int j = 0; j < 32; j++)
        ASSERT_LE(std::fabs(double(x[b * 32 + j]) - double(got[b].d) * got[b].q[j]), bound) << b << " " << j;
    }
    // The ties of the first two blocks round away from zero: -15.5 -> -16, 0.5 -> 1, -0.5 -> -1.
    EXPECT_EQ(got[0].q[1], -16);
    EXPECT_EQ(got[0].q[17], 1);
    EXPECT_EQ(got[0].q[16], -1);
    EXPECT_EQ(got[1].q[0], -1);
    EXPECT_EQ(got[2].d, 0.0f);
  }
}

// Weights and activations with unit scales: each block's integer sum goes to f32 exactly, and as long
// as Σ|w*a| < 2^24 every partial sum in any order is an exact integer: the variant must return the
// exact total. Covers the extremes (|q| = 127, Q8_0 weight -128, Q4_0 nibbles 0 and 15).
TEST_P(QBlockIsa, IntegerDotProductsExact) {
  std::mt19937 rng(5);
  for (QType t : {QType::Q8_0, QType::Q4_0}) {
    for (int64_t k : {32, 96, 1024, 4096}) {
      const int64_t nb = k / 32;
      // Bound each |w*a| so that the sum of magnitudes stays below 2^24 (at K = 4096 Q8_0 needs < 64).
      const int lim = t == QType::Q8_0 && k > 1024 ? 63 : 127;
      std::uniform_int_distribution<int> qa(-lim, lim), qw(-lim, lim), nib(0, 15);
      std::vector<BlockQ8A> a(nb);
      std::vector<uint8_t> w(qblock_row_bytes(t, k));
      const uint16_t one = f32_to_f16(1.0f);
      for (int64_t b = 0; b < nb; b++) {
        a[b].d = 1.0f;
        uint8_t* blk = w.data() + b * qblock_bytes(t);
        std::memcpy(blk, &one, 2);
        a[b].sum = 0;
        for (int j = 0; j < 32; j++) {
          a[b].q[j] = int8_t(b == 0 ? (j % 2 ? 127 : -127) : qa(rng));
          a[b].sum += a[b].q[j];
        }
        if (t == QType::Q8_0) {
          for (int j = 0; j < 32; j++) blk[2 + j] = uint8_t(int8_t(b == 0 && lim == 127 ? (j < 16 ? -128 : 127) : qw(rng)));
        } else {
          for (int j = 0; j < 16; j++) blk[2 + j] = uint8_t(b == 0 ? (j % 2 ? 0xf0 : 0x0f) : nib(rng) | (nib(rng) << 4));
        }
      }
      std::vector<int32_t> isum(nb);
      qdetail::block_isums(t, w.data(), a.data(), nb, isum.data());
      int64_t exact = 0, mag = 0;
      for (int64_t b = 0; b < nb; b++) exact += isum[b];
      for (int64_t b = 0; b < nb; b++) {
        const int8_t* q = reinterpret_cast<const int8_t*>(w.data() + b * qblock_bytes(t) + 2);
        for (int j = 0; j < 32; j++) {
          const int wq = t == QType::Q8_0 ? q[j] : (j < 16 ? (w[b * 18 + 2 + j] & 15) : (w[b * 18 + 2 + j - 16] >> 4)) - 8;
          mag += std::abs(wq * a[b].q[j]);
        }
      }
      ASSERT_LT(mag, int64_t(1) << 24) << "test data too large to be exact";
      const auto dot = t == QType::Q8_0 ? kern().dot_q8_0 : kern().dot_q4_0;
      float got = 0;
      dot(w.data(), a.data(), nb, nb, 1, &got);
      EXPECT_EQ(double(got), double(exact)) << qtype_name(t) << " K=" << k;
    }
  }
}

// A variant's multi-row decode kernel (rows_q4_0, when it has one): n weight rows against one
// activation row give each row the bits of dot_q4_0 with m = 1, whatever n and the row's place in its
// group of four; with unit scales every row's result is its exact integer total.
TEST_P(QBlockIsa, RowsKernelEqualsTheDotPerRow) {
  if (!kern().rows_q4_0) GTEST_SKIP() << qisa_name(GetParam()) << " has no multi-row Q4_0 kernel";
  std::mt19937 rng(11);
  for (int64_t k : {32, 64, 96, 1536}) {
    const int64_t nb = k / 32;
    for (int64_t n : {1, 3, 4, 5, 9}) {
      for (bool unit : {true, false}) {
        const size_t rb = qblock_row_bytes(QType::Q4_0, k);
        std::vector<uint8_t> w(size_t(n) * rb + 1);  // one byte in: unaligned rows
        uint8_t* w0 = w.data() + 1;
        std::vector<BlockQ8A> a(nb);
        if (unit) {
          std::uniform_int_distribution<int> qa(-127, 127), nib(0, 15);
          const uint16_t one = f32_to_f16(1.0f);
          for (int64_t b = 0; b < nb; b++) {
            a[b].d = 1.0f, a[b].sum = 0;
            for (int j = 0; j < 32; j++) a[b].sum += (a[b].q[j] = int8_t(qa(rng)));
          }
          for (int64_t r = 0; r < n; r++)
            for (int64_t b = 0; b < nb; b++) {
              uint8_t* blk = w0 + size_t(r) * rb + b * kQ4_0BlockBytes;
              std::memcpy(blk, &one, 2);
              for (int j = 0; j < 16; j++) blk[2 + j] = uint8_t(nib(rng) | (nib(rng) << 4));
            }
        } else {
          const auto wf = randn(size_t(n) * k, 0.05f, uint32_t(31 + k + n));
          const auto x = randn(k, 1.0f, uint32_t(32 + k));
          for (int64_t r = 0; r < n; r++) quantize_row(QType::Q4_0, wf.data() + r * k, w0 + r * rb, k);
          ref().quantize_act(x.data(), a.data(), nb);
        }
        std::vector<float> got(n);
        kern().rows_q4_0(w0, rb, n, a.data(), nb, got.data());
        for (int64_t r = 0; r < n; r++) {
          float want = 0;
          kern().dot_q4_0(w0 + size_t(r) * rb, a.data(), nb, nb, 1, &want);
          ASSERT_EQ(std::memcmp(&want, &got[r], 4), 0) << "K=" << k << " n=" << n << " row " << r;
          if (unit) {
            std::vector<int32_t> isum(nb);
            qdetail::block_isums(QType::Q4_0, w0 + size_t(r) * rb, a.data(), nb, isum.data());
            int64_t exact = 0;
            for (int32_t v : isum) exact += v;
            ASSERT_EQ(double(got[r]), double(exact)) << "K=" << k << " n=" << n << " row " << r;
          }
        }
      }
    }
  }
}

// Real scales: the variant against the scalar reference within the f32 summation bound
// (nb + 24) u Σ_b |d_w d_a isum_b|, and both against the f64 product of the dequantized weights and
// the f32 input within the activation bound of qblock.h plus the same summation slack.
TEST_P(QBlockIsa, DotWithinTheStatedBounds) {
  for (QType t : {QType::Q8_0, QType::Q4_0}) {
    for (int64_t k : {32, 96, 4096}) {
      const int64_t nb = k / 32;
      const auto wf = randn(k, 0.05f, 21 + k);
      auto x = randn(k, 2.0f, 22 + k);
      x[7] = 40.0f;  // an outlier, as activations have
      std::vector<uint8_t> w(qblock_row_bytes(t, k));
      quantize_row(t, wf.data(), w.data(), k);
      std::vector<BlockQ8A> a(nb);
      ref().quantize_act(x.data(), a.data(), nb);
      const auto dot = t == QType::Q8_0 ? kern().dot_q8_0 : kern().dot_q4_0;
      const auto dot_ref = t == QType::Q8_0 ? ref().dot_q8_0 : ref().dot_q4_0;
      float got = 0, want = 0;
      dot(w.data(), a.data(), nb, nb, 1, &got);
      dot_ref(w.data(), a.data(), nb, nb, 1, &want);
      std::vector<int32_t> isum(nb);
      qdetail::block_isums(t, w.data(), a.data(), nb, isum.data());
      const auto wd = dequantize(t, w.data(), k);
      double mag = 0, exact = 0, qbound = 0;
      for (int64_t b = 0; b < nb; b++) {
        uint16_t h;
        std::memcpy(&h, w.data() + b * qblock_bytes(t), 2);
        mag += std::fabs(double(f16_to_f32(h)) * a[b].d * isum[b]);
        double amax = 0, wl1 = 0;
        for (int j = 0; j < 32; j++) {
          exact += double(wd[b * 32 + j]) * x[b * 32 + j];
          amax = std::max(amax, std::fabs(double(x[b * 32 + j])));
          wl1 += std::fabs(double(wd[b * 32 + j]));
        }
        qbound += amax * (1.0 / 254 + 1.0 / (1 << 22)) * wl1;
      }
      const double slack = double(nb + 24) * kU * mag;
      EXPECT_LE(std::fabs(double(got) - want), 2 * slack) << qtype_name(t) << " K=" << k;
      EXPECT_LE(std::fabs(double(got) - exact), qbound + slack) << qtype_name(t) << " K=" << k;
      // The bound is not vacuous: the error is well below it but the bound is below the product's scale.
      EXPECT_LT(qbound, 0.5 * mag + 1e-30) << qtype_name(t) << " K=" << k;
    }
  }
}

// qmatmul_forward on odd shapes: row m of an M-row product equals the M = 1 product of that row bit
// for bit (and qvec_dot + bias), two threads equal one, pointers at odd addresses change nothing,
// and the result stays within the bound of the f64 product of the dequantized weights.
TEST_P(QBlockIsa, MatmulOddShapesAndPointers) {
  for (QType t : {QType::Q8_0, QType::Q4_0}) {
    for (int64_t k : {32, 96, 4096}) {
      for (int64_t n : {1, 3, 17, 4097}) {
        if (k == 4096 && n == 4097 && GetParam() == QIsa::Scalar && t == QType::Q4_0) continue;  // time
        const int M = 9;  // two passes of the 8-row group: 8 + 1
        const auto wf = randn(size_t(n) * k, 0.03f, uint32_t(n * 7 + k));
        const auto xin = randn(size_t(M) * k, 1.0f, uint32_t(n + k));
        const auto wq = quantize_matrix(t, wf, n, k);
        const auto bias = randn(n, 0.1f, 9);
        // Odd placements: weights 3 bytes in, input one float in, scratch 1 byte in.
        std::vector<uint8_t> wbuf(wq.size() + 3);
        std::memcpy(wbuf.data() + 3, wq.data(), wq.size());
        std::vector<float> xbuf(xin.size() + 1);
        std::copy(xin.begin(), xin.end(), xbuf.begin() + 1);
        std::vector<uint8_t> scratch(qmatmul_scratch_bytes(M, k) + 1);

        std::vector<float> all(size_t(M) * n), one(n), two_threads(size_t(M) * n);
        set_num_threads(1);
        qmatmul_forward(all.data(), xbuf.data() + 1, wbuf.data() + 3, t, bias.data(), M, k, n, scratch.data() + 1);
        set_num_threads(2);
        qmatmul_forward(two_threads.data(), xin.data(), wq.data(), t, bias.data(), M, k, n);
        set_num_threads(1);
        ASSERT_EQ(std::memcmp(all.data(), two_threads.data(), all.size() * 4), 0)
            << qtype_name(t) << " K=" << k << " N=" << n;
        const auto wd = dequantize(t, wq.data(), int64_t(wq.size() / qblock_bytes(t)) * 32);
        const int64_t nb = k / 32;
        std::vector<BlockQ8A> a(nb);
        for (int m : {0, 4, 7, 8}) {
          qmatmul_forward(one.data(), xin.data() + size_t(m) * k, wq.data(), t, bias.data(), 1, k, n);
          ASSERT_EQ(std::memcmp(one.data(), all.data() + size_t(m) * n, size_t(n) * 4), 0)
              << qtype_name(t) << " K=" << k << " N=" << n << " row " << m;
          quantize_act_q8(xin.data() + size_t(m) * k, a.data(), k);
          for (int64_t r : {int64_t(0), n / 2, n - 1}) {
            const float d = qvec_dot(t, wq.data() + size_t(r) * qblock_row_bytes(t, k), a.data(), nb);
            ASSERT_EQ(d + bias[r], one[r]) << "row " << r;
            double exact = bias[r], qbound = 0, mag = 0;
            for (int64_t b = 0; b < nb; b++) {
              double amax = 0, wl1 = 0;
              for (int j = 0; j < 32; j++) {
                const double wv = wd[size_t(r) * k + b * 32 + j], xv = xin[size_t(m) * k + b * 32 + j];
                exact += wv * xv;
                amax = std::max(amax, std::fabs(xv));
                wl1 += std::fabs(wv);
                mag += std::fabs(wv * xv);
              }
              qbound += amax * (1.0 / 254 + 1.0 / (1 << 22)) * wl1;
            }
            ASSERT_LE(std::fabs(double(one[r]) - exact), qbound + double(nb + 26) * kU * (mag + qbound + std::fabs(bias[r])))
                << qtype_name(t) << " K=" << k << " N=" << n << " row " << r;
          }
        }
      }
    }
  }
}

// From kQPrefillRows input rows on, qmatmul_forward is sgemm on dequantized weight tiles: the result is
// the f32 product of the dequantized weights (no activation quantization), within f32 accumulation error
// of the f64 product; two threads give the bits one thread gives; dequantize_row gives the GGUF
// reader's values bit for bit. The tile edges (N not a multiple of 16, more tiles than threads) and a
// bias are covered.
// The tests of the dequantize + sgemm prefill pin a variant that uses it: avx512vnni runs the block
// types' prefill on its integer GEMM (IntegerPrefillOnVnni below).
struct TilesPrefill {
  QIsa before = qisa_active();
  TilesPrefill() {
    if (before == QIsa::Avx512Vnni) qisa_set(QIsa::Avx512);
  }
  ~TilesPrefill() { qisa_set(before); }
};

TEST(QBlock, PrefillIsTheProductOfTheDequantizedWeights) {
  const TilesPrefill pin;
  for (QType t : {QType::Q8_0, QType::Q4_0}) {
    for (int M : {kQPrefillRows, 33}) {
      for (int64_t k : {32, 576}) {
        for (int64_t n : {1, 17, 1000}) {
          const auto wf = randn(size_t(n) * k, 0.03f, uint32_t(n * 3 + k));
          const auto xin = randn(size_t(M) * k, 1.0f, uint32_t(n + k + M));
          const auto wq = quantize_matrix(t, wf, n, k);
          const auto bias = randn(n, 0.1f, 5);
          const auto wd = dequantize(t, wq.data(), n * k);
          std::vector<float> row(k);
          for (int64_t r : {int64_t(0), n - 1}) {
            dequantize_row(t, wq.data() + size_t(r) * qblock_row_bytes(t, k), row.data(), k);
            ASSERT_EQ(std::memcmp(row.data(), wd.data() + size_t(r) * k, size_t(k) * 4), 0) << "row " << r;
          }
          std::vector<float> one(size_t(M) * n), two(size_t(M) * n);
          set_num_threads(1);
          qmatmul_forward(one.data(), xin.data(), wq.data(), t, bias.data(), M, k, n);
          set_num_threads(2);
          qmatmul_forward(two.data(), xin.data(), wq.data(), t, bias.data(), M, k, n);
          set_num_threads(1);
          ASSERT_EQ(std::memcmp(one.data(), two.data(), one.size() * 4), 0) << qtype_name(t) << " M=" << M << " N=" << n;
          for (int m : {0, M / 2, M - 1}) {
            for (int64_t r = 0; r < n; r += std::max<int64_t>(1, n / 7)) {
              double exact = bias[r], mag = std::fabs(bias[r]);
              for (int64_t j = 0; j < k; j++) {
                exact += double(wd[size_t(r) * k + j]) * xin[size_t(m) * k + j];
                mag += std::fabs(double(wd[size_t(r) * k + j]) * xin[size_t(m) * k + j]);
              }
              ASSERT_LE(std::fabs(one[size_t(m) * n + r] - exact), double(k + 2) * kU * mag)
                  << qtype_name(t) << " M=" << M << " K=" << k << " N=" << n << " m=" << m << " r=" << r;
            }
          }
        }
      }
    }
  }
}

// The types of a group: Q8_0/Q4_0 at K = 96, and the K-quants with F16 / BF16 (no activation blocks) at K = 256.
const QType kTypesA[3] = {QType::Q8_0, QType::Q4_0, QType::Q8_0};
const QType kTypesB[3] = {QType::Q4_K, QType::F16, QType::Q6_K};
const QType kTypesC[3] = {QType::BF16, QType::Q6_K, QType::F16};

void parts_equal_separate_products(const QType* ts, int64_t k) {
  const int64_t ns[3] = {300, 17, 1000};
  std::vector<std::vector<uint8_t>> w;
  for (int p = 0; p < 3; p++) w.push_back(quantize_matrix(ts[p], randn(size_t(ns[p]) * k, 0.05f, uint32_t(p + 1)), ns[p], k));
  const auto bias = randn(1000, 0.1f, 4);
  for (int M : {1, 3, 9, kQPrefillRows + 1}) {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const auto x = randn(size_t(M) * k, 1.0f, uint32_t(M));
      std::vector<std::vector<float>> grouped(3), alone(3);
      QMatmulPart parts[3];
      for (int p = 0; p < 3; p++) {
        grouped[p].assign(size_t(M) * ns[p], -1.0f), alone[p].assign(size_t(M) * ns[p], -2.0f);
        const float* b = p == 1 ? nullptr : bias.data();
        parts[p] = {w[p].data(), ts[p], b, grouped[p].data(), ns[p]};
        qmatmul_forward(alone[p].data(), x.data(), w[p].data(), ts[p], b, M, k, ns[p]);
      }
      qmatmul_forward_parts(x.data(), M, k, parts, 3);
      for (int p = 0; p < 3; p++)
        ASSERT_EQ(std::memcmp(grouped[p].data(), alone[p].data(), grouped[p].size() * 4), 0)
            << "part " << p << " M=" << M << " threads " << threads;
    }
  }
  set_num_threads(1);
}

// A group of products of one input (q/k/v, gate/up) equals the products made one by one, bit for bit,
// at decode sizes (one quantization of the input, one parallel region) and at prefill sizes; parts of
// different types and with and without bias mix.
TEST(QBlock, PartsEqualSeparateProducts) {
  for (const QType* ts : {kTypesA, kTypesB, kTypesC}) parts_equal_separate_products(ts, ts == kTypesA ? 96 : 256);
}

// avx512vnni: Q8_0, Q4_0, Q4_K and Q6_K prefill on the integer GEMM (qgemm_vnni.cpp). Two threads give
// one thread's bits, every element is within the activation bound of qblock.h of the f64 product of
// the dequantized weights, and each row agrees with its decode (M = 1) product to f32 rounding (the
// same activation blocks and exact block sums, another order of additions). Exact integer products:
// qgemm_vnni_unit.cpp.
TEST(QBlock, IntegerPrefillOnVnni) {
  if (!qisa_supported(QIsa::Avx512Vnni)) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  const QIsa before = qisa_active();
  ASSERT_TRUE(qisa_set(QIsa::Avx512Vnni));
  for (QType t : {QType::Q8_0, QType::Q4_0, QType::Q4_K, QType::Q6_K}) {
    const bool kq = t == QType::Q4_K || t == QType::Q6_K;
    for (int M : {kQPrefillRows, 33}) {
      for (int64_t k : kq ? std::vector<int64_t>{256, 768} : std::vector<int64_t>{32, 96, 576}) {
        for (int64_t n : {1, 17, 45}) {
          const auto wq = quantize_matrix(t, randn(size_t(n) * k, 0.03f, uint32_t(n * 5 + k)), n, k);
          const auto xin = randn(size_t(M) * k, 1.0f, uint32_t(n + k + M));
          const auto bias = randn(n, 0.1f, 6);
          std::vector<float> one(size_t(M) * n), two(size_t(M) * n), dec(n), wrow(k);
          set_num_threads(1);
          qmatmul_forward(one.data(), xin.data(), wq.data(), t, bias.data(), M, k, n);
          set_num_threads(2);
          qmatmul_forward(two.data(), xin.data(), wq.data(), t, bias.data(), M, k, n);
          set_num_threads(1);
          ASSERT_EQ(std::memcmp(one.data(), two.data(), one.size() * 4), 0) << qtype_name(t) << " M=" << M << " N=" << n;
          std::vector<std::vector<float>> decs(M);  // each row's decode product (agrees to rounding)
          for (int m = 0; m < M; m++) {
            qmatmul_forward(dec.data(), xin.data() + size_t(m) * k, wq.data(), t, bias.data(), 1, k, n);
            decs[m] = dec;
          }
          for (int64_t r = 0; r < n; r++) {
            dequantize_row(t, wq.data() + size_t(r) * qblock_row_bytes(t, k), wrow.data(), k);
            for (int m : {0, M / 2, M - 1}) {
              double exact = bias[r], qbound = 0, mag = 0;
              for (int64_t b = 0; b < k / 32; b++) {
                double amax = 0, wl1 = 0;
                for (int j = 0; j < 32; j++) {
                  const double wv = wrow[b * 32 + j], xv = xin[size_t(m) * k + b * 32 + j];
                  exact += wv * xv;
                  amax = std::max(amax, std::fabs(xv));
                  wl1 += std::fabs(wv);
                  mag += std::fabs(wv * xv);
                }
                qbound += amax * (1.0 / 254 + 1.0 / (1 << 22)) * wl1;
              }
              const double slack = double(k / 8 + 40) * kU * 4 * (mag + qbound + std::fabs(bias[r]));
              ASSERT_LE(std::fabs(double(one[size_t(m) * n + r]) - exact), qbound + slack)
                  << qtype_name(t) << " M=" << M << " K=" << k << " N=" << n << " m=" << m << " r=" << r;
              // Same activation blocks and exact block sums as decode: only the f32 order differs.
              ASSERT_LE(std::fabs(double(one[size_t(m) * n + r]) - decs[m][r]), 2 * slack)
                  << qtype_name(t) << " vs decode, M=" << M << " K=" << k << " N=" << n << " m=" << m << " r=" << r;
            }
          }
        }
      }
    }
  }
  qisa_set(before);
}

// The prefill tiles hold exactly dequantize_row's values for every type (the F16 tile is converted
// with F16C where the CPU has it): with one-hot input rows, out[m][n] = 1 * W[n][m] + 0 * ... is the
// weight itself, bit for bit. The F16 weights are every finite half, subnormals and -0 included.
TEST(QBlock, PrefillTilesHoldTheDequantizedValues) {
  const TilesPrefill pin;
  const int M = kQPrefillRows;
  for (QType t : {QType::Q8_0, QType::Q4_0, QType::Q4_K, QType::Q6_K, QType::F16, QType::BF16}) {
    const int64_t k = 256, n = 300;
    std::vector<uint8_t> w;
    if (t == QType::F16) {
      w.resize(size_t(n) * k * 2);
      uint16_t h = 0;
      for (size_t i = 0; i < w.size() / 2; i++) {
        do h = uint16_t(h * 40503u + 12345u); while ((h & 0x7c00) == 0x7c00);  // finite halves only
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
    } else {
      w = quantize_matrix(t, randn(size_t(n) * k, 0.05f, 11), n, k);
    }
    std::vector<float> onehot(size_t(M) * k, 0.0f), out(size_t(M) * n), row(k);
    for (int m = 0; m < M; m++) onehot[size_t(m) * k + m * 7] = 1.0f;
    qmatmul_forward(out.data(), onehot.data(), w.data(), t, nullptr, M, k, n);
    for (int64_t r = 0; r < n; r++) {
      dequantize_row(t, w.data() + size_t(r) * qblock_row_bytes(t, k), row.data(), k);
      for (int m = 0; m < M; m++) {
        const float want = row[size_t(m) * 7] + 0.0f;  // sgemm's sum starts from +0: -0 comes out as +0
        ASSERT_EQ(std::memcmp(&out[size_t(m) * n + r], &want, 4), 0)
            << qtype_name(t) << " row " << r << " col " << m * 7 << ": " << out[size_t(m) * n + r] << " vs " << want;
      }
    }
  }
}

TEST(QBlock, RejectsRowsNotMultipleOf32) {
  std::vector<float> x(40), y(1);
  std::vector<uint8_t> w(64);
  EXPECT_NE(test::error_of([&] { quantize_row_q8_0(x.data(), w.data(), 40); }).find("multiple of 32"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { qmatmul_forward(y.data(), x.data(), w.data(), QType::Q4_0, nullptr, 1, 40, 1); })
                .find("multiple of 32"),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Variants, QBlockIsa, ::testing::Values(QIsa::Scalar, QIsa::Avx2, QIsa::Avx512, QIsa::Avx512Vnni,
                                                                     QIsa::Neon, QIsa::NeonDot),
                         qtest::isa_param_name);

}  // namespace
}  // namespace lathe
