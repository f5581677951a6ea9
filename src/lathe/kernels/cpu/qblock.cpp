// Q8_0 / Q4_0 weights: reference quantizers, the scalar kernels, run-time selection of the variant
// Block-quantized weights: reference quantizers, the scalar kernels, run-time selection of the variant
// and the GEMV / small-M GEMM drivers (for every type). The x86 variants are in qblock_x86.cpp, the
// aarch64 ones in qblock_neon.cpp; the K-quant and F16/BF16 kernels in qblock_kquant*.cpp; prefill in
// qgemm.cpp. Contracts: qblock.h.
#include "lathe/kernels/fp_round.h"
#include "lathe/kernels/cpu/qblock.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "lathe/core/dtype.h"
#include "lathe/core/error.h"
#include "lathe/core/kquant_blocks.h"

namespace lathe {

namespace qdetail {
#if defined(__x86_64__)
const QKernels& kernels_avx2();
const QKernels& kernels_avx512();
const QKernels& kernels_avx512_vnni();
#endif
#if defined(__aarch64__)
// Built from the scalar table: a block type without a NEON kernel keeps the scalar one.
const QKernels& kernels_neon(const QKernels& scalar);
const QKernels& kernels_dotprod(const QKernels& scalar);
#endif
}  // namespace qdetail

namespace {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);  // blocks are 34 or 18 bytes apart: the scale is only 2-byte aligned
  return f16_to_f32(h);
}

inline void store_f16(uint8_t* p, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// ---- scalar variant (the reference) ----

void quantize_act_scalar(const float* x, BlockQ8A* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, x += kQBlock) {
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; j++) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dst[b].d = d;
    int32_t sum = 0;
    for (int j = 0; j < kQBlock; j++) {
      dst[b].q[j] = int8_t(std::roundf(x[j] * id));
      sum += dst[b].q[j];
    }
    dst[b].sum = sum;
  }
}

inline int32_t isum_q8_0(const uint8_t* blk, const int8_t* a) {
  const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
  int32_t s = 0;
  for (int j = 0; j < kQBlock; j++) s += int32_t(q[j]) * int32_t(a[j]);
  return s;
}

inline int32_t isum_q4_0(const uint8_t* blk, const int8_t* a) {
  const uint8_t* qs = blk + 2;
  int32_t s = 0;
  for (int j = 0; j < kQBlock / 2; j++) {
    s += (int32_t(qs[j] & 0x0f) - 8) * int32_t(a[j]);
    s += (int32_t(qs[j] >> 4) - 8) * int32_t(a[j + kQBlock / 2]);
  }
  return s;
}

// The kernels' Q4_0 sum: nibbles unpacked in element order, then the Q8_0 loop (both vectorise), the -8 applied
// once through Σ a (the block's `sum`); block_isums keeps the literal formula the tests compare with.
inline int32_t isum_q4_0_fast(const uint8_t* blk, const BlockQ8A& ab) {
  const uint8_t* qs = blk + 2;
  int8_t wq[kQBlock];
  for (int j = 0; j < kQBlock / 2; j++) {
    wq[j] = int8_t(qs[j] & 0x0f);
    wq[j + kQBlock / 2] = int8_t(qs[j] >> 4);
  }
  int32_t s = 0;
  for (int j = 0; j < kQBlock; j++) s += int32_t(wq[j]) * int32_t(ab.q[j]);
  return s - 8 * ab.sum;
}

inline int32_t isum_q8_0_blk(const uint8_t* blk, const BlockQ8A& ab) { return isum_q8_0(blk, ab.q); }

// Blocks in order, one f32 accumulator per activation row: acc += (d_w * d_a) * isum.
template <int32_t (*Isum)(const uint8_t*, const BlockQ8A&), size_t kBytes>
void dot_scalar(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = w + size_t(b) * kBytes;
    const float dw = load_f16(blk);
    for (int i = 0; i < m; i++) {
      const BlockQ8A& ab = a[i * a_stride + b];
      acc[i] += (dw * ab.d) * float(Isum(blk, ab));
    }
  }
  for (int i = 0; i < m; i++) out[i] = acc[i];
}

