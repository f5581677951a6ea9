// Numerical gradient checks for every backward kernel (STYLE.md §2): central finite differences
// of the scalar reference forward, L = Σ R∘f(x) for a random R, against the analytic gradient of
// both kernels/ref and kernels/cpu. Each op has its own step and tolerance; the cosine similarity
// of the whole gradient vectors is checked too (catches direction errors small entries hide).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/ref/ref.h"
#include "test_util.h"

namespace {

const bool kTwoThreads = (lathe::cpu_set_num_threads(2), true);  // cover the parallel backward paths

using Vec = std::vector<float>;

std::vector<float> randv(size_t n, uint64_t seed, float s = 1.0f) { return lathe::test::normal_vector(n, seed, s); }

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += double(a[i]) * b[i];
  return s;
}

struct Knobs {
  float step = 1e-2f;
  float rel_tol = 1e-2f;   // per checked entry, relative to max(|numeric|, floor)
  float floor = 1e-1f;
  double min_cosine = 0.9999;
};

// Checks `analytic` (d/dx of Σ R∘f(x)) against finite differences of `forward` at up to 48 entries.
void check_grad(const char* what, Vec& x, const std::function<Vec()>& forward, const Vec& R, const Vec& analytic,
                Knobs k = {}) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  Vec numeric(x.size(), 0.0f);
  lathe::Rng pick(99);
  size_t n_check = std::min<size_t>(48, x.size());
  std::vector<size_t> idx;
  for (size_t i = 0; i < n_check; i++) idx.push_back(x.size() <= 48 ? i : pick.next_u64() % x.size());
  Vec a_sub, n_sub;
  for (size_t i : idx) {
    float orig = x[i];
    x[i] = orig + k.step;
    double lp = dot(forward(), R);
    x[i] = orig - k.step;
    double lm = dot(forward(), R);
    x[i] = orig;
    float num = float((lp - lm) / (2.0 * k.step));
    float ana = analytic[i];
    EXPECT_LE(std::fabs(num - ana), k.rel_tol * std::max(std::fabs(num), k.floor))
        << what << " entry " << i << ": analytic " << ana << " numeric " << num;
    a_sub.push_back(ana);
    n_sub.push_back(num);
  }
  double cos = dot(a_sub, n_sub) / std::sqrt(dot(a_sub, a_sub) * dot(n_sub, n_sub) + 1e-30);
  EXPECT_GE(cos, k.min_cosine) << what << ": cosine similarity of analytic and numeric gradients";
}

void expect_same(const Vec& a, const Vec& b, float tol, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++)
    ASSERT_LE(std::fabs(a[i] - b[i]), tol * std::max(1.0f, std::fabs(b[i]))) << what << " at " << i;
}

TEST(Gradcheck, Matmul) {
  const int M = 5, K = 7, N = 3;
  Vec x = randv(M * K, 1), w = randv(N * K, 2), b = randv(N, 3), R = randv(M * N, 4);
  auto fwd = [&] {
    Vec y(M * N);
    lathe::ref::matmul_forward(y.data(), x.data(), w.data(), b.data(), M, K, N);
    return y;
  };
  Vec dx(M * K, 0), dw(N * K, 0), db(N, 0);
  lathe::ref::matmul_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), M, K, N);
  check_grad("matmul dinp", x, fwd, R, dx);
  check_grad("matmul dweight", w, fwd, R, dw);
  check_grad("matmul dbias", b, fwd, R, db);
  Vec cx(M * K, 0), cw(N * K, 0), cb(N, 0);
  lathe::matmul_backward(cx.data(), cw.data(), cb.data(), R.data(), x.data(), w.data(), M, K, N);
  expect_same(cx, dx, 1e-5f, "cpu matmul dinp");
  expect_same(cw, dw, 1e-5f, "cpu matmul dweight");
  expect_same(cb, db, 1e-5f, "cpu matmul dbias");
}

