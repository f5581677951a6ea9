// Block-quantized weights for decode (issue #20, kernel layer): the ggml/GGUF Q8_0, Q4_0, Q4_K and
// Q6_K block layouts (and plain F16 / BF16 rows), byte for byte, so a GGUF tensor's data can be
// multiplied in place; activations quantized to 8-bit blocks so the inner products are integer; a GEMV
// (decode) and a small-M GEMM (batched decode) over a row-major weight [N, K], parallel over rows.
//
// Weight blocks (32 elements, little-endian, no padding, no alignment: 34 or 18 bytes apart):
//   Q8_0: f16 d, then int8 q[32];                     w[j] = d * q[j]
//   Q4_0: f16 d, then uint8 qs[16]; element j in the LOW nibble of qs[j], element j+16 in the HIGH
//         nibble;                                     w[j] = d * (nibble - 8)
// A row of K (a multiple of 32) elements is K/32 consecutive blocks; row n starts at
// n * qblock_row_bytes(type, K). GGUF stores a [N, K] PyTorch-order matrix exactly so (dims {K, N}).
// K-quants (Q4_K, Q6_K): super-blocks of 256 elements, layouts in core/kquant_blocks.h; K % 256 == 0.
//   Their dot products run against the same 32-element activation blocks: a Q4_K sub-block is one
//   activation block, w = d*sc*q - dmin*m, so per block (d*sc)*Σ q*aq - (dmin*m)*Σ aq (both integer
//   sums exact); a Q6_K scale covers 16 elements, so one activation block spans two scales:
//   Σ = sc0*Σ_{16} (q-32)*aq + sc1*Σ_{16} (q-32)*aq, exact in int32 (|Σ| <= 2*128*16*32*127 < 2^24).
// F16 / BF16 rows: K elements of 2 bytes (any K), multiplied with the f32 activations as they are
//   (no activation quantization): converted to f32 in registers (F16C / a 16-bit shift), then FMA.
//
// Activation blocks (Q8A, ours, never written to a file): the Q8_0 rule with an f32 scale:
//   amax = max_j |x[j]|;  d = amax / 127;  id = d != 0 ? 1/d : 0;  q[j] = round(x[j] * id)
// with round = half away from zero (C roundf), all in f32 in this order; every variant produces the
// same bits (tests/kernels/qblock_unit.cpp). The scale stays f32 (not f16 as in a Q8_0 weight) because
// the block is never stored: f16 would add a relative error of 2^-11 and underflow for tiny rows.
//
// Error bound of the activation quantization, per block, for finite x (u = 2^-24, f32 unit roundoff):
//   |x[j] - d*q[j]|  <=  d/2 + 3u*|x[j]|  <=  amax * (1/254 + 2^-22)
// Derivation: d, id and x*id are each correctly rounded, so x*id*d = x*(1+e) with |e| <= 3u (to first
// order; d*id = 1 + e'); |x*id| <= 127*(1+2u) < 127.5 so q never clips and |x*id - q| <= 1/2; hence
// |x - d*q| <= d*|x*id - q| + |x - d*x*id| <= d/2 + 3u|x|, and d <= amax/127*(1+u).
// A dot product with a dequantized weight row w then errs by at most
//   sum_blocks amax_b * (1/254 + 2^-22) * sum_{j in b} |w[j]|      (quantization)
// plus the f32 accumulation error of the kernel (K/32 + 8 roundings of partial sums).
//
// Integer arithmetic: per block, sum_j wq[j]*aq[j] is computed exactly in int32 by every variant
// (|wq| <= 128, |aq| <= 127: at most 32*128*127 < 2^19; pairs fit the int16 of maddubs: 2*128*127 <
// 2^15 for Q8_0, 2*15*127 for Q4_0's raw nibbles). Only the f32 combination across blocks, sum_b (d_w * d_a) * isum_b, differs between variants
// (a vector unit accumulates 8 or 16 partial sums and adds them at the end), by rounding only.
//
// Variants: scalar (the reference, on every CPU); on x86-64 AVX2+FMA+F16C and AVX-512 (F+BW+VL)
// (qblock_x86.cpp), and AVX-512 with VNNI (avx512vnni: vpdpbusd kernels for Q8_0, Q4_0, Q4_K, Q6_K that
// read four weight rows per decode pass, qblock_x86_vnni.cpp, and an integer prefill GEMM for the
// four block types, qgemm_vnni.cpp); on aarch64 "neon" (ASIMD, every ARMv8-A core) and "dotprod" (ASIMD + SDOT)
// (qblock_neon.cpp). They are compiled with function-level target attributes whatever -march says and
// picked at run time (CPUID; getauxval(AT_HWCAP) on aarch64), so an x86-64-v3 (AVX2) build still uses
// AVX-512 where the CPU has it and never executes it where it does not, and an armv8-a build uses SDOT
// where it exists. LATHE_CPU_ISA=scalar|avx2|avx512|avx512vnni|neon|dotprod pins the choice (an error when the
// CPU cannot run it) and, on x86, OpenBLAS's matching core (kernels/cpu/cpu.cpp), for tests and
// benchmarks. A variant may lack a kernel for a block type: the scalar one stands in for it.
// (A -march=native build is tied to its build CPU anyway: main() checks cpu_missing_build_feature().)
#pragma once
#include <cstddef>
#include <cstdint>

