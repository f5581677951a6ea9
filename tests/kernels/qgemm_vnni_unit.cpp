// The avx512vnni prefill GEMM (kernels/cpu/qgemm_vnni.cpp) on integer data: with unit weight and
// activation scales every partial sum is an exact integer below 2^24 in f32, so whatever the order of
// the additions the product must be the exact integer product, which checks the panel repack (byte
// groups, nibble halves, Q4_K scales and mins, Q6_K's 2-bit tops and 16-element scales), the offsets
// and the tile edges bit for bit. Odd shapes: M not a multiple of the 8-row tile, N not a multiple of
// the 16-row panel. (Real-valued data, 1 vs 2 threads and the decode comparison: qblock_unit.cpp,
// IntegerPrefillOnVnni.)
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "lathe/core/kquant_blocks.h"
#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/qblock.h"

namespace lathe {
namespace {

// One row of k elements of type t with unit scales (d = dmin = 1) and random integer values; Q4_K's
// 6-bit scales and mins and Q6_K's int8 scales are kept small so that every sum stays below 2^24.
std::vector<uint8_t> integer_row(QType t, int64_t k, std::mt19937& rng) {
  std::vector<uint8_t> row(qblock_row_bytes(t, k));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : row) b = uint8_t(byte(rng));
  const uint16_t one = 0x3C00;  // f16 1.0
  const size_t bb = qblock_bytes(t);
  for (size_t off = 0; off < row.size(); off += bb) {
    uint8_t* blk = row.data() + off;
    if (t == QType::Q8_0 || t == QType::Q4_0) {
      std::memcpy(blk, &one, 2);
    } else if (t == QType::Q4_K) {
      std::memcpy(blk, &one, 2);
      std::memcpy(blk + 2, &one, 2);
      // scales[0..11]: keep each decoded 6-bit value below 16 (sc, m <= 15) by clearing bits 4-5 / 6-7.
      for (int j = 0; j < 8; j++) blk[4 + j] &= 0x0f;  // sc_j, m_j of j < 4 (low 6 bits), tops of j >= 4
      for (int j = 8; j < 12; j++) blk[4 + j] = uint8_t(byte(rng));
    } else {  // Q6_K
      std::uniform_int_distribution<int> sc(-8, 8);
      for (int s = 0; s < 16; s++) blk[192 + s] = uint8_t(int8_t(sc(rng)));
      std::memcpy(blk + 208, &one, 2);
    }
  }
  return row;
}

// Input rows whose activation blocks have d = 1 exactly: one element ±127 per block, the rest small.
std::vector<float> integer_inputs(int M, int64_t k, std::mt19937& rng) {
  std::uniform_int_distribution<int> small(-3, 3), pos(0, 31), sign(0, 1);
  std::vector<float> x(size_t(M) * k);
  for (auto& v : x) v = float(small(rng));
  for (size_t b = 0; b < x.size() / 32; b++) x[b * 32 + pos(rng)] = sign(rng) ? 127.0f : -127.0f;
  return x;
}

TEST(QGemmVnni, IntegerProductsExact) {
  if (!qisa_supported(QIsa::Avx512Vnni)) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  const QIsa before = qisa_active();
  ASSERT_TRUE(qisa_set(QIsa::Avx512Vnni));
  std::mt19937 rng(11);
  for (QType t : {QType::Q8_0, QType::Q4_0, QType::Q4_K, QType::Q6_K}) {
    const bool kq = t == QType::Q4_K || t == QType::Q6_K;
    for (int64_t k : kq ? std::vector<int64_t>{256, 512} : std::vector<int64_t>{32, 96, 512}) {
      for (int M : {kQPrefillRows, 21, 40}) {
        for (int64_t n : {1, 17, 40}) {
          std::vector<uint8_t> w;
          for (int64_t r = 0; r < n; r++) {
            const auto row = integer_row(t, k, rng);
            w.insert(w.end(), row.begin(), row.end());
          }
          const auto x = integer_inputs(M, k, rng);
          std::vector<float> bias(n);
          for (int64_t r = 0; r < n; r++) bias[r] = float(int(r % 7) - 3);
          std::vector<float> out(size_t(M) * n, -1.0f), wrow(k);
          for (int threads : {1, 2}) {
            set_num_threads(threads);
            qmatmul_forward(out.data(), x.data(), w.data(), t, bias.data(), M, k, n);
            for (int64_t r = 0; r < n; r++) {
              dequantize_row(t, w.data() + size_t(r) * qblock_row_bytes(t, k), wrow.data(), k);
              for (int m = 0; m < M; m++) {
                int64_t exact = int64_t(bias[r]);
                for (int64_t j = 0; j < k; j++) exact += int64_t(wrow[j]) * int64_t(x[size_t(m) * k + j]);
                ASSERT_LT(std::llabs(exact), int64_t(1) << 24);
                ASSERT_EQ(out[size_t(m) * n + r], float(exact))
                    << qtype_name(t) << " K=" << k << " M=" << M << " N=" << n << " m=" << m << " r=" << r
                    << " threads=" << threads;
              }
            }
          }
          set_num_threads(1);
        }
      }
    }
  }
  qisa_set(before);
}

}  // namespace
}  // namespace lathe