TEST(Gradcheck, Rmsnorm) {
  const int N = 4, C = 9;
  Vec x = randv(N * C, 5), w = randv(C, 6), R = randv(N * C, 7), rstd(N);
  auto fwd = [&] {
    Vec y(N * C);
    lathe::ref::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    return y;
  };
  fwd();
  Vec dx(N * C, 0), dw(C, 0);
  lathe::ref::rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  check_grad("rmsnorm dinp", x, fwd, R, dx, {.step = 1e-3f});
  check_grad("rmsnorm dweight", w, fwd, R, dw, {.step = 1e-3f});
  fwd();
  Vec cx(N * C, 0), cw(C, 0);
  lathe::rmsnorm_backward(cx.data(), cw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  expect_same(cx, dx, 1e-5f, "cpu rmsnorm dinp");
  expect_same(cw, dw, 1e-5f, "cpu rmsnorm dweight");
}

TEST(Gradcheck, Rope) {
  const int T = 3, H = 2, D = 6;
  Vec x = randv(T * H * D, 8), R = randv(T * H * D, 9);
  Vec ang = randv(T * D / 2, 10, 2.0f), c(ang.size()), s(ang.size());
  for (size_t i = 0; i < ang.size(); i++) c[i] = std::cos(ang[i]), s[i] = std::sin(ang[i]);
  auto fwd = [&] {
    Vec y = x;
    lathe::ref::rope_forward(y.data(), c.data(), s.data(), T, H, D);
    return y;
  };
  Vec dx = R;
  lathe::ref::rope_backward(dx.data(), c.data(), s.data(), T, H, D);
  check_grad("rope", x, fwd, R, dx);
  Vec cx = R;
  lathe::rope_backward(cx.data(), c.data(), s.data(), T, H, D);
  expect_same(cx, dx, 1e-6f, "cpu rope");
}

TEST(Gradcheck, Attention) {
  // Chunk after a cached past (T < S) exercises the causal offset; GQA with 2 query heads per kv head.
  for (auto [T_, S_] : std::vector<std::pair<int, int>>{{4, 4}, {3, 5}}) {
    const int T = T_, S = S_;  // lambdas below capture these; clang 14 cannot capture a structured binding
    const int H = 4, Hkv = 2, D = 4;
    Vec q = randv(T * H * D, 11), k = randv(S * Hkv * D, 12), v = randv(S * Hkv * D, 13), R = randv(T * H * D, 14);
    Vec probs(H * T * S);
    auto fwd = [&] {
      Vec y(T * H * D);
      lathe::ref::attention_forward(y.data(), probs.data(), q.data(), k.data(), v.data(), T, S, H, Hkv, D);
      return y;
    };
    fwd();
    Vec dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
    lathe::ref::attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(),
                                   probs.data(), T, S, H, Hkv, D);
    check_grad("attention dq", q, fwd, R, dq, {.step = 1e-3f});
    check_grad("attention dk", k, fwd, R, dk, {.step = 1e-3f});
    check_grad("attention dv", v, fwd, R, dv, {.step = 1e-3f});
    fwd();
    for (bool kept : {true, false}) {  // the forward's probabilities, or recomputed per block of rows
      Vec cq(q.size(), 0), ck(k.size(), 0), cv(v.size(), 0);
      lathe::attention_backward(cq.data(), ck.data(), cv.data(), R.data(), q.data(), k.data(), v.data(),
                                kept ? probs.data() : nullptr, T, S, H, Hkv, D);
      expect_same(cq, dq, 1e-5f, "cpu attention dq");
      expect_same(ck, dk, 1e-5f, "cpu attention dk");
      expect_same(cv, dv, 1e-5f, "cpu attention dv");
    }
  }
}