const qdetail::QKernels kScalar = {quantize_act_scalar,      dot_scalar<isum_q8_0_blk, kQ8_0BlockBytes>,
                                   dot_scalar<isum_q4_0_fast, kQ4_0BlockBytes>,
                                   qdetail::dot_q4_k_scalar,  qdetail::dot_q6_k_scalar,
                                   qdetail::dot_f16_scalar,   qdetail::dot_bf16_scalar,
                                   nullptr,                   nullptr,   // no multi-row decode kernels
                                   nullptr,                   nullptr,
                                   nullptr};  // nor a prefill GEMM

using QDot = void (*)(const uint8_t*, const BlockQ8A*, int64_t, int64_t, int, float*);
using FDot = void (*)(const uint8_t*, const float*, int64_t, int64_t, int, float*);
using QRows = void (*)(const uint8_t*, size_t, int64_t, const BlockQ8A*, int64_t, float*);

// The variant's multi-row decode kernel of `t`, or null (then the block dot runs row by row).
QRows block_rows(const qdetail::QKernels& kern, QType t) {
  if (t == QType::Q4_0) return kern.rows_q4_0;
  if (t == QType::Q6_K) return kern.rows_q6_k;
  if (t == QType::Q4_K) return kern.rows_q4_k;
  if (t == QType::Q8_0) return kern.rows_q8_0;
  return nullptr;
}

// The block kernel of `t` in `kern`; a null field (a variant without that type) falls back to scalar.
QDot block_dot(const qdetail::QKernels& kern, QType t) {
  QDot f = nullptr, ref = nullptr;
  switch (t) {
    case QType::Q8_0: f = kern.dot_q8_0, ref = kScalar.dot_q8_0; break;
    case QType::Q4_0: f = kern.dot_q4_0, ref = kScalar.dot_q4_0; break;
    case QType::Q4_K: f = kern.dot_q4_k, ref = kScalar.dot_q4_k; break;
    case QType::Q6_K: f = kern.dot_q6_k, ref = kScalar.dot_q6_k; break;
    default: fail("kernels", "{} has no block dot kernel", qtype_name(t));
  }
  return f ? f : ref;
}

FDot float_dot(const qdetail::QKernels& kern, QType t) {
  if (t == QType::F16) return kern.dot_f16 ? kern.dot_f16 : kScalar.dot_f16;
  return kern.dot_bf16 ? kern.dot_bf16 : kScalar.dot_bf16;
}

// ---- run-time selection ----

bool cpu_has_uncached(QIsa isa) {
  if (isa == QIsa::Scalar) return true;
#if defined(__x86_64__)
  __builtin_cpu_init();
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  if (isa == QIsa::Avx2) return avx2;
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  if (isa == QIsa::Avx512) return avx512;
  if (isa == QIsa::Avx512Vnni)  // the VNNI kernels use DQ's 256-bit inserts too (x86_vnni_target.h)
    return avx512 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512dq");
#endif
#if defined(__aarch64__)
  // The kernel reports the CPU's features in the auxiliary vector (no MRS emulation needed).
  const unsigned long hw = getauxval(AT_HWCAP);
  const bool asimd = (hw & HWCAP_ASIMD) != 0;
  if (isa == QIsa::Neon) return asimd;
  if (isa == QIsa::NeonDot) return asimd && (hw & HWCAP_ASIMDDP) != 0;
#endif
  return false;
}

// CPUID once: every product asks (kernels_for checks the variant), and in a virtual machine CPUID
// traps to the hypervisor — asked per product it cost ~6% of a decode step.
bool cpu_has(QIsa isa) {
  static const bool has[6] = {true,
                              cpu_has_uncached(QIsa::Avx2),
                              cpu_has_uncached(QIsa::Avx512),
                              cpu_has_uncached(QIsa::Neon),
                              cpu_has_uncached(QIsa::NeonDot),
                              cpu_has_uncached(QIsa::Avx512Vnni)};
  static_assert(int(QIsa::Avx512Vnni) == 5, "one entry per QIsa");
  const int i = int(isa);
  return i >= 0 && i < 6 && has[i];
}

QIsa best_isa() {
  for (QIsa isa : {QIsa::Avx512Vnni, QIsa::Avx512, QIsa::Avx2, QIsa::NeonDot, QIsa::Neon})
    if (cpu_has(isa)) return isa;
  return QIsa::Scalar;
}

QIsa isa_from_env() {
  QIsa best = best_isa();
  const char* env = std::getenv("LATHE_CPU_ISA");
  if (!env || !*env) return best;
  const QIsa want = qisa_parse(env);
  if (!cpu_has(want))
    fail("kernels", "LATHE_CPU_ISA={}: this CPU cannot run it (best here: {})", env, qisa_name(best));
  return want;
}

