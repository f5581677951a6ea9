#include "lathe/kernels/cpu/base_compute.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/kernels/cpu/qblock.h"
#include "lathe/kernels/cpu/row_reduce.h"

#ifdef LATHE_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace lathe {

static BaseCompute g_compute = BaseCompute::F32;

const char* base_compute_name(BaseCompute c) {
  switch (c) {
    case BaseCompute::F32: return "f32";
    case BaseCompute::BF16: return "bf16";
    case BaseCompute::Int8: return "int8";
  }
  return "?";
}

#ifdef LATHE_HAVE_DNNL
namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// oneDNN's ISA, capped at AVX2 when lathe's kernels are (LATHE_CPU_ISA=avx2): the AVX2 figures must
// measure AVX2 code. Must happen before the first primitive, hence once, here.
unsigned dnnl_isa_bits() {
  static const unsigned bits = [] {
    if (qisa_active() == QIsa::Avx2) dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx2);
    return unsigned(dnnl::get_effective_cpu_isa());
  }();
  return bits;
}
constexpr unsigned kIsaAvx2 = 0x7, kIsaVnni = 0x40, kIsaAvx2Vnni = 0x400, kIsaBf16 = 0x80;
bool dnnl_has_bf16() { return (dnnl_isa_bits() & kIsaBf16) != 0; }
bool dnnl_has_int8() { return (dnnl_isa_bits() & kIsaAvx2) == kIsaAvx2; }
bool dnnl_has_vnni() { return (dnnl_isa_bits() & (kIsaVnni | kIsaAvx2Vnni)) != 0; }

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Round to nearest even; NaN stays NaN (a quiet one). Branch-free so the loop vectorises.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t((u >> 16) | 0x40u) : uint16_t(r);
}

// One of the two products of a weight: y = a · B with B [K, N] held in the primitive's layout.
struct Product {
  int K = 0, N = 0;
  bool accumulate = false;  // the input gradient: dst += a · B
  dnnl::memory::desc wdesc;  // the blocked layout chosen for the first M (every M reuses it)
  dnnl::memory weights;
  std::vector<float> col_scale;  // int8: s_w per output column
  // int8: 128 · Σ_k of the column's int8 weights. Activations go to oneDNN as u8 (the int8 value + 128):
  // u8·s8 is the form AVX2's vpmaddubsw (and VNNI) multiply, where s8·s8 made oneDNN's gemm:jit shift
  // and compensate the activations on every call (1.12-1.22x slower at one thread, and more parallel
  // regions at two); the shift comes back out exactly in int32 before the scales.
  std::vector<int32_t> col_shift;
  std::map<int, dnnl::matmul> by_m;
  int64_t bytes = 0;
  bool released = false;  // W is a read-only file mapping whose pages prepare() gave back
};

struct Prepared {
  std::unique_ptr<Product> fwd, bwd;
  // A few values of W: a different weight at the same address is caught. Not read again once W's pages
  // went back to its file (`released`): 8 reads a call fault whole large page-cache folios back in
  // (most of each weight, for a file just written), and a read-only mapping's bytes cannot change under
  // the same address while it stays mapped (the trainer frees the cache before its model goes).
  std::vector<float> sample;
  bool released = false;
};

std::mutex g_mu;
std::map<std::tuple<const float*, int, int, int>, Prepared> g_cache;

std::vector<float> sample_of(const float* W, int out, int in) {
  const int64_t n = int64_t(out) * in;
  std::vector<float> s;
  for (int i = 0; i < 8; i++) s.push_back(W[(n - 1) * i / 7]);
  return s;
}

// bf16 with `accumulate`: dst += the product in the primitive (a sum post-op), no second pass.
dnnl::matmul::primitive_desc make_pd(BaseCompute c, int M, int K, int N, const dnnl::memory::desc& wdesc,
                                     bool accumulate) {
  const dt a = c == BaseCompute::BF16 ? dt::bf16 : dt::u8;
  const dt d = c == BaseCompute::BF16 ? dt::f32 : dt::s32;
  dnnl::memory::desc src({M, K}, a, tag::ab), dst({M, N}, d, tag::ab);
  dnnl::matmul::desc md(src, wdesc, dst);
  dnnl::primitive_attr attr;
  if (accumulate && c == BaseCompute::BF16) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  return dnnl::matmul::primitive_desc(md, attr, engine());
}