TEST(Gradcheck, AttentionFamilyOptions) {
  // Gemma's scale (query_pre_attn_scalar), Gemma 2's soft-capping, and sliding windows shorter than
  // the keys, after a cached past and without.
  const std::vector<lathe::AttentionOpts> opts = {
      {.scale = 0.3f, .softcap = 0.0f, .window = 0},
      {.scale = 0.0f, .softcap = 1.5f, .window = 0},
      {.scale = 0.0f, .softcap = 0.0f, .window = 2},
      {.scale = 0.45f, .softcap = 1.2f, .window = 3},
  };
  for (const lathe::AttentionOpts& o : opts)
    for (auto [T_, S_] : std::vector<std::pair<int, int>>{{5, 5}, {3, 6}, {1, 6}}) {
      const int T = T_, S = S_;  // captured below (clang 14 cannot capture a structured binding)
      const int H = 4, Hkv = 2, D = 4;
      Vec q = randv(T * H * D, 31, 1.5f), k = randv(S * Hkv * D, 32, 1.5f), v = randv(S * Hkv * D, 33),
          R = randv(T * H * D, 34);
      Vec probs(H * T * S);
      auto fwd = [&] {
        Vec y(T * H * D);
        lathe::ref::attention_forward(y.data(), probs.data(), q.data(), k.data(), v.data(), T, S, H, Hkv, D, o);
        return y;
      };
      Vec want = fwd();
      Vec got(T * H * D), gprobs(H * T * S), unkept(T * H * D);
      lathe::attention_forward(got.data(), gprobs.data(), q.data(), k.data(), v.data(), T, S, H, Hkv, D, o);
      expect_same(got, want, 1e-5f, "cpu attention forward with options");
      lathe::attention_forward(unkept.data(), nullptr, q.data(), k.data(), v.data(), T, S, H, Hkv, D, o);
      EXPECT_EQ(unkept, got) << "the output without kept probabilities differs";
      Vec dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
      lathe::ref::attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(),
                                     probs.data(), T, S, H, Hkv, D, o);
      check_grad("attention(opts) dq", q, fwd, R, dq, {.step = 1e-3f});
      check_grad("attention(opts) dk", k, fwd, R, dk, {.step = 1e-3f});
      check_grad("attention(opts) dv", v, fwd, R, dv, {.step = 1e-3f});
      fwd();
      if (T == 1) continue;  // decode rows have no backward
      for (bool kept : {true, false}) {
        Vec cq(q.size(), 0), ck(k.size(), 0), cv(v.size(), 0);
        lathe::attention_backward(cq.data(), ck.data(), cv.data(), R.data(), q.data(), k.data(), v.data(),
                                  kept ? gprobs.data() : nullptr, T, S, H, Hkv, D, o);
        expect_same(cq, dq, 1e-5f, "cpu attention(opts) dq");
        expect_same(ck, dk, 1e-5f, "cpu attention(opts) dk");
        expect_same(cv, dv, 1e-5f, "cpu attention(opts) dv");
      }
    }
}

TEST(Gradcheck, PartialRope) {
  const int T = 3, H = 2, D = 10, R_dims = 6;  // Phi-3 style: the first 6 of 10 channels rotate
  Vec x = randv(T * H * D, 41), R = randv(T * H * D, 42);
  Vec ang = randv(T * R_dims / 2, 43, 2.0f), c(ang.size()), s(ang.size());
  for (size_t i = 0; i < ang.size(); i++) c[i] = std::cos(ang[i]), s[i] = std::sin(ang[i]);
  auto fwd = [&] {
    Vec y = x;
    lathe::ref::rope_forward(y.data(), c.data(), s.data(), T, H, D, R_dims);
    return y;
  };
  Vec y = fwd();
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++)
      for (int d = R_dims; d < D; d++) EXPECT_EQ(y[(t * H + h) * D + d], x[(t * H + h) * D + d]) << "pass-through";
  Vec dx = R;
  lathe::ref::rope_backward(dx.data(), c.data(), s.data(), T, H, D, R_dims);
  check_grad("partial rope", x, fwd, R, dx);
  Vec cx = R;
  lathe::rope_backward(cx.data(), c.data(), s.data(), T, H, D, R_dims);
  expect_same(cx, dx, 1e-6f, "cpu partial rope");
  Vec cy = x;
  lathe::rope_forward(cy.data(), c.data(), s.data(), T, H, D, R_dims);
  expect_same(cy, y, 1e-6f, "cpu partial rope forward");
}

TEST(Gradcheck, Geglu) {
  const int n = 29;
  Vec g = randv(n, 44, 2.5f), u = randv(n, 45), R = randv(n, 46);
  auto fwd = [&] {
    Vec y(n);
    lathe::ref::geglu_forward(y.data(), g.data(), u.data(), n);
    return y;
  };
  Vec want = fwd(), got(n);
  lathe::geglu_forward(got.data(), g.data(), u.data(), n);
  expect_same(got, want, 1e-5f, "cpu geglu forward");
  Vec dg(n, 0), du(n, 0);
  lathe::ref::geglu_backward(dg.data(), du.data(), R.data(), g.data(), u.data(), n);
  check_grad("geglu dgate", g, fwd, R, dg, {.step = 1e-3f});
  check_grad("geglu dup", u, fwd, R, du, {.step = 1e-3f});
  Vec cg(n, NAN), cu(n, NAN);  // written, not added to
  lathe::geglu_backward(cg.data(), cu.data(), R.data(), g.data(), u.data(), n);
  expect_same(cg, dg, 1e-5f, "cpu geglu dgate");
  expect_same(cu, du, 1e-5f, "cpu geglu dup");
}