QIsa& active_isa() {
  static QIsa isa = isa_from_env();
  return isa;
}

const qdetail::QKernels& active_kernels() { return qdetail::kernels_for(active_isa()); }

}  // namespace

int64_t qtype_block(QType t) {
  switch (t) {
    case QType::Q8_0:
    case QType::Q4_0: return kQBlock;
    case QType::Q4_K:
    case QType::Q6_K: return kQK_K;
    case QType::F16:
    case QType::BF16: return 1;
  }
  fail("kernels", "unknown block type {}", uint32_t(t));
}

size_t qblock_bytes(QType t) {
  switch (t) {
    case QType::Q8_0: return kQ8_0BlockBytes;
    case QType::Q4_0: return kQ4_0BlockBytes;
    case QType::Q4_K: return kQ4_KBlockBytes;
    case QType::Q6_K: return kQ6_KBlockBytes;
    case QType::F16:
    case QType::BF16: return 2;
  }
  fail("kernels", "unknown block type {}", uint32_t(t));
}

size_t qblock_row_bytes(QType t, int64_t k) {
  const int64_t blk = qtype_block(t);
  if (k % blk != 0) fail("kernels", "{} rows need a multiple of {} elements, got {}", qtype_name(t), blk, k);
  return size_t(k / blk) * qblock_bytes(t);
}

const char* qtype_name(QType t) {
  switch (t) {
    case QType::Q8_0: return "Q8_0";
    case QType::Q4_0: return "Q4_0";
    case QType::Q4_K: return "Q4_K";
    case QType::Q6_K: return "Q6_K";
    case QType::F16: return "F16";
    case QType::BF16: return "BF16";
  }
  return "Q?";
}

bool qtype_is_float(QType t) { return t == QType::F16 || t == QType::BF16; }

void quantize_row_q8_0(const float* x, uint8_t* dst, int64_t k) {
  if (k % kQBlock != 0) fail("kernels", "Q8_0 needs a multiple of 32 elements, got {}", k);
  for (int64_t b = 0; b < k / kQBlock; b++, x += kQBlock, dst += kQ8_0BlockBytes) {
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; j++) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(dst, d);
    for (int j = 0; j < kQBlock; j++) dst[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
  }
}

void quantize_row_q4_0(const float* x, uint8_t* dst, int64_t k) {
  if (k % kQBlock != 0) fail("kernels", "Q4_0 needs a multiple of 32 elements, got {}", k);
  for (int64_t b = 0; b < k / kQBlock; b++, x += kQBlock, dst += kQ4_0BlockBytes) {
    float amax = 0.0f, m = 0.0f;  // the signed element of largest magnitude: d maps it to -8 exactly
    for (int j = 0; j < kQBlock; j++) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        m = x[j];
      }
    }
    const float d = m / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(dst, d);
    for (int j = 0; j < kQBlock / 2; j++) {
      // x*id lies in [-8, 8] (up to rounding): +8.5 then truncation rounds half up into 0..16; 16 clips.
      const int lo = std::min(15, int(round_here(x[j] * id) + 8.5f));
      const int hi = std::min(15, int(round_here(x[j + kQBlock / 2] * id) + 8.5f));
      dst[2 + j] = uint8_t(lo | (hi << 4));
    }
  }
}

void quantize_row(QType t, const float* x, uint8_t* dst, int64_t k) {
  switch (t) {
    case QType::Q8_0: quantize_row_q8_0(x, dst, k); return;
    case QType::Q4_0: quantize_row_q4_0(x, dst, k); return;
    case QType::Q4_K: quantize_row_q4_k(x, dst, k); return;
    case QType::Q6_K: quantize_row_q6_k(x, dst, k); return;
    case QType::F16:
      for (int64_t i = 0; i < k; i++) store_f16(dst + 2 * i, x[i]);
      return;
    case QType::BF16:
      for (int64_t i = 0; i < k; i++) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
  }
  fail("kernels", "unknown block type {}", uint32_t(t));
}

const char* qisa_name(QIsa isa) {
  switch (isa) {
    case QIsa::Scalar: return "scalar";
    case QIsa::Avx2: return "avx2";
    case QIsa::Avx512: return "avx512";
    case QIsa::Neon: return "neon";
    case QIsa::NeonDot: return "dotprod";
    case QIsa::Avx512Vnni: return "avx512vnni";
  }
  return "?";
}