// B[k, n] = plain[k * sk + n * sn] as `c`'s type (bf16, or int8 per column n with its scale),
// reordered into the layout the primitive wants.
std::unique_ptr<Product> prepare(BaseCompute c, const float* W, int K, int N, int64_t sk, int64_t sn, int first_m,
                                 bool accumulate) {
  auto p = std::make_unique<Product>();
  p->K = K, p->N = N, p->accumulate = accumulate;
  const bool ab = sn == 1;  // row-major [K, N]; else [N, K] (B's transpose)
  dnnl::memory::desc any({K, N}, c == BaseCompute::BF16 ? dt::bf16 : dt::s8, tag::any);
  auto pd = make_pd(c, first_m, K, N, any, accumulate);
  p->wdesc = pd.weights_desc();
  dnnl::stream s(engine());
  if (c == BaseCompute::BF16) {
    std::vector<uint16_t> plain(size_t(K) * N);
#pragma omp parallel for
    for (int64_t i = 0; i < int64_t(K) * N; i++) plain[i] = to_bf16(W[i]);
    dnnl::memory src({{K, N}, dt::bf16, ab ? tag::ab : tag::ba}, engine(), plain.data());
    p->weights = dnnl::memory(p->wdesc, engine());
    dnnl::reorder(src, p->weights).execute(s, src, p->weights);
  } else {
    const float qmax = float(base_compute_int8_wmax());
    p->col_scale.assign(N, 0.0f);
    p->col_shift.assign(N, 0);
    std::vector<int8_t> plain(size_t(K) * N);
    // Column maxima: a contiguous row of W per column for the forward's Wᵀ (sk = 1), else W's rows
    // taken one after another (elementwise maxima, vectorised) rather than strided columns.
    std::vector<float> colmax(N, 0.0f);
    if (sk == 1) {
#pragma omp parallel for
      for (int n = 0; n < N; n++) colmax[n] = absmax_of(W + int64_t(n) * sn, K);
    } else {
      LATHE_CHECK(sn == 1, "a weight layout with neither stride 1");
      for (int k = 0; k < K; k++) {
        const float* row = W + int64_t(k) * sk;
#pragma omp simd
        for (int n = 0; n < N; n++) {
          const float a = std::fabs(row[n]);
          colmax[n] = a > colmax[n] ? a : colmax[n];
        }
      }
    }
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
      const float m = colmax[n];
      const float sc = m > 0.0f ? m / qmax : 1.0f, inv = 1.0f / sc;
      p->col_scale[n] = m > 0.0f ? sc : 0.0f;
      int32_t sum = 0;
      for (int k = 0; k < K; k++) {
        const int8_t q = int8_t(std::nearbyint(W[k * sk + n * sn] * inv));
        plain[k * sk + n * sn] = q;
        sum += q;
      }
      p->col_shift[n] = 128 * sum;
    }
    dnnl::memory src({{K, N}, dt::s8, ab ? tag::ab : tag::ba}, engine(), plain.data());
    p->weights = dnnl::memory(p->wdesc, engine());
    dnnl::reorder(src, p->weights).execute(s, src, p->weights);
  }
  s.wait();
  // A weight that is the model file's read-only mapping (a zero-copy f32 load) gives its pages back
  // now that this copy serves its product: the frozen base's f32 bytes would otherwise stay resident
  // beside the copies (+400 MiB at SmolLM2-135M). A later read (the other product's conversion, the
  // sample below, DoRA, merging) faults them back in from the file. Heap weights are never touched
  // (MADV_DONTNEED would zero them); the mappings are read afresh each time, never cached.
  // (Its sample is not read again after this: see Prepared.)
  const size_t wbytes = size_t(K) * size_t(N) * sizeof(float);
  if (inside_mapping(readonly_file_mappings(), W, wbytes)) {
    release_mapped_pages(W, wbytes);
    p->released = true;
  }
  p->by_m.emplace(first_m, dnnl::matmul(pd));
  p->bytes = int64_t(p->wdesc.get_size()) + int64_t(p->col_scale.size() + p->col_shift.size()) * 4;
  return p;
}

