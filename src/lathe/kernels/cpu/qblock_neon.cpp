// aarch64 variants of the Q8_0 / Q4_0 kernels (contracts: qblock.h): "neon", plain ASIMD (every
// ARMv8-A core), and "dotprod", ASIMD + SDOT (FEAT_DotProd: Cortex-A55/A76 and later, Neoverse,
// Apple M). qblock.cpp picks one at run time from getauxval(AT_HWCAP), so a build for the armv8-a
// baseline still uses SDOT where the CPU has it and never executes it where it does not.
//
// The dotprod functions carry target("arch=armv8.2-a+dotprod") instead of relying on -march: GCC 12
// declares vdotq_s32 under that target, and refuses to inline it into a function whose ISA is a
// plain "+dotprod" on armv8-a. DotProd is a v8.2 extension, so a CPU reporting it runs v8.2 code.
// As in qblock_x86.cpp, nothing from a header is instantiated inside them (no std:: calls), so no
// v8.2 copy of a shared inline function can end up in the binary for baseline callers.
//
// Integer core (exact, as every variant must be): per block, 32 int8 weights times 32 int8
// activations into int32 lanes. SDOT sums groups of 4 products into 4 lanes per instruction; without
// it, SMULL makes int16 products (|w*a| <= 128*127 < 2^15) and SADALP adds pairs of them into int32
// lanes. Q4_0's nibbles become wq = nibble - 8 in int8 before the products, once per weight block and
// shared by the up to 4 activation rows in flight. The 4 lanes go to f32 (exact, |lane| < 2^24) and
// one FMA per block adds (d_w*d_a) * lanes to the row's accumulator; two accumulators per row (even
// and odd blocks) so consecutive blocks do not wait on one FMA chain.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "lathe/kernels/cpu/qblock.h"

#define LATHE_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define LATHE_ALWAYS_INLINE inline __attribute__((always_inline))

namespace lathe::qdetail {
namespace {

constexpr size_t block_bytes(QType t) { return t == QType::Q8_0 ? kQ8_0BlockBytes : kQ4_0BlockBytes; }

// The block scale: an IEEE half at a 2-byte-aligned address; FCVT widens it exactly.
LATHE_ALWAYS_INLINE float load_f16(const uint8_t* p) {
  __fp16 h;
  __builtin_memcpy(&h, p, 2);
  return float(h);
}

// The block's 32 weights in element order as signed bytes: Q8_0 as stored; Q4_0's low nibbles are
// elements 0..15, the high nibbles 16..31, each minus 8.
template <QType T>
LATHE_ALWAYS_INLINE int8x16x2_t load_w(const uint8_t* blk) {
  int8x16x2_t w;
  if constexpr (T == QType::Q8_0) {
    w.val[0] = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 2));
    w.val[1] = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 18));
  } else {
    const uint8x16_t raw = vld1q_u8(blk + 2);
    const int8x16_t eight = vdupq_n_s8(8);
    w.val[0] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), eight);
    w.val[1] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), eight);
  }
  return w;
}

// 4 int32 lanes whose sum is Σ wq*aq over one block, without SDOT.
LATHE_ALWAYS_INLINE int32x4_t idot_lanes(int8x16x2_t w, const int8_t* aq) {
  const int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);
  int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w.val[0]), vget_low_s8(a0)));
  s = vpadalq_s16(s, vmull_high_s8(w.val[0], a0));
  s = vpadalq_s16(s, vmull_s8(vget_low_s8(w.val[1]), vget_low_s8(a1)));
  return vpadalq_s16(s, vmull_high_s8(w.val[1], a1));
}

// The same with SDOT: 4 products per lane per instruction.
LATHE_DOTPROD LATHE_ALWAYS_INLINE int32x4_t idot_lanes_sdot(int8x16x2_t w, const int8_t* aq) {
  const int32x4_t s = vdotq_s32(vdupq_n_s32(0), w.val[0], vld1q_s8(aq));
  return vdotq_s32(s, w.val[1], vld1q_s8(aq + 16));
}

// The GEMV/GEMM body, once per integer core: qblock_neon_dot.inc defines dot_m / dot_groups with the
// target attribute and core named by the two macros. (One template for both would carry one target:
// the SDOT intrinsic cannot be inlined into a baseline function, nor a v8.2 body into a baseline caller.)
namespace plain {
#define LATHE_NEON_ATTR
#define LATHE_NEON_LANES idot_lanes
#include "lathe/kernels/cpu/qblock_neon_dot.inc"
#undef LATHE_NEON_ATTR
#undef LATHE_NEON_LANES
}  // namespace plain

namespace sdot {
#define LATHE_NEON_ATTR LATHE_DOTPROD
#define LATHE_NEON_LANES idot_lanes_sdot
#include "lathe/kernels/cpu/qblock_neon_dot.inc"
#undef LATHE_NEON_ATTR
#undef LATHE_NEON_LANES
}  // namespace sdot

template <QType T>
void dot_neon(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  plain::dot_groups<T>(w, a, a_stride, nb, m, out);
}

template <QType T>
LATHE_DOTPROD void dot_sdot(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  sdot::dot_groups<T>(w, a, a_stride, nb, m, out);
}

// The scalar rule of qblock.h in the same f32 operations: max is exact in any order, x*id is one
// rounded product, and FCVTAS converts rounding to nearest with ties away from zero, which is roundf.
// |x*id| <= 127.5 (qblock.h), so the saturating narrowings never saturate.
void quantize_act_neon(const float* x, BlockQ8A* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, x += kQBlock) {
    float32x4_t v[8];
    for (int i = 0; i < 8; i++) v[i] = vld1q_f32(x + 4 * i);
    float32x4_t m = vabsq_f32(v[0]);
    for (int i = 1; i < 8; i++) m = vmaxq_f32(m, vabsq_f32(v[i]));
    const float amax = vmaxvq_f32(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dst[b].d = d;
    int32x4_t q[8];
    for (int i = 0; i < 8; i++) q[i] = vcvtaq_s32_f32(vmulq_n_f32(v[i], id));
    int32x4_t s = vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3]));
    s = vaddq_s32(s, vaddq_s32(vaddq_s32(q[4], q[5]), vaddq_s32(q[6], q[7])));
    dst[b].sum = vaddvq_s32(s);
    for (int h = 0; h < 2; h++) {
      const int16x8_t lo = vcombine_s16(vqmovn_s32(q[4 * h]), vqmovn_s32(q[4 * h + 1]));
      const int16x8_t hi = vcombine_s16(vqmovn_s32(q[4 * h + 2]), vqmovn_s32(q[4 * h + 3]));
      vst1q_s8(dst[b].q + 16 * h, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
    }
  }
}

}  // namespace

// Both tables start from the scalar one, so a block type that has no NEON kernel here (one added to
// QKernels later) keeps its scalar entry instead of a null pointer.
const QKernels& kernels_neon(const QKernels& scalar) {
  static const QKernels k = [&] {
    QKernels t = scalar;
    t.quantize_act = quantize_act_neon;
    t.dot_q8_0 = dot_neon<QType::Q8_0>;
    t.dot_q4_0 = dot_neon<QType::Q4_0>;
    return t;
  }();
  return k;
}

const QKernels& kernels_dotprod(const QKernels& scalar) {
  static const QKernels k = [&] {
    QKernels t = kernels_neon(scalar);
    t.dot_q8_0 = dot_sdot<QType::Q8_0>;
    t.dot_q4_0 = dot_sdot<QType::Q4_0>;
    return t;
  }();
  return k;
}

}  // namespace lathe::qdetail
#endif  // __aarch64__
