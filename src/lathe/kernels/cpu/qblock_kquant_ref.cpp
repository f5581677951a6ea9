// The reference K-quant weight quantizers: ggml's quantize_row_q4_K_ref and quantize_row_q6_K_ref
// rules (llama-quantize without an importance matrix), written from the algorithm, so that the
// bytes equal ggml's (tests/kernels/qblock_kquant_unit.cpp replays goldens that
// tools/golden/gen_qblock_goldens.py takes from libggml-base.so).
//
// Byte equality needs the same f32 operations in the same order: this file is compiled with
// -ffp-contract=off (CMakeLists.txt), since GCC would otherwise fuse a product into a following add
// (ggml's reference build has no FMA), and each expression below keeps ggml's evaluation order
// (left to right; an int converted to float where C would convert it). nearest() is ggml's rounding:
// to nearest, ties to even (what adding 1.5*2^23 does for |v| < 2^22).
#include <cmath>
#include <cstring>

#include "lathe/core/dtype.h"
#include "lathe/core/error.h"
#include "lathe/core/kquant_blocks.h"
#include "lathe/kernels/cpu/qblock.h"

namespace lathe {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // a group whose largest |x| is below this is all zero

inline int nearest(float v) { return int(std::nearbyintf(v)); }  // default rounding mode: ties to even

inline void store_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// One Q4_K sub-block (n = 32, nmax = 15): an asymmetric grid x ~ scale*L - min with L in 0..nmax,
// fitted by weighted least squares over 21 candidate grid spacings (rmin + rdelta*is + nmax steps
// over the range), keeping the one with the smallest weighted squared error; the starting point is
// the plain min/max grid. Returns the scale; *neg_min gets the (non-negative) min to subtract.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min) {
  constexpr float kRmin = -1.0f, kRdelta = 0.1f;
  constexpr int kSteps = 20;
  float lo = x[0], hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;  // the grid always reaches 0
  if (hi == lo) {
    for (int i = 0; i < n; i++) L[i] = 0;
    *neg_min = -lo;
    return 0.0f;
  }
  float iscale = float(nmax) / (hi - lo);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; i++) {
    const int l = nearest(iscale * (x[i] - lo));
    L[i] = uint8_t(l < 0 ? 0 : l > nmax ? nmax : l);
    const float diff = scale * float(L[i]) + lo - x[i];
    best += w[i] * (diff * diff);
  }
  uint8_t cand[32];
  for (int is = 0; is <= kSteps; is++) {
    iscale = (kRmin + kRdelta * float(is) + float(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      int l = nearest(iscale * (x[i] - lo));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      cand[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {  // the grid must reach 0: refit through the origin
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; i++) {
        const float diff = this_scale * float(cand[i]) + this_min - x[i];
        err += w[i] * (diff * diff);
      }
      if (err < best) {
        for (int i = 0; i < n; i++) L[i] = cand[i];
        best = err;
        scale = this_scale;
        lo = this_min;
      }
    }
  }
  *neg_min = -lo;
  return scale;
}

// One Q6_K group (n = 16, nmax = 32): a symmetric grid with L in -nmax..nmax-1 (stored + nmax),
// weights x², scale by least squares; 18 other spacings (nmax ± 0.1..0.9) are tried and kept when they
// explain more of x (larger sumlx²/suml2).
float fit_scale_sym(int n, int nmax, const float* x, int8_t* L) {
  float mx = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      mx = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; i++) L[i] = 0;
    return 0.0f;
  }
  auto clampq = [nmax](int l) { return l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l; };
  float iscale = float(-nmax) / mx;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    const int l = clampq(nearest(iscale * x[i]));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / mx;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampq(nearest(iscale * x[i]));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) L[i] = int8_t(nmax + clampq(nearest(iscale * x[i])));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

}  // namespace