// The prepared product and its primitive for M rows (both found under the lock: the maps may grow).
const Product& product_for(BaseCompute c, const float* W, int out, int in, bool fwd, int M, const dnnl::matmul** mm) {
  std::lock_guard<std::mutex> lock(g_mu);
  Prepared& e = g_cache[{W, out, in, int(c)}];
  if (!e.released) {
    std::vector<float> smp = sample_of(W, out, in);
    if (!e.sample.empty() && std::memcmp(e.sample.data(), smp.data(), smp.size() * 4) != 0) e = Prepared{};
    e.sample = std::move(smp);
  }
  std::unique_ptr<Product>& p = fwd ? e.fwd : e.bwd;
  // forward: B = Wᵀ [in, out] (W's rows are B's columns); backward: B = W [out, in].
  if (!p) {
    p = fwd ? prepare(c, W, in, out, 1, in, M, false) : prepare(c, W, out, in, in, 1, M, true);
    e.released = e.released || p->released;
  }
  if (!p->by_m.count(M)) {
    try {
      p->by_m.emplace(M, dnnl::matmul(make_pd(c, M, p->K, p->N, p->wdesc, p->accumulate)));
    } catch (const dnnl::error& err) {
      fail("kernels", "--base-compute {}: oneDNN has no matmul for [{}, {}] x [{}, {}] in the weight layout chosen "
           "at first use: {}", base_compute_name(c), M, p->K, p->K, p->N, err.what());
    }
  }
  *mm = &p->by_m.at(M);
  return *p;
}

// out[M, N] (+)= a[M, K] · B with `c`; per-row scales of a (int8) and B's column scales applied after.
void run(BaseCompute c, const Product& p, const dnnl::matmul& mm, const float* a, int M, const float* bias, float* out,
         bool accumulate) {
  const int K = p.K, N = p.N;
  dnnl::stream s(engine());
  // The calling thread's buffers, named through references: inside the OpenMP loops below a
  // thread_local would be each worker's own (empty) vector.
  struct Buffers {
    std::vector<uint16_t> abf;
    std::vector<uint8_t> a8;  // the int8 activations + 128
    std::vector<float> arow_scale;
    std::vector<int32_t> acc;
  };
  thread_local Buffers buffers;
  auto& abf = buffers.abf;
  auto& a8 = buffers.a8;
  auto& arow_scale = buffers.arow_scale;
  auto& acc = buffers.acc;
  const size_t na = size_t(M) * K, nd = size_t(M) * N;
  LATHE_CHECK(accumulate == p.accumulate, "a product prepared for accumulate={} used with {}", p.accumulate, accumulate);
  // The conversions and scalings around the product are memory-bound passes: parallel only when large.
  // On a shared machine every OpenMP fork/join can cost a scheduler time slice (docs/bench_train.md),
  // but a training product (T = 512: 0.4-1.1 M elements around each of SmolLM2's) run on one thread
  // left the other idle for the whole pass at two threads.
  const bool par = nd + na > (size_t(1) << 17);
  if (c == BaseCompute::BF16) {
    abf.resize(na);
#pragma omp parallel for if (par)
    for (int64_t i = 0; i < int64_t(na); i++) abf[i] = to_bf16(a[i]);
    dnnl::memory am({{M, K}, dt::bf16, tag::ab}, engine(), abf.data());
    dnnl::memory dm({{M, N}, dt::f32, tag::ab}, engine(), out);
    mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dm}});
    s.wait();
    if (bias) {
#pragma omp parallel for if (par)
      for (int t = 0; t < M; t++)
        for (int n = 0; n < N; n++) out[size_t(t) * N + n] += bias[n];
    }
    return;
  }
  a8.resize(na), arow_scale.resize(M), acc.resize(nd);
#pragma omp parallel for if (par)
  for (int t = 0; t < M; t++) {
    const float* r = a + size_t(t) * K;
    const float m = absmax_of(r, K);  // a plain loop here was a scalar vmaxss chain: ~10% of an int8 step
    const float sc = m > 0.0f ? m / 127.0f : 1.0f, inv = 1.0f / sc;
    arow_scale[t] = m > 0.0f ? sc : 0.0f;
    uint8_t* q = a8.data() + size_t(t) * K;
    for (int k = 0; k < K; k++) q[k] = uint8_t(int(std::nearbyint(r[k] * inv)) + 128);
  }
  dnnl::memory am({{M, K}, dt::u8, tag::ab}, engine(), a8.data());
  dnnl::memory dm({{M, N}, dt::s32, tag::ab}, engine(), acc.data());
  mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dm}});
  s.wait();
  const float* cs = p.col_scale.data();
  const int32_t* shift = p.col_shift.data();