QIsa qisa_parse(const char* name, const char* what) {
  const std::string v = name ? name : "";
  if (v == "scalar") return QIsa::Scalar;
  if (v == "avx2") return QIsa::Avx2;
  if (v == "avx512") return QIsa::Avx512;
  if (v == "avx512vnni") return QIsa::Avx512Vnni;
  if (v == "neon") return QIsa::Neon;
  if (v == "dotprod") return QIsa::NeonDot;
  fail("kernels", "{}='{}': expected scalar, avx2, avx512, avx512vnni, neon or dotprod", what, v);
}

bool qisa_supported(QIsa isa) { return cpu_has(isa); }

QIsa qisa_active() { return active_isa(); }

bool qisa_set(QIsa isa) {
  if (!cpu_has(isa)) return false;
  active_isa() = isa;
  return true;
}

const qdetail::QKernels& qdetail::kernels_for(QIsa isa) {
  LATHE_CHECK(cpu_has(isa), "kernel variant {} is not supported on this CPU", qisa_name(isa));
  switch (isa) {
#if defined(__x86_64__)
    case QIsa::Avx512Vnni: return kernels_avx512_vnni();
    case QIsa::Avx512: return kernels_avx512();
    case QIsa::Avx2: return kernels_avx2();
#endif
#if defined(__aarch64__)
    case QIsa::NeonDot: return kernels_dotprod(kScalar);
    case QIsa::Neon: return kernels_neon(kScalar);
#endif
    default: return kScalar;
  }
}

void qdetail::block_isums(QType t, const uint8_t* w, const BlockQ8A* a, int64_t nb, int32_t* out) {
  LATHE_CHECK(t == QType::Q8_0 || t == QType::Q4_0, "block_isums: {} (Q8_0 and Q4_0 only)", qtype_name(t));
  for (int64_t b = 0; b < nb; b++)
    out[b] = t == QType::Q8_0 ? isum_q8_0(w + size_t(b) * kQ8_0BlockBytes, a[b].q)
                              : isum_q4_0(w + size_t(b) * kQ4_0BlockBytes, a[b].q);
}

void quantize_act_q8(const float* x, BlockQ8A* dst, int64_t k) {
  if (k % kQBlock != 0) fail("kernels", "activation rows need a multiple of 32 elements, got {}", k);
  active_kernels().quantize_act(x, dst, k / kQBlock);
}

float qvec_dot(QType t, const uint8_t* w, const BlockQ8A* a, int64_t nb) {
  float out = 0;
  block_dot(active_kernels(), t)(w, a, nb, nb, 1, &out);
  return out;
}

size_t qmatmul_scratch_bytes(int M, int64_t K) { return size_t(M) * size_t(K / kQBlock) * sizeof(BlockQ8A); }

// Activation blocks for M rows of K: the caller's scratch when it is usable (any address can be passed,
// BlockQ8A needs 4-byte alignment), else this thread's reused buffer.
static BlockQ8A* act_blocks(void* scratch, int M, int64_t nb) {
  thread_local std::vector<BlockQ8A> own;
  if (scratch && reinterpret_cast<uintptr_t>(scratch) % alignof(BlockQ8A) == 0) return static_cast<BlockQ8A*>(scratch);
  if (own.size() < size_t(M) * nb) own.resize(size_t(M) * nb);
  return own.data();
}