namespace lathe {

// ggml type numbers, so a GGUF tensor's ggml_type converts directly.
enum class QType : uint32_t { F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30 };

constexpr int kQBlock = 32;  // elements per block of Q8_0 / Q4_0, and per activation block
constexpr size_t kQ8_0BlockBytes = 34;
constexpr size_t kQ4_0BlockBytes = 18;

int64_t qtype_block(QType t);                  // elements per block: 32, 256 (K-quants), 1 (F16, BF16)
size_t qblock_bytes(QType t);                  // bytes of one block
// Bytes of a row of k elements; k must be a multiple of qtype_block(t): an error saying so otherwise.
size_t qblock_row_bytes(QType t, int64_t k);
const char* qtype_name(QType t);               // "Q8_0", "Q4_0", "Q4_K", "Q6_K", "F16", "BF16"
bool qtype_is_float(QType t);                  // F16 / BF16: f32 activations, no activation blocks

// One quantized activation block (see the top of this file).
// `sum` = Σ q[j]: Q4_0 kernels multiply the raw nibbles and subtract 8*sum once per block.
struct BlockQ8A {
  float d;
  int32_t sum;
  int8_t q[kQBlock];
};
static_assert(sizeof(BlockQ8A) == 40, "BlockQ8A is packed by construction");

// The reference weight quantizers (ggml's quantize_row_*_ref rules), scalar; k % 32 == 0.
//   Q8_0: d = amax/127, id = d ? 1/d : 0, q = roundf(x*id); the f16 of d is stored, q uses the f32 d.
//   Q4_0: m = the element of largest |x| (first one on ties), d = m / -8, id = d ? 1/d : 0,
//         nibble = min(15, trunc(x*id + 8.5)) (the product rounded to f32 before the add).
void quantize_row_q8_0(const float* x, uint8_t* dst, int64_t k);
void quantize_row_q4_0(const float* x, uint8_t* dst, int64_t k);
// K-quants, k % 256 == 0: ggml's quantize_row_q4_K_ref / quantize_row_q6_K_ref rules (what
// llama-quantize runs without an importance matrix), byte for byte (qblock_kquant_ref.cpp says how).
void quantize_row_q4_k(const float* x, uint8_t* dst, int64_t k);
void quantize_row_q6_k(const float* x, uint8_t* dst, int64_t k);
// Every QType; F16 / BF16 round to nearest even (f32_to_f16, f32_to_bf16).
void quantize_row(QType t, const float* x, uint8_t* dst, int64_t k);
// The inverse: k elements (a multiple of qtype_block(t)) of type t to f32, exactly the values the
// dot kernels multiply (a prefill path dequantizes weight tiles with it and runs sgemm).
void dequantize_row(QType t, const uint8_t* src, float* dst, int64_t k);

// Instruction-set variants of the dot-product kernels.
enum class QIsa { Scalar = 0, Avx2 = 1, Avx512 = 2, Neon = 3, NeonDot = 4, Avx512Vnni = 5 };
const char* qisa_name(QIsa isa);
// "scalar" | "avx2" | "avx512" | "avx512vnni" | "neon" | "dotprod" (LATHE_CPU_ISA's values; NeonDot is
// "dotprod"; avx512vnni is the avx512 variant plus vpdpbusd kernels, qblock_x86_vnni.cpp);
// anything else throws lathe::Error naming `what`.
QIsa qisa_parse(const char* name, const char* what = "LATHE_CPU_ISA");
bool qisa_supported(QIsa isa);  // compiled in and the CPU (and OS) run it
// The variant in use: the best supported one, capped by LATHE_CPU_ISA (read once; an unknown value or
// one the CPU cannot run throws lathe::Error naming the variable).
QIsa qisa_active();
// Forces a variant (tests, benchmarks); false, and no change, when it is not supported.
bool qisa_set(QIsa isa);

// x [k] -> k/32 activation blocks with the active variant (all variants give the same bits).
void quantize_act_q8(const float* x, BlockQ8A* dst, int64_t k);

// Σ_j w[j]*a[j] over one row of nb weight blocks (type t) and nb activation blocks, active variant.
float qvec_dot(QType t, const uint8_t* w, const BlockQ8A* a, int64_t nb);

// From this many input rows on, qmatmul_forward is a prefill, on the variant's prefill GEMM
// (QKernels::prefill) where it has one for the type, else on weight tiles dequantized to f32 and
// multiplied with sgemm (qgemm.cpp: the scalar and NEON variants, avx512's block types). The GEMMs:
// avx2, every type (qgemm_rows_avx2.cpp), and avx512/avx512vnni, F16 and BF16
// (qgemm_float_avx512.cpp): weight rows converted to dequantize_row's values and f32 register tiles,
// activations not quantized; avx512vnni, Q8_0, Q4_0, Q4_K, Q6_K (qgemm_vnni.cpp): integer products
// on the activation blocks, 16 weight rows × 8 input rows per register tile, so each row agrees with
// its decode product to rounding (same activation blocks, exact integer block sums, another order of
// the f32 additions).
constexpr int kQPrefillRows = 16;

// Scratch the matmuls need for M rows of K: M * K/32 activation blocks (unused by F16 / BF16).
size_t qmatmul_scratch_bytes(int M, int64_t K);

// out [M, N] = inp [M, K] · W^T (+ bias [N] when not null), W = w [N, K] in type t, row-major as above.
// K % qtype_block(t) == 0. M < kQPrefillRows: the rows of inp are quantized to activation blocks first
// (not for F16/BF16), then each weight row is read once per group of up to 8 input rows (M = 1: decode
// GEMV; M <= 8: batched decode, one pass over W), parallel over the N weight rows; row m of the result
// equals the M = 1 product of inp row m bit for bit. M >= kQPrefillRows: the prefill above (the f32
// product of the dequantized weights, or for avx512vnni's block types the integer GEMM;
// LATHE_QPREFILL=tiles forces the tiles, for measurements).
// `scratch` (qmatmul_scratch_bytes(M, K), any alignment) may be null: a per-thread buffer is
// then kept and reused, so the steady state allocates nothing either way.
void qmatmul_forward(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                     int64_t N, void* scratch = nullptr);

// One product of a group: out [M, N] = inp · W^T (+ bias when not null), W = w [N, K] in type t.
struct QMatmulPart {
  const uint8_t* w;
  QType t;
  const float* bias;
  float* out;
  int64_t N;
};
// Several products of the same input (q/k/v, gate/up): inp is quantized once and every part's rows are
// computed in one parallel region (decode: one fork/join for the group). Each part's result equals
// qmatmul_forward of that part alone, bit for bit.
void qmatmul_forward_parts(const float* inp, int M, int64_t K, const QMatmulPart* parts, int nparts);

// The variants themselves, for tests: the same contracts, the given variant (which must be supported).
namespace qdetail {
// Decode kernels prefetch the weight bytes this far ahead of the block they multiply (one prefetch per
// step, from that row's position: rows are contiguous, so near a row's end it reaches into the next).
// The hardware prefetchers alone left decode waiting on memory: perf put 63% of the AVX2 Q8_0 GEMV's
// samples on its first weight and activation loads, and Qwen2.5-0.5B Q8_0 decode pinned to AVX2 ran
// at 14.4 tok/s at one thread against 22.5-24 with a 2048-byte lead (1024: 21.7-22.0; 4096 and 8192:
// no better). Prefetches never fault, so reaching past the matrix's end is harmless.
constexpr size_t kDecodePrefetchBytes = 2048;
inline void prefetch_ahead(const uint8_t* p) {
#if defined(__GNUC__)
  __builtin_prefetch(p + kDecodePrefetchBytes, 0, 3);
#else
  (void)p;
#endif
}
struct QKernels {
  void (*quantize_act)(const float* x, BlockQ8A* dst, int64_t nb);
  // For one weight row of nb blocks and m <= 8 activation rows (a + i*a_stride, i < m): out[i] = dot.
  void (*dot_q8_0)(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out);
  void (*dot_q4_0)(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out);
  // K-quants: nb counts ACTIVATION blocks (8 per super-block), as for the two above.
  void (*dot_q4_k)(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out);
  void (*dot_q6_k)(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out);
  // F16 / BF16 rows of k elements against m <= 8 f32 rows x + i*x_stride.
  void (*dot_f16)(const uint8_t* w, const float* x, int64_t x_stride, int64_t k, int m, float* out);
  void (*dot_bf16)(const uint8_t* w, const float* x, int64_t x_stride, int64_t k, int m, float* out);
  // Optional decode kernels (null: dot_* row by row): n weight rows, row_bytes apart, against ONE
  // activation row of nb blocks, out[n]; several rows share the activation loads. Each row's result
  // equals dot_*'s with m = 1 bit for bit, so the decode and batched paths agree.
  void (*rows_q4_0)(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb, float* out);
  void (*rows_q6_k)(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb, float* out);
  void (*rows_q4_k)(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb, float* out);
  void (*rows_q8_0)(const uint8_t* w, size_t row_bytes, int64_t n, const BlockQ8A* a, int64_t nb, float* out);
  // Optional prefill GEMM (null: none), qmatmul_forward's contract for M >= kQPrefillRows with its own
  // threads and scratch; returns false, having done nothing, for a type it does not take.
  bool (*prefill)(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                  int64_t N);
};
// A variant that leaves a field null (one written before that type existed) gets the scalar one.
const QKernels& kernels_for(QIsa isa);
// The prefill path of qmatmul_forward (qgemm.cpp), any M >= 1, scratch of its own.
void qmatmul_prefill(float* out, const float* inp, const uint8_t* w, QType t, const float* bias, int M, int64_t K,
                     int64_t N);
// Per-block integer sums Σ_j wq[j]*aq[j] (Q4_0: wq = nibble - 8), scalar: the exact value every variant
// must reproduce inside its f32 combination.
void block_isums(QType t, const uint8_t* w, const BlockQ8A* a, int64_t nb, int32_t* out);
// The scalar K-quant and F16/BF16 kernels (qblock_kquant.cpp), the reference the others must match.
void dot_q4_k_scalar(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out);
void dot_q6_k_scalar(const uint8_t* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, int m, float* out);
void dot_f16_scalar(const uint8_t* w, const float* x, int64_t x_stride, int64_t k, int m, float* out);
void dot_bf16_scalar(const uint8_t* w, const float* x, int64_t x_stride, int64_t k, int m, float* out);
}  // namespace qdetail

}  // namespace lathe
