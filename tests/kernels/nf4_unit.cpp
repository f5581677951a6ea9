// NF4 storage against bitsandbytes' rules, bit for bit (tests/data/nf4/golden.json; regenerate
// with: /usr/bin/python3 tools/golden/gen_nf4_goldens.py), plus the tiled NF4 matmuls against
// dequantize + the reference matmul on odd shapes, and the storage cost.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/kernels/quant/nf4.h"
#include "lathe/kernels/ref/ref.h"
#include "test_util.h"

using nlohmann::json;

namespace lathe {
namespace {

constexpr const char* kRegen = " (regenerate goldens: /usr/bin/python3 tools/golden/gen_nf4_goldens.py)";

const json& goldens() {
  static const json j = json::parse(read_file(test::source_path("tests/data/nf4/golden.json")));
  return j;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
std::vector<float> floats(const json& bits) {
  std::vector<float> v;
  for (const auto& b : bits) v.push_back(from_bits(b.get<uint32_t>()));
  return v;
}

TEST(Nf4, CodeBookAndDynamicMapMatchBitsandbytes) {
  const json& g = goldens();
  for (int i = 0; i < 16; i++) EXPECT_EQ(to_bits(kNf4Code[i]), g["nf4_code_bits"][i].get<uint32_t>()) << i;
  const float* map = nf4_dynamic_map();
  for (int i = 0; i < 256; i++)
    EXPECT_EQ(to_bits(map[i]), g["dynamic_map_bits"][i].get<uint32_t>())
        << "dynamic map [" << i << "] = " << map[i] << " vs " << from_bits(g["dynamic_map_bits"][i]) << kRegen;
  EXPECT_EQ(map[255], 1.0f);
  for (int i = 1; i < 256; i++) EXPECT_LT(map[i - 1], map[i]) << i;
}

TEST(Nf4, QuantizeMatchesGoldensBitForBit) {
  ASSERT_GE(goldens()["cases"].size(), 11u) << kRegen;
  for (const auto& c : goldens()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const int64_t rows = c["rows"], cols = c["cols"];
    const int bs = c["blocksize"];
    const bool dq = c["double_quant"];
    const std::vector<float> x = floats(c["x_bits"]);
    Nf4Tensor w = nf4_quantize(x.data(), rows, cols, bs, dq);
    nf4_validate(w);

    const auto& packed = c["packed"];
    ASSERT_EQ(w.codes.size(), packed.size());
    for (size_t i = 0; i < packed.size(); i++)
      ASSERT_EQ(int(w.codes[i]), packed[i].get<int>()) << "byte " << i << kRegen;

    if (!dq) {
      const auto want = floats(c["absmax_bits"]);
      ASSERT_EQ(w.absmax.size(), want.size());
      for (size_t i = 0; i < want.size(); i++) ASSERT_EQ(to_bits(w.absmax[i]), to_bits(want[i])) << i;
    } else {
      EXPECT_EQ(to_bits(w.absmax_offset), c["offset_bits"].get<uint32_t>()) << kRegen;
      const auto& q = c["nested_codes"];
      ASSERT_EQ(w.absmax_q.size(), q.size());
      for (size_t i = 0; i < q.size(); i++) ASSERT_EQ(int(w.absmax_q[i]), q[i].get<int>()) << "nested " << i;
      const auto scales = floats(c["nested_scale_bits"]);
      ASSERT_EQ(w.absmax_scale.size(), scales.size());
      for (size_t i = 0; i < scales.size(); i++) ASSERT_EQ(to_bits(w.absmax_scale[i]), to_bits(scales[i])) << i;
      const auto want = floats(c["absmax_deq_bits"]);
      std::vector<float> got(size_t(w.num_blocks()));
      nf4_absmax(w, 0, w.num_blocks(), got.data());
      for (size_t i = 0; i < want.size(); i++) ASSERT_EQ(to_bits(got[i]), to_bits(want[i])) << "absmax " << i;
    }

    std::vector<float> deq(size_t(rows * cols));
    nf4_dequantize(w, deq.data());
    if (c.contains("deq_bits")) {
      const auto want = floats(c["deq_bits"]);
      for (size_t i = 0; i < want.size(); i++) ASSERT_EQ(deq[i], want[i]) << "element " << i << kRegen;
    }
    // Every row tile (including ones that start mid-block on an odd element) equals the whole.
    for (int64_t r0 = 0; r0 < rows; r0 += 3) {
      const int64_t nr = std::min<int64_t>(rows - r0, 1 + r0 % 4);
      std::vector<float> tile(size_t(nr * cols));
      nf4_dequantize_rows(w, r0, nr, tile.data());
      for (int64_t i = 0; i < nr * cols; i++) ASSERT_EQ(to_bits(tile[i]), to_bits(deq[r0 * cols + i])) << r0;
    }
  }
}

TEST(Nf4, AllZeroBlockEncodesLikeBitsandbytes) {
  // 0 * (1/0) is NaN and torch.argmin picks index 0 (-1.0): bytes 0x00, values -0 (== 0).
  std::vector<float> x(128, 0.0f);
  x[100] = 0.5f;
  Nf4Tensor w = nf4_quantize(x.data(), 2, 64, 64, false);
  for (int i = 0; i < 32; i++) EXPECT_EQ(w.codes[i], 0) << i;
  std::vector<float> out(128);
  nf4_dequantize(w, out.data());
  for (int i = 0; i < 128; i++) EXPECT_EQ(out[i], x[i]) << i;
}

// The nearest-code shortcut (two neighbours, lower wins ties) against the full argmin on every
// midpoint and a few floats either side of it, with absmax 1 so that scaled == x.
TEST(Nf4, NearestCodeEqualsFullArgmin) {
  std::vector<float> x;
  for (int i = 0; i < 15; i++) {
    float m = (kNf4Code[i] + kNf4Code[i + 1]) / 2.0f;
    float lo = m, hi = m;
    x.push_back(m);
    for (int k = 0; k < 3; k++) {
      lo = std::nextafter(lo, -2.0f);
      hi = std::nextafter(hi, 2.0f);
      x.push_back(lo);
      x.push_back(hi);
    }
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  while (x.size() % 63) x.push_back(u(rng));
  // Blocks of 64: 63 test values + 1.0 so that absmax = 1.
  std::vector<float> data;
  for (size_t i = 0; i < x.size(); i += 63) {
    data.insert(data.end(), x.begin() + i, x.begin() + i + 63);
    data.push_back(1.0f);
  }
  Nf4Tensor w = nf4_quantize(data.data(), 1, int64_t(data.size()), 64, false);
  for (size_t e = 0; e < data.size(); e++) {
    int best = 0;
    for (int i = 1; i < 16; i++)
      if (std::fabs(data[e] - kNf4Code[i]) < std::fabs(data[e] - kNf4Code[best])) best = i;
    int got = (e % 2 == 0) ? w.codes[e / 2] >> 4 : w.codes[e / 2] & 15;
    ASSERT_EQ(got, best) << "x = " << data[e];
  }
}

TEST(Nf4, RejectsBadBlocksizeAndBuffers) {
  std::vector<float> x(64, 1.0f);
  EXPECT_THROW(nf4_quantize(x.data(), 1, 64, 48), Error);
  EXPECT_THROW(nf4_quantize(x.data(), 1, 64, 16), Error);
  EXPECT_THROW(nf4_quantize(x.data(), 1, 64, 8192), Error);
  Nf4Tensor w = nf4_quantize(x.data(), 1, 64, 32, true);
  w.absmax_scale.push_back(1.0f);
  EXPECT_THROW(nf4_validate(w), Error);
}

TEST(Nf4, StorageIsAbout4Point127BitsPerParam) {
  const int64_t rows = 1536, cols = 576;  // a SmolLM2 MLP weight
  std::vector<float> x(size_t(rows * cols));
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (auto& v : x) v = nd(rng);
  const double n = double(rows * cols);
  Nf4Tensor dq = nf4_quantize(x.data(), rows, cols, 64, true);
  Nf4Tensor plain = nf4_quantize(x.data(), rows, cols, 64, false);
  const double bits_dq = 8.0 * double(nf4_bytes(dq)) / n, bits_plain = 8.0 * double(nf4_bytes(plain)) / n;
  EXPECT_NEAR(bits_dq, 4.0 + 8.0 / 64 + 32.0 / (64 * 256), 1e-3);  // 4.127
  EXPECT_NEAR(bits_plain, 4.5, 1e-3);
  // Double quantization perturbs absmax only a little: the dequantized weights stay close.
  std::vector<float> a(x.size()), b(x.size());
  nf4_dequantize(dq, a.data());
  nf4_dequantize(plain, b.data());
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); i++) {
    err += (a[i] - b[i]) * double(a[i] - b[i]);
    ref += double(b[i]) * b[i];
  }
  EXPECT_LT(std::sqrt(err / ref), 0.01);
}

void fill_normal(std::vector<float>& v, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  for (auto& e : v) e = nd(rng);
}

void expect_near_rel(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  for (size_t i = 0; i < want.size(); i++)
    ASSERT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i]))) << what << "[" << i << "]";
}