// The decode path (M < kQPrefillRows) of every part, in one parallel region: block types on the input
// quantized once to activation blocks, F16 / BF16 on the f32 rows as they are.
static void qmatmul_parts_int(const float* inp, int M, int64_t K, const QMatmulPart* parts, int nparts,
                              void* scratch) {
  const int64_t nb = K / kQBlock;
  const qdetail::QKernels& kern = active_kernels();
  bool blocks = false;
  size_t bytes = 0;
  int64_t rows = 0;
  for (int p = 0; p < nparts; p++) {
    blocks = blocks || !qtype_is_float(parts[p].t);
    bytes += size_t(parts[p].N) * qblock_row_bytes(parts[p].t, K), rows += parts[p].N;
  }
  BlockQ8A* acts = blocks ? act_blocks(scratch, M, nb) : nullptr;
  if (blocks)
    for (int m = 0; m < M; m++) kern.quantize_act(inp + size_t(m) * K, acts + size_t(m) * nb, nb);

  // Each weight row is streamed once per group of 8 input rows; the row stays in L1 while the 8 dot
  // products consume it. Small products stay on one thread: waking the pool costs more than it saves
  // below ~64 KiB of weights. The parts share the region and its single barrier (`nowait`: the
  // outputs are disjoint and the inputs read-only), so q/k/v or gate/up cost one fork/join per token
  // instead of one each.
  const bool parallel = bytes >= (size_t(64) << 10) && rows > 1;
#pragma omp parallel if (parallel)
  for (int m0 = 0; m0 < M; m0 += 8) {
    const int mc = std::min(8, M - m0);
    for (int p = 0; p < nparts; p++) {
      const QMatmulPart& q = parts[p];
      const size_t row_bytes = qblock_row_bytes(q.t, K);
      // One weight row against mc input rows: `in` is f32 rows (F16/BF16) or activation blocks,
      // `len` their stride and length in those units.
      auto each_row = [&](auto dot, const auto* in, int64_t len) {
#pragma omp for schedule(static) nowait
        for (int64_t n = 0; n < q.N; n++) {
          float r[8];
          dot(q.w + size_t(n) * row_bytes, in, len, len, mc, r);
          for (int i = 0; i < mc; i++) q.out[size_t(m0 + i) * q.N + n] = q.bias ? r[i] + q.bias[n] : r[i];
        }
      };
      if (qtype_is_float(q.t)) {
        each_row(float_dot(kern, q.t), inp + size_t(m0) * K, K);
      } else if (auto rows = mc == 1 ? block_rows(kern, q.t) : nullptr) {
        // Decode with a multi-row kernel: groups of 4 weight rows (a thread's share is whole groups,
        // though the bits would not change otherwise: each row's sum is formed alone).
        const int64_t groups = (q.N + 3) / 4;
        const BlockQ8A* act = acts + size_t(m0) * nb;
#pragma omp for schedule(static) nowait
        for (int64_t g = 0; g < groups; g++) {
          const int64_t n0 = g * 4, n = std::min<int64_t>(4, q.N - n0);
          float* y = q.out + size_t(m0) * q.N + n0;
          rows(q.w + size_t(n0) * row_bytes, row_bytes, n, act, nb, y);
          if (q.bias)
            for (int64_t i = 0; i < n; i++) y[i] += q.bias[n0 + i];
        }
      } else {
        each_row(block_dot(kern, q.t), acts + size_t(m0) * nb, nb);
      }
    }
  }
}

// Prefill (M >= kQPrefillRows): the variant's GEMM where it has one for the type (avx512vnni:
// qgemm_vnni.cpp), else dequantized tiles and sgemm (qgemm.cpp). LATHE_QPREFILL=tiles forces the
// tiles (measurements, and the reference the GEMM is compared with).
static void prefill(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                    int64_t N) {
  static const char* env = std::getenv("LATHE_QPREFILL");
  static const bool tiles = env && std::string(env) == "tiles";
  const qdetail::QKernels& kern = active_kernels();
  if (!tiles && kern.prefill && kern.prefill(out, inp, w, t, bias, M, K, N)) return;
  qdetail::qmatmul_prefill(out, inp, w, t, bias, M, K, N);
}

void qmatmul_forward_parts(const float* inp, int M, int64_t K, const QMatmulPart* parts, int nparts) {
  if (M < 1) fail("kernels", "qmatmul_forward: M={} must be positive", M);
  for (int p = 0; p < nparts; p++) {
    if (parts[p].N < 1) fail("kernels", "qmatmul_forward: N={} must be positive", parts[p].N);
    qblock_row_bytes(parts[p].t, K);  // checks K against the type's block
  }
  if (M >= kQPrefillRows) {
    for (int p = 0; p < nparts; p++)
      prefill(parts[p].out, inp, parts[p].w, parts[p].t, parts[p].bias, M, K, parts[p].N);
    return;
  }
  qmatmul_parts_int(inp, M, K, parts, nparts, nullptr);
}

void qmatmul_forward(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                     int64_t N, void* scratch) {
  if (M < 1 || N < 1) fail("kernels", "qmatmul_forward: M={} N={} must be positive", M, N);
  qblock_row_bytes(t, K);  // checks K against the type's block
  if (M >= kQPrefillRows) return prefill(out, inp, w, t, bias, M, K, N);
  const QMatmulPart part{w, t, bias, out, N};
  qmatmul_parts_int(inp, M, K, &part, 1, scratch);
}

}  // namespace lathe
