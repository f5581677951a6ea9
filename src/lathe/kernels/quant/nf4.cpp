// NF4 quantize / dequantize. The rules are bitsandbytes' torch reference kernel
// (backends/default/ops.py quantize_4bit, functional.py quantize_4bit / create_dynamic_map),
// restated; tests/kernels/nf4_unit.cpp holds us to tools/golden/gen_nf4_goldens.py bit for bit.
#include "lathe/kernels/fp_round.h"
#include "lathe/kernels/quant/nf4.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "lathe/core/error.h"

namespace lathe {

const float kNf4Code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

namespace {

// torch.linspace(start, end, n) in float32, as torch's CPU kernel (1.13, AVX2 dispatch) produces
// it; bitsandbytes builds its dynamic map with it, so the map's last bits come from here:
//   step = (end - start) / (n - 1); element i = i < n/2 ? start + step*i : end - step*(n-1-i),
//   each fused into one FMA by the compiler that built torch. While 16 elements remain, torch
//   writes two 8-float vectors, each as base + j*step (product rounded, then the add) from base =
//   the formula at the vector's first index. The generator records the map torch gave; the test
//   compares ours to it.
std::vector<float> torch_linspace_f32(float start, float end, int n) {
  std::vector<float> out(n);
  const float step = (end - start) / float(n - 1);
  const int half = n / 2;
  auto scalar_at = [&](int i) {
    return i < half ? std::fma(step, float(i), start) : std::fma(-step, float(n - 1 - i), end);
  };
  constexpr int kVec = 8;
  int i = 0;
  for (; i + 2 * kVec <= n; i += 2 * kVec) {
    for (int v = i; v < i + 2 * kVec; v += kVec) {
      const float base = scalar_at(v);
      out[v] = base;
      for (int j = 1; j < kVec; j++) out[v + j] = base + round_here(float(j) * step);
    }
  }
  for (; i < n; i++) out[i] = scalar_at(i);
  return out;
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for e = 0..6, the
// midpoints of 2^e + 1 boundaries on [0.1, 1], times 10^(e-6), both signs (2 * 127 values),
// then 0 and 1; sorted. The scale is a Python float multiplied into a float32 tensor, which torch
// rounds to f32 first.
std::array<float, 256> build_dynamic_map() {
  static const double kPow10[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  std::vector<float> data;
  data.reserve(256);
  for (int e = 0; e < 7; e++) {
    std::vector<float> b = torch_linspace_f32(0.1f, 1.0f, (1 << e) + 1);
    float scale = float(kPow10[e]);
    for (size_t j = 0; j + 1 < b.size(); j++) {
      float mid = (b[j] + b[j + 1]) / 2.0f;
      data.push_back(scale * mid);
      data.push_back(-scale * mid);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  LATHE_CHECK(data.size() == 256, "{}", data.size());
  std::sort(data.begin(), data.end());
  std::array<float, 256> out;
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

// Index of the nearest value in a sorted, duplicate-free code book, as bitsandbytes' reference
// computes it: argmin_i |s - code[i]| in f32, the first index winning a tie, and a NaN (from an
// all-zero block: 0 * (1/0)) going to index 0 because torch.argmin returns the first NaN.
// Only the two neighbours of s can be the argmin (f32 rounding keeps |s - c| monotone on each side
// of s, and neighbouring codes are too far apart to round to the same distance), and the lower one
// wins a tie; the unit test checks this against the full argmin on midpoints and their neighbours.
inline int nearest_code(const float* code, int n, float s) {
  if (std::isnan(s)) return 0;
  int above = int(std::upper_bound(code, code + n, s) - code);  // first code > s
  if (above == 0) return 0;
  if (above == n) return n - 1;
  float d_lo = s - code[above - 1];
  float d_hi = code[above] - s;
  return d_hi < d_lo ? above : above - 1;
}

// The NF4 case of nearest_code with a branch-free count, since it runs on every weight.
inline int nearest_nf4(float s) {
  if (std::isnan(s)) return 0;
  int le = 0;  // codes <= s; kNf4Code[0] = -1 <= s because s is clamped to [-1, 1]
  for (int i = 0; i < 16; i++) le += kNf4Code[i] <= s;
  int lo = le - 1;
  if (lo >= 15) return 15;
  float d_lo = s - kNf4Code[lo];
  float d_hi = kNf4Code[lo + 1] - s;
  return d_hi < d_lo ? lo + 1 : lo;
}

// clamp(x * (1/absmax), -1, 1) as torch evaluates it: a reciprocal, a product, and a clamp that
// passes NaN through.
inline float scale_clamp(float x, float inv) {
  float s = round_here(x * inv);
  return s < -1.0f ? -1.0f : (s > 1.0f ? 1.0f : s);
}

bool valid_blocksize(int bs) { return bs >= 32 && bs <= 4096 && (bs & (bs - 1)) == 0; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

const float* nf4_dynamic_map() {
  static const std::array<float, 256> map = build_dynamic_map();
  return map.data();
}

Nf4Tensor nf4_quantize(const float* x, int64_t rows, int64_t cols, int blocksize, bool double_quant) {
  if (!valid_blocksize(blocksize))
    fail("nf4", "blocksize {} is not a power of two in 32..4096 (bitsandbytes' 4-bit range)", blocksize);
  if (rows < 0 || cols < 0) fail("nf4", "bad shape [{}, {}]", rows, cols);
  Nf4Tensor w;
  w.rows = rows;
  w.cols = cols;
  w.blocksize = blocksize;
  w.double_quant = double_quant;
  const int64_t n = w.numel();
  const int64_t nb = w.num_blocks();
  w.codes.assign(size_t(ceil_div(n, 2)), 0);
  std::vector<float> absmax(static_cast<size_t>(nb));

  // Blocks are independent, and start on even elements (blocksize >= 32), so each owns whole bytes.
#pragma omp parallel for schedule(static) if (nb > 64)
  for (int64_t b = 0; b < nb; b++) {
    const int64_t e0 = b * blocksize, e1 = std::min(n, e0 + blocksize);
    float amax = 0;
    for (int64_t e = e0; e < e1; e++) amax = std::max(amax, std::fabs(x[e]));
    absmax[b] = amax;
    const float inv = 1.0f / amax;  // inf for an all-zero block: the codes become NaN -> 0, as bnb
    for (int64_t e = e0; e < e1; e += 2) {
      int hi = nearest_nf4(scale_clamp(x[e], inv));
      int lo = e + 1 < e1 ? nearest_nf4(scale_clamp(x[e + 1], inv)) : 7;  // bnb pads odd n with 0.0
      w.codes[size_t(e / 2)] = uint8_t((hi << 4) | lo);
    }
  }

  if (!double_quant) {
    w.absmax = std::move(absmax);
    return w;
  }
  // offset = mean(absmax). bitsandbytes takes torch's f32 mean, whose summation order depends on
  // the build; a sequential double sum rounded once is as accurate and reproducible everywhere.
  double total = 0;
  for (float a : absmax) total += a;
  w.absmax_offset = nb ? float(total / double(nb)) : 0.0f;
  const float* map = nf4_dynamic_map();
  const int64_t nb2 = ceil_div(nb, kNf4NestedBlock);
  w.absmax_q.resize(size_t(nb));
  w.absmax_scale.resize(size_t(nb2));
  for (int64_t c = 0; c < nb2; c++) {
    const int64_t b0 = c * kNf4NestedBlock, b1 = std::min(nb, b0 + kNf4NestedBlock);
    float amax = 0;
    for (int64_t b = b0; b < b1; b++) amax = std::max(amax, std::fabs(absmax[b] - w.absmax_offset));
    w.absmax_scale[c] = amax;
    const float inv = 1.0f / amax;
    for (int64_t b = b0; b < b1; b++)
      w.absmax_q[b] = uint8_t(nearest_code(map, 256, scale_clamp(absmax[b] - w.absmax_offset, inv)));
  }
  return w;
}

void nf4_validate(const Nf4Tensor& w) {
  if (w.rows < 0 || w.cols < 0) fail("nf4", "bad shape [{}, {}]", w.rows, w.cols);
  if (!valid_blocksize(w.blocksize))
    fail("nf4", "blocksize {} is not a power of two in 32..4096", w.blocksize);
  const int64_t nb = w.num_blocks();
  if (int64_t(w.codes.size()) != ceil_div(w.numel(), 2))
    fail("nf4", "[{}, {}] needs {} packed bytes but has {}", w.rows, w.cols, ceil_div(w.numel(), 2),
         w.codes.size());
  if (!w.double_quant) {
    if (int64_t(w.absmax.size()) != nb) fail("nf4", "expected {} absmax values, got {}", nb, w.absmax.size());
    return;
  }
  if (int64_t(w.absmax_q.size()) != nb)
    fail("nf4", "expected {} quantized absmax values, got {}", nb, w.absmax_q.size());
  if (int64_t(w.absmax_scale.size()) != ceil_div(nb, kNf4NestedBlock))
    fail("nf4", "expected {} nested absmax values, got {}", ceil_div(nb, kNf4NestedBlock),
         w.absmax_scale.size());
  if (!w.absmax_map.empty() && w.absmax_map.size() != 256)
    fail("nf4", "the nested quant map has {} values, expected 256", w.absmax_map.size());
}

void nf4_absmax(const Nf4Tensor& w, int64_t b0, int64_t n, float* out) {
  LATHE_DCHECK(b0 >= 0 && b0 + n <= w.num_blocks(), "{} {} {}", b0, n, w.num_blocks());
  if (!w.double_quant) {
    std::memcpy(out, w.absmax.data() + b0, sizeof(float) * size_t(n));
    return;
  }
  const float* map = w.absmax_map.empty() ? nf4_dynamic_map() : w.absmax_map.data();
  for (int64_t i = 0; i < n; i++) {
    const int64_t b = b0 + i;
    // bnb: dequantize_blockwise(...) + offset, two f32 roundings.
    out[i] = round_here(map[w.absmax_q[b]] * w.absmax_scale[b / kNf4NestedBlock]) + w.absmax_offset;
  }
}

namespace {

#if defined(__AVX2__)
// 16 elements (8 packed bytes) -> 16 floats: the nibbles are put in element order (high nibble
// first), widened to 32 bits, and looked up in the 16-entry code book with two 8-lane permutes
// blended on bit 3 of the index.
inline void decode16_avx2(const uint8_t* p, float a, float* out) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
  const __m128i lo = _mm_and_si128(bytes, mask);
  const __m128i idx = _mm_unpacklo_epi8(hi, lo);  // e0 e1 e2 ... e15
  const __m256 tlo = _mm256_loadu_ps(kNf4Code), thi = _mm256_loadu_ps(kNf4Code + 8);
  const __m256 scale = _mm256_set1_ps(a);
  for (int half = 0; half < 2; half++) {
    __m256i i32 = _mm256_cvtepu8_epi32(half ? _mm_srli_si128(idx, 8) : idx);
    __m256 vlo = _mm256_permutevar8x32_ps(tlo, i32);
    __m256 vhi = _mm256_permutevar8x32_ps(thi, i32);
    __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(i32, 28));  // bit 3 -> sign bit
    _mm256_storeu_ps(out + 8 * half, _mm256_mul_ps(_mm256_blendv_ps(vlo, vhi, sel), scale));
  }
}
#elif defined(__aarch64__)
// The same on NEON (ASIMD is baseline on aarch64): the 16-entry code book is 64 table bytes, and
// TBL looks up the 4 bytes of each float. Nibbles in element order (high first), times 4 = the first
// byte of the entry; each group of 4 elements spreads its 4 byte offsets over 16 lanes (+0..3).
// One f32 multiply per element, as the scalar loop: the same bits.
inline void decode16_neon(const uint8_t* p, float a, float* out) {
  const uint8x8_t bytes = vld1_u8(p);
  const uint8x8x2_t z = vzip_u8(vshr_n_u8(bytes, 4), vand_u8(bytes, vdup_n_u8(0x0f)));
  const uint8x16_t first = vshlq_n_u8(vcombine_u8(z.val[0], z.val[1]), 2);  // e0 e1 ... e15, x4
  uint8x16x4_t table;
  table.val[0] = vld1q_u8(reinterpret_cast<const uint8_t*>(kNf4Code));
  table.val[1] = vld1q_u8(reinterpret_cast<const uint8_t*>(kNf4Code + 4));
  table.val[2] = vld1q_u8(reinterpret_cast<const uint8_t*>(kNf4Code + 8));
  table.val[3] = vld1q_u8(reinterpret_cast<const uint8_t*>(kNf4Code + 12));
  const uint8x16_t byte_of = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
  for (int g = 0; g < 4; g++) {
    const uint8_t e = uint8_t(4 * g);
    const uint8x16_t spread = {e, e, e, e, uint8_t(e + 1), uint8_t(e + 1), uint8_t(e + 1), uint8_t(e + 1),
                               uint8_t(e + 2), uint8_t(e + 2), uint8_t(e + 2), uint8_t(e + 2),
                               uint8_t(e + 3), uint8_t(e + 3), uint8_t(e + 3), uint8_t(e + 3)};
    const uint8x16_t idx = vaddq_u8(vqtbl1q_u8(first, spread), byte_of);
    const float32x4_t v = vreinterpretq_f32_u8(vqtbl4q_u8(table, idx));
    vst1q_f32(out + 4 * g, vmulq_n_f32(v, a));
  }
}
#endif

// out[e - e0] for elements [e0, e1), all in one block with absmax a.
inline void decode_span(const uint8_t* codes, int64_t e0, int64_t e1, float a, float* out) {
  int64_t e = e0;
  if (e < e1 && (e & 1)) {  // a span that starts on a low nibble (odd cols cut a block)
    *out++ = kNf4Code[codes[e >> 1] & 15] * a;
    e++;
  }
  const uint8_t* p = codes + (e >> 1);
#if defined(__AVX2__)
  for (; e + 16 <= e1; e += 16, p += 8, out += 16) decode16_avx2(p, a, out);
#elif defined(__aarch64__)
  for (; e + 16 <= e1; e += 16, p += 8, out += 16) decode16_neon(p, a, out);
#endif
  for (; e + 2 <= e1; e += 2, p++, out += 2) {
    out[0] = kNf4Code[*p >> 4] * a;
    out[1] = kNf4Code[*p & 15] * a;
  }
  if (e < e1) *out = kNf4Code[*p >> 4] * a;
}

}  // namespace

void nf4_dequantize_rows(const Nf4Tensor& w, int64_t row0, int64_t nrows, float* out) {
  LATHE_CHECK(row0 >= 0 && nrows >= 0 && row0 + nrows <= w.rows, "rows [{}, {}) of {}", row0, row0 + nrows,
              w.rows);
  const int64_t e0 = row0 * w.cols, e1 = (row0 + nrows) * w.cols;
  if (e1 <= e0) return;
  const int64_t bs = w.blocksize;
  const int64_t b_first = e0 / bs, b_last = (e1 - 1) / bs;
  const int64_t nb = b_last - b_first + 1;
  // The tile's absmax, decoded once; the vector is small (nb = tile elements / blocksize).
  std::vector<float> amax(static_cast<size_t>(nb));
  nf4_absmax(w, b_first, nb, amax.data());
  const uint8_t* codes = w.codes.data();
#pragma omp parallel for schedule(static) if (nb > 32)
  for (int64_t i = 0; i < nb; i++) {
    const int64_t b = b_first + i;
    const int64_t s0 = std::max(e0, b * bs), s1 = std::min(e1, (b + 1) * bs);
    decode_span(codes, s0, s1, amax[i], out + (s0 - e0));
  }
}

void nf4_dequantize(const Nf4Tensor& w, float* out) { nf4_dequantize_rows(w, 0, w.rows, out); }

size_t nf4_bytes(const Nf4Tensor& w) {
  size_t bytes = w.codes.size();
  if (w.double_quant)
    bytes += w.absmax_q.size() + sizeof(float) * w.absmax_scale.size() + sizeof(float) /* offset */;
  else
    bytes += sizeof(float) * w.absmax.size();
  return bytes;
}

}  // namespace lathe