#pragma omp parallel for if (par)
  for (int t = 0; t < M; t++) {
    const float st = arow_scale[t];
    const int32_t* ar = acc.data() + size_t(t) * N;
    float* o = out + size_t(t) * N;
    for (int n = 0; n < N; n++) {
      const float v = float(ar[n] - shift[n]) * (st * cs[n]) + (bias ? bias[n] : 0.0f);
      o[n] = accumulate ? o[n] + v : v;
    }
  }
}

}  // namespace
#endif  // LATHE_HAVE_DNNL

std::string base_compute_unavailable_reason(BaseCompute c) {
  if (c == BaseCompute::F32) return "";
#ifndef LATHE_HAVE_DNNL
  return fmt::format("this lathe was built without oneDNN (install Debian's libdnnl-dev and rebuild: "
                     "scripts/setup.sh) and only has f32");
#else
  if (c == BaseCompute::BF16 && !dnnl_has_bf16())
    return "this CPU (or LATHE_CPU_ISA) has no bf16 dot products (AVX512-BF16 or AMX-BF16); use f32 (or int8)";
  if (c == BaseCompute::Int8 && !dnnl_has_int8()) return "this CPU has no AVX2; use f32";
  return "";
#endif
}

bool base_compute_available(BaseCompute c) { return base_compute_unavailable_reason(c).empty(); }

BaseCompute base_compute_auto() {
  return base_compute_available(BaseCompute::BF16) ? BaseCompute::BF16 : BaseCompute::F32;
}

BaseCompute base_compute_parse(const std::string& s, const char* what) {
  BaseCompute c;
  if (s == "auto") return base_compute_auto();
  if (s == "f32") c = BaseCompute::F32;
  else if (s == "bf16") c = BaseCompute::BF16;
  else if (s == "int8") c = BaseCompute::Int8;
  else fail("train", "{}: '{}' is not a base compute (f32 | bf16 | int8 | auto)", what, s);
  const std::string why = base_compute_unavailable_reason(c);
  if (!why.empty()) fail("train", "{} {}: {}", what, s, why);
  return c;
}

void set_base_compute(BaseCompute c) {
  const std::string why = base_compute_unavailable_reason(c);
  if (!why.empty()) fail("train", "base compute {}: {}", base_compute_name(c), why);
  g_compute = c;
}

BaseCompute base_compute() { return g_compute; }

int base_compute_int8_wmax() {
#ifdef LATHE_HAVE_DNNL
  return dnnl_has_vnni() ? 127 : 63;
#else
  return 127;
#endif
}

void base_compute_forward(BaseCompute c, const float* W, int out, int in, const float* x, const float* bias,
                          float* y, int T) {
  LATHE_CHECK(c != BaseCompute::F32, "base_compute_forward is for bf16 / int8");
  if (T <= 0) return;
#ifdef LATHE_HAVE_DNNL
  const dnnl::matmul* mm = nullptr;
  const Product& p = product_for(c, W, out, in, true, T, &mm);
  run(c, p, *mm, x, T, bias, y, false);
#else
  fail("train", "base compute {}: {}", base_compute_name(c), base_compute_unavailable_reason(c));
#endif
}

void base_compute_backward_input(BaseCompute c, const float* W, int out, int in, const float* dy, float* dx, int T) {
  LATHE_CHECK(c != BaseCompute::F32, "base_compute_backward_input is for bf16 / int8");
  if (T <= 0) return;
#ifdef LATHE_HAVE_DNNL
  const dnnl::matmul* mm = nullptr;
  const Product& p = product_for(c, W, out, in, false, T, &mm);
  run(c, p, *mm, dy, T, nullptr, dx, true);
#else
  fail("train", "base compute {}: {}", base_compute_name(c), base_compute_unavailable_reason(c));
#endif
}

void base_compute_release() {
#ifdef LATHE_HAVE_DNNL
  std::lock_guard<std::mutex> lock(g_mu);
  g_cache.clear();
#endif
}

int64_t base_compute_bytes() {
  int64_t n = 0;
#ifdef LATHE_HAVE_DNNL
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& [k, e] : g_cache) n += (e.fwd ? e.fwd->bytes : 0) + (e.bwd ? e.bwd->bytes : 0);
#endif
  return n;
}

}  // namespace lathe