TEST(Gradcheck, Softcap) {
  const int n = 31;
  const float cap = 2.0f;
  Vec x = randv(n, 47, 3.0f), R = randv(n, 48);
  auto fwd = [&] {
    Vec y = x;
    lathe::ref::softcap_forward(y.data(), n, cap);
    return y;
  };
  Vec y = fwd();
  Vec dx = R;
  lathe::ref::softcap_backward(dx.data(), y.data(), n, cap);
  check_grad("softcap", x, fwd, R, dx, {.step = 1e-3f});
  Vec cy = x;
  lathe::softcap_forward(cy.data(), n, cap);
  expect_same(cy, y, 1e-5f, "cpu softcap forward");
  Vec cx = R;
  lathe::softcap_backward(cx.data(), y.data(), n, cap);
  expect_same(cx, dx, 1e-5f, "cpu softcap backward");
}

TEST(Gradcheck, Swiglu) {
  const int n = 23;
  Vec g = randv(n, 15, 3.0f), u = randv(n, 16), R = randv(n, 17);
  auto fwd = [&] {
    Vec y(n);
    lathe::ref::swiglu_forward(y.data(), g.data(), u.data(), n);
    return y;
  };
  Vec dg(n, 0), du(n, 0);
  lathe::ref::swiglu_backward(dg.data(), du.data(), R.data(), g.data(), u.data(), n);
  check_grad("swiglu dgate", g, fwd, R, dg, {.step = 1e-3f});
  check_grad("swiglu dup", u, fwd, R, du, {.step = 1e-3f});
  Vec cg(n, NAN), cu(n, NAN);  // written, not added to
  lathe::swiglu_backward(cg.data(), cu.data(), R.data(), g.data(), u.data(), n);
  expect_same(cg, dg, 1e-5f, "cpu swiglu dgate");
  expect_same(cu, du, 1e-5f, "cpu swiglu dup");
}

TEST(Gradcheck, Embedding) {
  const int N = 5, C = 4, V = 6;
  std::vector<int32_t> ids = {2, 0, 2, 5, 1};  // a repeated id must accumulate
  Vec table = randv(V * C, 18), R = randv(N * C, 19);
  auto fwd = [&] {
    Vec y(N * C);
    lathe::ref::embedding_forward(y.data(), ids.data(), table.data(), N, C);
    return y;
  };
  Vec dt(V * C, 0);
  lathe::ref::embedding_backward(dt.data(), R.data(), ids.data(), N, C);
  check_grad("embedding", table, fwd, R, dt);
  Vec ct(V * C, 0);
  lathe::embedding_backward(ct.data(), R.data(), ids.data(), N, C);
  expect_same(ct, dt, 0.0f, "cpu embedding");
}

TEST(Gradcheck, CrossEntropy) {
  const int N = 4, V = 11;
  Vec x = randv(N * V, 20, 2.0f);
  std::vector<int32_t> tgt = {3, -100, 0, 10};
  const float scale = 1.0f / 3.0f;  // mean over the 3 counted rows
  auto loss = [&] {
    int64_t cnt = 0;
    return Vec{float(lathe::ref::cross_entropy_sum(x.data(), tgt.data(), N, V, &cnt) * scale)};
  };
  Vec d = x;
  int64_t cnt = 0;
  double l = lathe::ref::cross_entropy_backward(d.data(), tgt.data(), N, V, scale, &cnt);
  EXPECT_EQ(cnt, 3);
  LATHE_EXPECT_CLOSE(l * scale, loss()[0], 1e-6, 1e-7);
  check_grad("cross-entropy", x, loss, Vec{1.0f}, d, {.step = 1e-3f, .floor = 1e-2f});
  Vec c = x;
  int64_t cc = 0;
  double lc = lathe::cross_entropy_backward(c.data(), tgt.data(), N, V, scale, &cc);
  LATHE_EXPECT_CLOSE(lc, l, 1e-6, 1e-6);
  expect_same(c, d, 1e-6f, "cpu cross-entropy");
}

}  // namespace
