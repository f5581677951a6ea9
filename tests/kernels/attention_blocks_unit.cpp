// Attention over many row blocks (kernels/cpu/attention.cpp): sequences longer than kAttnRowBlock,
// with and without keys before the first query (a prefix or a KV cache), GQA, and the family
// options. The short shapes of backward_gradcheck stay inside one block; these cross block edges,
// split a head's blocks into the backward's two parts, and check that
//   - forward and backward agree with the scalar reference (kernels/ref) within float rounding,
//   - an output computed without kept probabilities is bitwise the one computed with them, and so are
//     the gradients from recomputed probabilities (they are the forward's values, bit for bit),
//   - 1, 2 and 3 threads give the same bits.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/ref/ref.h"
#include "test_util.h"

namespace {

using Vec = std::vector<float>;

std::vector<float> randv(size_t n, uint64_t seed, float s = 1.0f) { return lathe::test::normal_vector(n, seed, s); }

// Largest |a - b| relative to the largest |b| (gradients of dk/dv sum over hundreds of rows).
double rel_err(const Vec& a, const Vec& b) {
  double mx = 0, ref = 1e-6;
  for (size_t i = 0; i < a.size(); i++) {
    mx = std::max(mx, std::fabs(double(a[i]) - b[i]));
    ref = std::max(ref, std::fabs(double(b[i])));
  }
  return mx / ref;
}

struct Shape {
  int T, S, H, Hkv, D;
  lathe::AttentionOpts o;
};

struct Grads {
  Vec dq, dk, dv;
  bool operator==(const Grads& g) const { return dq == g.dq && dk == g.dk && dv == g.dv; }
};

Grads cpu_backward(const Shape& s, const Vec& q, const Vec& k, const Vec& v, const Vec& dout, const float* probs,
                   int threads) {
  lathe::cpu_set_num_threads(threads);
  Grads g{Vec(q.size(), 0.0f), Vec(k.size(), 0.0f), Vec(v.size(), 0.0f)};
  lathe::attention_backward(g.dq.data(), g.dk.data(), g.dv.data(), dout.data(), q.data(), k.data(), v.data(), probs,
                            s.T, s.S, s.H, s.Hkv, s.D, s.o);
  return g;
}

TEST(AttentionBlocks, LongRowsMatchReferenceAndRecomputeIsBitwise) {
  lathe::AttentionOpts capped;
  capped.softcap = 2.0f;
  lathe::AttentionOpts windowed;
  windowed.window = 70;
  windowed.scale = 0.2f;
  // T over several blocks (not on block edges), keys before the queries, GQA 3:1 and 1:1.
  const std::vector<Shape> shapes = {
      {300, 300, 3, 1, 8, {}},      {129, 129, 2, 2, 4, {}},  {257, 320, 4, 2, 8, {}},
      {200, 200, 3, 1, 8, capped},  {260, 290, 2, 1, 4, windowed},
  };
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    SCOPED_TRACE(testing::Message() << "T=" << s.T << " S=" << s.S << " H=" << s.H << " Hkv=" << s.Hkv);
    const Vec q = randv(size_t(s.T) * s.H * s.D, seed++, 0.8f), k = randv(size_t(s.S) * s.Hkv * s.D, seed++, 0.8f),
              v = randv(size_t(s.S) * s.Hkv * s.D, seed++), dout = randv(size_t(s.T) * s.H * s.D, seed++);
    Vec want(q.size()), pw(size_t(s.H) * s.T * s.S);
    lathe::ref::attention_forward(want.data(), pw.data(), q.data(), k.data(), v.data(), s.T, s.S, s.H, s.Hkv, s.D, s.o);
    Grads ref{Vec(q.size(), 0.0f), Vec(k.size(), 0.0f), Vec(v.size(), 0.0f)};
    lathe::ref::attention_backward(ref.dq.data(), ref.dk.data(), ref.dv.data(), dout.data(), q.data(), k.data(),
                                   v.data(), pw.data(), s.T, s.S, s.H, s.Hkv, s.D, s.o);

    lathe::cpu_set_num_threads(2);
    Vec kept(q.size()), unkept(q.size()), probs(pw.size());
    lathe::attention_forward(kept.data(), probs.data(), q.data(), k.data(), v.data(), s.T, s.S, s.H, s.Hkv, s.D, s.o);
    lathe::attention_forward(unkept.data(), nullptr, q.data(), k.data(), v.data(), s.T, s.S, s.H, s.Hkv, s.D, s.o);
    EXPECT_LT(rel_err(kept, want), 1e-5);
    EXPECT_LT(rel_err(probs, pw), 1e-5);
    EXPECT_EQ(kept, unkept) << "forward without kept probabilities";

    const Grads from_kept = cpu_backward(s, q, k, v, dout, probs.data(), 2);
    EXPECT_LT(rel_err(from_kept.dq, ref.dq), 2e-5);
    EXPECT_LT(rel_err(from_kept.dk, ref.dk), 2e-5);
    EXPECT_LT(rel_err(from_kept.dv, ref.dv), 2e-5);
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(testing::Message() << threads << " threads");
      EXPECT_TRUE(cpu_backward(s, q, k, v, dout, nullptr, threads) == from_kept) << "recomputed probabilities";
      EXPECT_TRUE(cpu_backward(s, q, k, v, dout, probs.data(), threads) == from_kept) << "kept probabilities";
    }
  }
  lathe::cpu_set_num_threads(1);
}

// Gradients accumulate into what the caller's buffers hold (block_backward adds a sequence's dk/dv
// into the prefix's): running the backward twice over the same buffers doubles them (to rounding).
TEST(AttentionBlocks, GradientsAccumulate) {
  const Shape s{150, 170, 2, 1, 4, {}};
  const Vec q = randv(size_t(s.T) * s.H * s.D, 7), k = randv(size_t(s.S) * s.Hkv * s.D, 8),
            v = randv(size_t(s.S) * s.Hkv * s.D, 9), dout = randv(size_t(s.T) * s.H * s.D, 10);
  lathe::cpu_set_num_threads(2);
  Grads once = cpu_backward(s, q, k, v, dout, nullptr, 2), twice = once;
  lathe::attention_backward(twice.dq.data(), twice.dk.data(), twice.dv.data(), dout.data(), q.data(), k.data(),
                            v.data(), nullptr, s.T, s.S, s.H, s.Hkv, s.D, s.o);
  auto doubled = [](const Vec& v) {
    Vec d(v);
    for (float& x : d) x *= 2.0f;
    return d;
  };
  EXPECT_LT(rel_err(twice.dq, doubled(once.dq)), 1e-6);
  EXPECT_LT(rel_err(twice.dk, doubled(once.dk)), 1e-6);
  EXPECT_LT(rel_err(twice.dv, doubled(once.dv)), 1e-6);
  lathe::cpu_set_num_threads(1);
}

}  // namespace
