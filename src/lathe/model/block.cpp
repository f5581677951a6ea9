#include "lathe/model/block.h"

#include <algorithm>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/forward.h"

namespace lathe {

// ---- rows ----

void BlockRows::set_rope(const std::vector<float>& inv_freq) {
  const size_t half = inv_freq.size();
  cos.resize(size_t(N) * half);
  sin.resize(size_t(N) * half);
  for (const BlockSequence& s : seqs)
    rope_fill(inv_freq, s.pos0, s.rows, cos.data() + size_t(s.row0) * half, sin.data() + size_t(s.row0) * half);
}

bool BlockRows::per_sequence_adapters() const {
  for (const BlockSequence& s : seqs)
    if (s.adapters) return true;
  return false;
}

void BlockActs::resize(const ModelConfig& c, int N, bool saved) {
  const size_t C = c.hidden_size, F = c.intermediate_size, QD = c.q_dim(), KD = c.kv_dim();
  q.resize(N * QD), k.resize(N * KD), v.resize(N * KD);
  att.resize(N * QD), x_mid.resize(N * C);
  gate.resize(N * F), up.resize(N * F);
  if (saved) {
    rstd1.resize(N), rstd2.resize(N);
    if (c.qk_norm) {
      q_pre.resize(N * QD), k_pre.resize(N * KD);
      rstd_q.resize(size_t(N) * c.num_attention_heads), rstd_k.resize(size_t(N) * c.num_key_value_heads);
    }
  }
}

template <typename V>
static float* at_least(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

static const AdapterSet* adapters_of(const BlockContext& bc, const BlockSequence& s) {
  return s.adapters ? s.adapters : bc.adapters;
}

// The projection `id` of block l with its adapters: the call's for every row, or each sequence's
// own for its rows (`groups` holds them while the LinearRef is used).
static LinearRef block_lin(const BlockContext& bc, const BlockRows& rows, int l, LinearId id,
                           std::vector<AdapterRows>& groups) {
  LinearRef r = block_linear(bc.m, l, id, bc.grads ? &bc.grads->layers[l] : nullptr);
  if (!rows.per_sequence_adapters()) {
    r.adapter = bc.adapters ? bc.adapters->linear(l, id) : nullptr;
    return r;
  }
  groups.clear();
  for (const BlockSequence& s : rows.seqs) {
    const AdapterSet* as = adapters_of(bc, s);
    if (LinearAdapter* a = as ? as->linear(l, id) : nullptr) groups.push_back({s.row0, s.rows, a});
  }
  r.row_adapters = &groups;
  return r;
}

// A sequence without a cache attends over [its adapter's key/value prefix; its own rows]; returns
// the prefix length and points k/v at contiguous [P + rows, Hkv*D] buffers (s.kv when P > 0).
static int sequence_kv(const BlockContext& bc, const BlockSequence& sq, int l, const float* k_rows,
                       const float* v_rows, int KD, BlockScratch& s, const float** k, const float** v) {
  const AdapterSet* as = adapters_of(bc, sq);
  const int P = as ? as->prefix_len : 0, T = sq.rows, S = P + T;
  *k = k_rows, *v = v_rows;
  if (P == 0) return 0;
  float* kb = at_least(s.kv, 4 * size_t(S) * KD);
  float* vb = kb + size_t(S) * KD;
  std::memcpy(kb, as->prefix_k[l], sizeof(float) * P * KD);
  std::memcpy(kb + size_t(P) * KD, k_rows, sizeof(float) * T * KD);
  std::memcpy(vb, as->prefix_v[l], sizeof(float) * P * KD);
  std::memcpy(vb + size_t(P) * KD, v_rows, sizeof(float) * T * KD);
  *k = kb, *v = vb;
  return P;
}

// ---- forward ----

void block_forward(const BlockContext& bc, int l, const BlockRows& rows, BlockActs& a, BlockScratch& s,
                   const float* x_in, float* x_out) {
  const ModelConfig& c = bc.m.config;
  const LayerWeights& w = bc.m.weights.layers[l];
  const int N = rows.N, C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int QD = c.q_dim(), KD = c.kv_dim(), F = c.intermediate_size;
  const bool saved = !a.rstd1.empty();
  AdapterContext ctx = bc.actx;
  ctx.layer = l;
  std::vector<AdapterRows> groups;
  auto lin = [&](LinearId id) { return block_lin(bc, rows, l, id, groups); };
  float* xn = at_least(s.xn, size_t(N) * C);

  // Attention: x_mid = x_in + o(attention(rope(q), rope(k), v)).
  rmsnorm_forward(xn, saved ? a.rstd1.data() : nullptr, x_in, w.attn_norm.f32(), N, C, c.rms_norm_eps);
  linear_forward(lin(LinearId::Q), xn, a.q.data(), N, ctx);
  linear_forward(lin(LinearId::K), xn, a.k.data(), N, ctx);
  linear_forward(lin(LinearId::V), xn, a.v.data(), N, ctx);
  if (c.qk_norm) {  // Qwen3: RMSNorm over each head's D channels, before RoPE
    const float* q_in = a.q.data();
    const float* k_in = a.k.data();
    if (saved) {  // backward needs the inputs of the norms
      a.q_pre = a.q, a.k_pre = a.k;
      q_in = a.q_pre.data(), k_in = a.k_pre.data();
    }
    rmsnorm_forward(a.q.data(), saved ? a.rstd_q.data() : nullptr, q_in, w.q_norm.f32(), N * H, D, c.rms_norm_eps);
    rmsnorm_forward(a.k.data(), saved ? a.rstd_k.data() : nullptr, k_in, w.k_norm.f32(), N * Hkv, D, c.rms_norm_eps);
  }
  rope_forward(a.q.data(), rows.cos.data(), rows.sin.data(), N, H, D);
  rope_forward(a.k.data(), rows.cos.data(), rows.sin.data(), N, Hkv, D);
  for (const BlockSequence& sq : rows.seqs) {
    const int t0 = sq.row0, T = sq.rows;
    const float* k_rows = a.k.data() + size_t(t0) * KD;
    const float* v_rows = a.v.data() + size_t(t0) * KD;
    const float *k, *v;
    int S;
    if (sq.cache) {  // append to the cache, attend over all of it
      KVCache& kv = *sq.cache;
      std::memcpy(kv.k[l].f32() + size_t(sq.pos0) * KD, k_rows, sizeof(float) * T * KD);
      std::memcpy(kv.v[l].f32() + size_t(sq.pos0) * KD, v_rows, sizeof(float) * T * KD);
      k = kv.k[l].f32(), v = kv.v[l].f32(), S = sq.pos0 + T;
    } else {
      S = sequence_kv(bc, sq, l, k_rows, v_rows, KD, s, &k, &v) + T;
    }
    float* probs = at_least(s.probs, size_t(H) * T * S);
    attention_forward(a.att.data() + size_t(t0) * QD, probs, a.q.data() + size_t(t0) * QD, k, v, T, S, H, Hkv, D);
  }
  linear_forward(lin(LinearId::O), a.att.data(), a.x_mid.data(), N, ctx);
  add_forward(a.x_mid.data(), a.x_mid.data(), x_in, int64_t(N) * C);

  // MLP: x_out = x_mid + down(silu(gate(xn2)) * up(xn2)).
  rmsnorm_forward(xn, saved ? a.rstd2.data() : nullptr, a.x_mid.data(), w.ffn_norm.f32(), N, C, c.rms_norm_eps);
  linear_forward(lin(LinearId::Gate), xn, a.gate.data(), N, ctx);
  linear_forward(lin(LinearId::Up), xn, a.up.data(), N, ctx);
  // Training keeps gate and up for backward; inference writes the product over gate.
  float* act = saved ? at_least(s.act, size_t(N) * F) : a.gate.data();
  swiglu_forward(act, a.gate.data(), a.up.data(), int64_t(N) * F);
  linear_forward(lin(LinearId::Down), act, x_out, N, ctx);
  add_forward(x_out, x_out, a.x_mid.data(), int64_t(N) * C);
}

// ---- backward ----

void block_backward(const BlockContext& bc, int l, const BlockRows& rows, BlockActs& a, BlockScratch& s,
                    const float* x_in, const float* dx_out, float* dx_in) {
  const ModelConfig& c = bc.m.config;
  const LayerWeights& w = bc.m.weights.layers[l];
  LayerWeights* g = bc.grads ? &bc.grads->layers[l] : nullptr;
  const int N = rows.N, C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int QD = c.q_dim(), KD = c.kv_dim(), F = c.intermediate_size;
  LATHE_CHECK(!a.rstd1.empty(), "block_backward needs the activations of a saved forward");
  AdapterContext ctx = bc.actx;
  ctx.layer = l;
  std::vector<AdapterRows> groups;
  auto lin = [&](LinearId id) { return block_lin(bc, rows, l, id, groups); };
  float* xn = at_least(s.xn, size_t(N) * C);
  float* act = at_least(s.act, size_t(N) * F);

  // MLP: x_out = x_mid + down(silu(gate(xn2)) * up(xn2)).
  std::vector<float> dx_mid(dx_out, dx_out + size_t(N) * C);
  std::vector<float> dact(size_t(N) * F, 0.0f), dgate(size_t(N) * F, 0.0f), dup(size_t(N) * F, 0.0f);
  swiglu_forward(act, a.gate.data(), a.up.data(), int64_t(N) * F);  // recompute (see BlockScratch)
  rmsnorm_forward(xn, nullptr, a.x_mid.data(), w.ffn_norm.f32(), N, C, c.rms_norm_eps);
  linear_backward(lin(LinearId::Down), act, dx_out, dact.data(), N, ctx);
  swiglu_backward(dgate.data(), dup.data(), dact.data(), a.gate.data(), a.up.data(), int64_t(N) * F);
  std::vector<float> dxn(size_t(N) * C, 0.0f);
  linear_backward(lin(LinearId::Gate), xn, dgate.data(), dxn.data(), N, ctx);
  linear_backward(lin(LinearId::Up), xn, dup.data(), dxn.data(), N, ctx);
  rmsnorm_backward(dx_mid.data(), g ? g->ffn_norm.f32() : nullptr, dxn.data(), a.x_mid.data(), w.ffn_norm.f32(),
                   a.rstd2.data(), N, C);

  // Attention: x_mid = x_in + o(attention(rope(q), rope(k), v)).
  std::vector<float> datt(size_t(N) * QD, 0.0f), dq(size_t(N) * QD, 0.0f), dk(size_t(N) * KD, 0.0f),
      dv(size_t(N) * KD, 0.0f);
  linear_backward(lin(LinearId::O), a.att.data(), dx_mid.data(), datt.data(), N, ctx);
  for (const BlockSequence& sq : rows.seqs) {
    LATHE_CHECK(sq.cache == nullptr, "block_backward runs on training rows, not on a KV cache");
    const int t0 = sq.row0, T = sq.rows;
    const AdapterSet* as = adapters_of(bc, sq);
    const float *k, *v;
    const int P = sequence_kv(bc, sq, l, a.k.data() + size_t(t0) * KD, a.v.data() + size_t(t0) * KD, KD, s, &k, &v);
    const int S = P + T;
    float* dkb = at_least(s.kv, 4 * size_t(S) * KD) + 2 * size_t(S) * KD;
    float* dvb = dkb + size_t(S) * KD;
    std::fill(dkb, dkb + 2 * size_t(S) * KD, 0.0f);
    float* probs = at_least(s.probs, size_t(H) * T * S);
    float* dP = at_least(s.dP, size_t(H) * T * S);
    // Recompute this sequence's probabilities; the attention output (no longer needed: o_proj's
    // backward is done) is rewritten with the same values.
    attention_forward(a.att.data() + size_t(t0) * QD, probs, a.q.data() + size_t(t0) * QD, k, v, T, S, H, Hkv, D);
    attention_backward(dq.data() + size_t(t0) * QD, dkb, dvb, datt.data() + size_t(t0) * QD,
                       a.q.data() + size_t(t0) * QD, k, v, probs, T, S, H, Hkv, D, dP);
    if (P > 0 && as->prefix_dk.size() > size_t(l) && as->prefix_dk[l]) {
      float *pk = as->prefix_dk[l], *pv = as->prefix_dv[l];
      for (size_t i = 0; i < size_t(P) * KD; i++) pk[i] += dkb[i], pv[i] += dvb[i];
    }
    std::memcpy(dk.data() + size_t(t0) * KD, dkb + size_t(P) * KD, sizeof(float) * T * KD);
    std::memcpy(dv.data() + size_t(t0) * KD, dvb + size_t(P) * KD, sizeof(float) * T * KD);
  }
  rope_backward(dq.data(), rows.cos.data(), rows.sin.data(), N, H, D);
  rope_backward(dk.data(), rows.cos.data(), rows.sin.data(), N, Hkv, D);
  if (c.qk_norm) {
    std::vector<float> dq_pre(dq.size(), 0.0f), dk_pre(dk.size(), 0.0f);
    rmsnorm_backward(dq_pre.data(), g ? g->q_norm.f32() : nullptr, dq.data(), a.q_pre.data(), w.q_norm.f32(),
                     a.rstd_q.data(), N * H, D);
    rmsnorm_backward(dk_pre.data(), g ? g->k_norm.f32() : nullptr, dk.data(), a.k_pre.data(), w.k_norm.f32(),
                     a.rstd_k.data(), N * Hkv, D);
    dq.swap(dq_pre);
    dk.swap(dk_pre);
  }
  std::fill(dxn.begin(), dxn.end(), 0.0f);
  rmsnorm_forward(xn, nullptr, x_in, w.attn_norm.f32(), N, C, c.rms_norm_eps);  // recompute xn1
  linear_backward(lin(LinearId::Q), xn, dq.data(), dxn.data(), N, ctx);
  linear_backward(lin(LinearId::K), xn, dk.data(), dxn.data(), N, ctx);
  linear_backward(lin(LinearId::V), xn, dv.data(), dxn.data(), N, ctx);
  std::memcpy(dx_in, dx_mid.data(), sizeof(float) * N * C);
  rmsnorm_backward(dx_in, g ? g->attn_norm.f32() : nullptr, dxn.data(), x_in, w.attn_norm.f32(), a.rstd1.data(), N,
                   C);
}

}  // namespace lathe