void quantize_row_q4_k(const float* x, uint8_t* dst, int64_t k) {
  if (k % kQK_K != 0) fail("kernels", "Q4_K needs a multiple of 256 elements, got {}", k);
  for (int64_t b = 0; b < k / kQK_K; b++, x += kQK_K, dst += kQ4_KBlockBytes) {
    uint8_t L[kQK_K];
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;  // scales are positive: the min is subtracted
    for (int j = 0; j < 8; j++) {
      const float* xs = x + 32 * j;
      float sum_x2 = 0;
      for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / 32);
      // Weights: the sub-block's RMS plus |x|, so large elements count more but none counts zero.
      for (int l = 0; l < 32; l++) w[l] = av_x + std::fabs(xs[l]);
      scales[j] = fit_scale_min(32, 15, xs, w, L + 32 * j, &mins[j]);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    // The 8 scales and mins as 6-bit multiples of d = max_scale/63, dmin = max_min/63.
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t* sc = dst + 4;
    std::memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
      uint8_t ls = uint8_t(nearest(inv_scale * scales[j]));
      uint8_t lm = uint8_t(nearest(inv_min * mins[j]));
      ls = ls < 63 ? ls : 63;
      lm = lm < 63 ? lm : 63;
      if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
      } else {
        sc[j + 4] = uint8_t((ls & 0x0f) | ((lm & 0x0f) << 4));
        sc[j - 4] |= uint8_t((ls >> 4) << 6);
        sc[j] |= uint8_t((lm >> 4) << 6);
      }
    }
    store_f16(dst, max_scale / 63.0f);
    store_f16(dst + 2, max_min / 63.0f);
    // Requantize every element against the scales as stored (f16 d times the 6-bit integers).
    const float d_all = f16_to_f32(load_le<uint16_t>(dst));
    const float dmin_all = f16_to_f32(load_le<uint16_t>(dst + 2));
    for (int j = 0; j < 8; j++) {
      int s, m;
      q4k_scale_min(sc, j, &s, &m);
      const float d = d_all * float(s);
      if (d == 0) continue;  // keeps the fit's L
      const float dm = dmin_all * float(m);
      for (int l = 0; l < 32; l++) {
        const int q = nearest((x[32 * j + l] + dm) / d);
        L[32 * j + l] = uint8_t(q < 0 ? 0 : q > 15 ? 15 : q);
      }
    }
    uint8_t* qs = dst + 16;
    for (int p = 0; p < 4; p++)
      for (int l = 0; l < 32; l++) qs[32 * p + l] = uint8_t(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
  }
}

void quantize_row_q6_k(const float* x, uint8_t* dst, int64_t k) {
  if (k % kQK_K != 0) fail("kernels", "Q6_K needs a multiple of 256 elements, got {}", k);
  for (int64_t b = 0; b < k / kQK_K; b++, x += kQK_K, dst += kQ6_KBlockBytes) {
    int8_t L[kQK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;  // the signed scale of largest magnitude
    for (int g = 0; g < 16; g++) {
      scales[g] = fit_scale_sym(16, 32, x + 16 * g, L + 16 * g);
      if (std::fabs(scales[g]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[g]);
        max_scale = scales[g];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(dst, 0, kQ6_KBlockBytes);
      continue;
    }
    // int8 scales: the largest maps to -128 (d carries its sign), the others round, capped at 127.
    const float iscale = -128.0f / max_scale;
    store_f16(dst + 208, 1 / iscale);
    auto* sc = reinterpret_cast<int8_t*>(dst + 192);
    for (int g = 0; g < 16; g++) {
      const int s = nearest(iscale * scales[g]);
      sc[g] = int8_t(s < 127 ? s : 127);
    }
    const float d_all = f16_to_f32(load_le<uint16_t>(dst + 208));
    for (int g = 0; g < 16; g++) {
      const float d = d_all * float(sc[g]);
      if (d == 0) continue;  // keeps the fit's L
      for (int i = 0; i < 16; i++) {
        int q = nearest(x[16 * g + i] / d);
        q = q < -32 ? -32 : q > 31 ? 31 : q;
        L[16 * g + i] = int8_t(q + 32);
      }
    }
    // Pack (layout: core/kquant_blocks.h): per half, 4 groups of 32 share ql bytes and qh bytes.
    uint8_t* ql = dst;
    uint8_t* qh = dst + 128;
    for (int h = 0; h < 2; h++) {
      const int8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; l++) {
        const int q0 = Lh[l], q1 = Lh[l + 32], q2 = Lh[l + 64], q3 = Lh[l + 96];
        ql[64 * h + l] = uint8_t((q0 & 0x0f) | ((q2 & 0x0f) << 4));
        ql[64 * h + 32 + l] = uint8_t((q1 & 0x0f) | ((q3 & 0x0f) << 4));
        qh[32 * h + l] = uint8_t((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
      }
    }
  }
}

}  // namespace lathe