TEST(Nf4, MatmulForwardAndBackwardMatchDequantizedReference) {
  for (int M : {1, 7}) {
    for (int K : {64, 96}) {
      for (int N : {1, 100, 257}) {
        SCOPED_TRACE(::testing::Message() << "M=" << M << " K=" << K << " N=" << N);
        std::vector<float> wf(size_t(N) * K), inp(size_t(M) * K), bias(N), dout(size_t(M) * N);
        fill_normal(wf, 11 + N + K, 0.05f);
        fill_normal(inp, 12 + M);
        fill_normal(bias, 13);
        fill_normal(dout, 14 + N);
        Nf4Tensor w = nf4_quantize(wf.data(), N, K, 64, true);
        std::vector<float> wd(wf.size());
        nf4_dequantize(w, wd.data());
        std::vector<float> scratch(nf4_matmul_scratch_floats(w));

        for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
          std::vector<float> want(size_t(M) * N), got(size_t(M) * N, 123.0f);
          ref::matmul_forward(want.data(), inp.data(), wd.data(), b, M, K, N);
          nf4_matmul_forward(got.data(), inp.data(), w, b, M, K, N, scratch.data());
          expect_near_rel(got, want, b ? "out(bias)" : "out");
        }

        std::vector<float> want(size_t(M) * K, 0.5f), got(size_t(M) * K, 0.5f);  // accumulates
        ref::matmul_backward(want.data(), nullptr, nullptr, dout.data(), inp.data(), wd.data(), M, K, N);
        nf4_matmul_backward_input(got.data(), dout.data(), w, M, K, N, scratch.data());
        expect_near_rel(got, want, "dinp");
      }
    }
  }
}

}  // namespace
}  // namespace lathe
