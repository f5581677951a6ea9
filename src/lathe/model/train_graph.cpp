#include "lathe/model/train_graph.h"

#include <algorithm>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/ignore_index.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/forward.h"

namespace lathe {

// ---- PackedBatch ----

void PackedBatch::add(const std::vector<int32_t>& input_ids, const std::vector<int32_t>& labels) {
  LATHE_CHECK(input_ids.size() == labels.size(), "ids/labels length mismatch");
  seg_start.push_back(int(ids.size()));
  seg_len.push_back(int(input_ids.size()));
  for (size_t t = 0; t < input_ids.size(); t++) {
    ids.push_back(input_ids[t]);
    targets.push_back(t + 1 < labels.size() ? labels[t + 1] : kIgnoreIndex);
  }
}

int PackedBatch::max_segment() const {
  int m = 0;
  for (int s : seg_len) m = std::max(m, s);
  return m;
}

int64_t PackedBatch::num_targets() const {
  int64_t n = 0;
  for (int32_t t : targets) n += t >= 0;
  return n;
}

// ---- saved activations of one block (letters as in kernels/ref/ref.h) ----

struct TrainGraph::Acts {
  // Normalised inputs (xn1, xn2), the SwiGLU output and the attention probabilities are not kept:
  // backward recomputes them (bitwise the same values, from the same kernels) into per-graph
  // scratch, which takes them out of the per-layer footprint (probs alone were H·T² per sequence).
  std::vector<float> rstd1;                // [N]
  std::vector<float> q_pre, k_pre;         // qk_norm only: [N,H*D], [N,Hkv*D] before the norm
  std::vector<float> rstd_q, rstd_k;       // qk_norm only: [N*H], [N*Hkv]
  std::vector<float> q, k, v;              // [N,H*D], [N,Hkv*D] x2 (q, k after RoPE)
  std::vector<float> att;                  // [N,H*D]
  std::vector<float> x_mid, rstd2;         // [N,C], [N]
  std::vector<float> gate, up;             // [N,F] x2
  void resize(const ModelConfig& c, int N) {
    const size_t C = c.hidden_size, F = c.intermediate_size, QD = c.q_dim(), KD = c.kv_dim();
    rstd1.resize(N), q.resize(N * QD), k.resize(N * KD), v.resize(N * KD);
    if (c.qk_norm) {
      q_pre.resize(N * QD), k_pre.resize(N * KD);
      rstd_q.resize(size_t(N) * c.num_attention_heads), rstd_k.resize(size_t(N) * c.num_key_value_heads);
    }
    att.resize(N * QD), x_mid.resize(N * C), rstd2.resize(N);
    gate.resize(N * F), up.resize(N * F);
  }
};

TrainGraph::TrainGraph(const Model& m, const AdapterSet* adapters, ModelWeights* grads, bool checkpointing)
    : m_(m), adapters_(adapters), grads_(grads), checkpointing_(checkpointing) {
  inv_freq_ = rope_inv_freq(m.config);
  acts_.resize(checkpointing ? 1 : m.config.num_hidden_layers);
}

TrainGraph::~TrainGraph() = default;

size_t TrainGraph::activation_bytes(const ModelConfig& c, int N, int T, int P, bool checkpointing) {
  const size_t C = c.hidden_size, F = c.intermediate_size, QD = c.q_dim(), KD = c.kv_dim();
  size_t per_token = 2 + 2 * C + 2 * QD + 2 * KD + 2 * F;  // one block's saved rows
  if (c.qk_norm) per_token += QD + KD + c.num_attention_heads + c.num_key_value_heads;
  size_t block = per_token * N;
  size_t blocks = checkpointing ? 1 : size_t(c.num_hidden_layers);
  size_t inputs = size_t(c.num_hidden_layers + 1) * N * C;
  // residual grads, recomputed xn / act / probs, dP, K/V buffers, logits chunk, backward temporaries
  size_t scratch = 3 * N * C + N * F + 2 * size_t(c.num_attention_heads) * T * (P + T) +
                   2 * size_t(P + T) * KD * 2 + size_t(256) * c.vocab_size + 3 * N * F + N * (QD + 2 * KD);
  return sizeof(float) * (block * blocks + inputs + scratch + size_t(N) * c.head_dim);
}

LinearRef TrainGraph::lin(int l, LinearId id) const {
  LinearRef r = block_linear(m_, l, id, grads_ ? &grads_->layers[l] : nullptr);
  r.adapter = adapters_ ? adapters_->linear(l, id) : nullptr;
  return r;
}

void TrainGraph::prepare(const PackedBatch& b) {
  const ModelConfig& c = m_.config;
  batch_ = &b;
  N_ = b.num_tokens();
  for (int32_t id : b.ids)
    if (id < 0 || id >= c.vocab_size) fail("train", "token id {} is outside the vocabulary [0, {})", id, c.vocab_size);
  const int P = adapters_ ? adapters_->prefix_len : 0;
  const size_t C = c.hidden_size;
  x_in_.resize(c.num_hidden_layers + 1);
  for (auto& x : x_in_) x.resize(size_t(N_) * C);
  for (auto& a : acts_) a.resize(c, N_);
  // RoPE tables at each token's position: P + index within its sequence.
  const int half = c.head_dim / 2;
  cos_.resize(size_t(N_) * half);
  sin_.resize(size_t(N_) * half);
  for (size_t s = 0; s < b.seg_start.size(); s++)
    rope_fill(inv_freq_, P, b.seg_len[s], cos_.data() + size_t(b.seg_start[s]) * half,
              sin_.data() + size_t(b.seg_start[s]) * half);
  const int T = b.max_segment();
  dx_a_.resize(size_t(N_) * C);
  dx_b_.resize(size_t(N_) * C);
  scratch_.resize(size_t(c.num_attention_heads) * T * (P + T) + 4 * size_t(P + T) * c.kv_dim());
  xn_.resize(size_t(N_) * C);
  act_.resize(size_t(N_) * c.intermediate_size);
  probs_.resize(size_t(c.num_attention_heads) * T * (P + T));
}

void TrainGraph::block_forward(int l, Acts& a, const float* x_in, float* x_out, const AdapterContext& ctx0) {
  const ModelConfig& c = m_.config;
  const LayerWeights& w = m_.weights.layers[l];
  const int N = N_, C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int QD = c.q_dim(), KD = c.kv_dim();
  const int P = adapters_ ? adapters_->prefix_len : 0;
  AdapterContext ctx = ctx0;
  ctx.layer = l;

  rmsnorm_forward(xn_.data(), a.rstd1.data(), x_in, w.attn_norm.f32(), N, C, c.rms_norm_eps);
  linear_forward(lin(l, LinearId::Q), xn_.data(), a.q.data(), N, ctx);
  linear_forward(lin(l, LinearId::K), xn_.data(), a.k.data(), N, ctx);
  linear_forward(lin(l, LinearId::V), xn_.data(), a.v.data(), N, ctx);
  if (c.qk_norm) {
    a.q_pre = a.q;
    a.k_pre = a.k;
    rmsnorm_forward(a.q.data(), a.rstd_q.data(), a.q_pre.data(), w.q_norm.f32(), N * H, D, c.rms_norm_eps);
    rmsnorm_forward(a.k.data(), a.rstd_k.data(), a.k_pre.data(), w.k_norm.f32(), N * Hkv, D, c.rms_norm_eps);
  }
  rope_forward(a.q.data(), cos_.data(), sin_.data(), N, H, D);
  rope_forward(a.k.data(), cos_.data(), sin_.data(), N, Hkv, D);

  // Attention per sequence; keys/values = [prefix (P rows); the sequence's rows].
  for (size_t s = 0; s < batch_->seg_start.size(); s++) {
    const int t0 = batch_->seg_start[s], T = batch_->seg_len[s], S = P + T;
    const float *kp = a.k.data() + size_t(t0) * KD, *vp = a.v.data() + size_t(t0) * KD;
    if (P > 0) {
      float* kb = scratch_.data();
      float* vb = kb + size_t(S) * KD;
      std::memcpy(kb, adapters_->prefix_k[l], sizeof(float) * P * KD);
      std::memcpy(kb + size_t(P) * KD, kp, sizeof(float) * T * KD);
      std::memcpy(vb, adapters_->prefix_v[l], sizeof(float) * P * KD);
      std::memcpy(vb + size_t(P) * KD, vp, sizeof(float) * T * KD);
      kp = kb, vp = vb;
    }
    attention_forward(a.att.data() + size_t(t0) * QD, probs_.data(), a.q.data() + size_t(t0) * QD, kp, vp, T, S, H,
                      Hkv, D);
  }
  linear_forward(lin(l, LinearId::O), a.att.data(), a.x_mid.data(), N, ctx);
  add_forward(a.x_mid.data(), a.x_mid.data(), x_in, int64_t(N) * C);

  const int F = c.intermediate_size;
  rmsnorm_forward(xn_.data(), a.rstd2.data(), a.x_mid.data(), w.ffn_norm.f32(), N, C, c.rms_norm_eps);
  linear_forward(lin(l, LinearId::Gate), xn_.data(), a.gate.data(), N, ctx);
  linear_forward(lin(l, LinearId::Up), xn_.data(), a.up.data(), N, ctx);
  swiglu_forward(act_.data(), a.gate.data(), a.up.data(), int64_t(N) * F);
  linear_forward(lin(l, LinearId::Down), act_.data(), x_out, N, ctx);
  add_forward(x_out, x_out, a.x_mid.data(), int64_t(N) * C);
}

void TrainGraph::block_backward(int l, Acts& a, const float* dx_out, float* dx_in, const AdapterContext& ctx0) {
  const ModelConfig& c = m_.config;
  const LayerWeights& w = m_.weights.layers[l];
  LayerWeights* g = grads_ ? &grads_->layers[l] : nullptr;
  const int N = N_, C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int QD = c.q_dim(), KD = c.kv_dim(), F = c.intermediate_size;
  const int P = adapters_ ? adapters_->prefix_len : 0;
  AdapterContext ctx = ctx0;
  ctx.layer = l;
  const float* x_in = x_in_[l].data();

  // MLP: x_out = x_mid + down(silu(gate(xn2)) * up(xn2)).
  std::vector<float> dx_mid(dx_out, dx_out + size_t(N) * C);
  std::vector<float> dact(size_t(N) * F, 0.0f), dgate(size_t(N) * F, 0.0f), dup(size_t(N) * F, 0.0f);
  swiglu_forward(act_.data(), a.gate.data(), a.up.data(), int64_t(N) * F);  // recompute (see Acts)
  rmsnorm_forward(xn_.data(), nullptr, a.x_mid.data(), w.ffn_norm.f32(), N, C, c.rms_norm_eps);
  linear_backward(lin(l, LinearId::Down), act_.data(), dx_out, dact.data(), N, ctx);
  swiglu_backward(dgate.data(), dup.data(), dact.data(), a.gate.data(), a.up.data(), int64_t(N) * F);
  std::vector<float> dxn(size_t(N) * C, 0.0f);
  linear_backward(lin(l, LinearId::Gate), xn_.data(), dgate.data(), dxn.data(), N, ctx);
  linear_backward(lin(l, LinearId::Up), xn_.data(), dup.data(), dxn.data(), N, ctx);
  rmsnorm_backward(dx_mid.data(), g ? g->ffn_norm.f32() : nullptr, dxn.data(), a.x_mid.data(), w.ffn_norm.f32(),
                   a.rstd2.data(), N, C);

  // Attention: x_mid = x_in + o(attention(rope(q), rope(k), v)).
  std::vector<float> datt(size_t(N) * QD, 0.0f), dq(size_t(N) * QD, 0.0f), dk(size_t(N) * KD, 0.0f),
      dv(size_t(N) * KD, 0.0f);
  linear_backward(lin(l, LinearId::O), a.att.data(), dx_mid.data(), datt.data(), N, ctx);
  for (size_t s = 0; s < batch_->seg_start.size(); s++) {
    const int t0 = batch_->seg_start[s], T = batch_->seg_len[s], S = P + T;
    float* dP = scratch_.data();
    float* kb = dP + size_t(H) * T * S;
    float *vb = kb + size_t(S) * KD, *dkb = vb + size_t(S) * KD, *dvb = dkb + size_t(S) * KD;
    if (P > 0) {
      std::memcpy(kb, adapters_->prefix_k[l], sizeof(float) * P * KD);
      std::memcpy(vb, adapters_->prefix_v[l], sizeof(float) * P * KD);
    }
    std::memcpy(kb + size_t(P) * KD, a.k.data() + size_t(t0) * KD, sizeof(float) * T * KD);
    std::memcpy(vb + size_t(P) * KD, a.v.data() + size_t(t0) * KD, sizeof(float) * T * KD);
    std::fill(dkb, dkb + 2 * size_t(S) * KD, 0.0f);
    // Recompute this sequence's probabilities; the attention output (no longer needed: o_proj's
    // backward is done) is rewritten with the same values.
    attention_forward(a.att.data() + size_t(t0) * QD, probs_.data(), a.q.data() + size_t(t0) * QD, kb, vb, T, S, H,
                      Hkv, D);
    attention_backward(dq.data() + size_t(t0) * QD, dkb, dvb, datt.data() + size_t(t0) * QD,
                       a.q.data() + size_t(t0) * QD, kb, vb, probs_.data(), T, S, H, Hkv, D, dP);
    if (P > 0 && adapters_->prefix_dk.size() > size_t(l) && adapters_->prefix_dk[l]) {
      float *pk = adapters_->prefix_dk[l], *pv = adapters_->prefix_dv[l];
      for (size_t i = 0; i < size_t(P) * KD; i++) pk[i] += dkb[i], pv[i] += dvb[i];
    }
    std::memcpy(dk.data() + size_t(t0) * KD, dkb + size_t(P) * KD, sizeof(float) * T * KD);
    std::memcpy(dv.data() + size_t(t0) * KD, dvb + size_t(P) * KD, sizeof(float) * T * KD);
  }
  rope_backward(dq.data(), cos_.data(), sin_.data(), N, H, D);
  rope_backward(dk.data(), cos_.data(), sin_.data(), N, Hkv, D);
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
  rmsnorm_forward(xn_.data(), nullptr, x_in, w.attn_norm.f32(), N, C, c.rms_norm_eps);  // recompute xn1
  linear_backward(lin(l, LinearId::Q), xn_.data(), dq.data(), dxn.data(), N, ctx);
  linear_backward(lin(l, LinearId::K), xn_.data(), dk.data(), dxn.data(), N, ctx);
  linear_backward(lin(l, LinearId::V), xn_.data(), dv.data(), dxn.data(), N, ctx);
  std::memcpy(dx_in, dx_mid.data(), sizeof(float) * N * C);
  rmsnorm_backward(dx_in, g ? g->attn_norm.f32() : nullptr, dxn.data(), x_in, w.attn_norm.f32(), a.rstd1.data(), N,
                   C);
}

// Final norm + lm_head + cross-entropy, in row chunks so logits never take more than
// kRows x V floats. With `backward`, writes d(loss·scale)/dx_last into dx_last.
double TrainGraph::head_forward_backward(const float* x_last, float* dx_last, float scale, bool backward,
                                         int64_t* count) {
  const ModelConfig& c = m_.config;
  const int N = N_, C = c.hidden_size, V = c.vocab_size;
  std::vector<float> hn(size_t(N) * C), rstd(N), dhn;
  rmsnorm_forward(hn.data(), rstd.data(), x_last, m_.weights.final_norm.f32(), N, C, c.rms_norm_eps);
  if (backward) dhn.assign(size_t(N) * C, 0.0f);
  constexpr int kRows = 256;
  std::vector<float> logits(size_t(std::min(kRows, N)) * V);
  double total = 0;
  *count = 0;
  Tensor* dlm = grads_ ? &grads_->lm_head : nullptr;
  for (int r0 = 0; r0 < N; r0 += kRows) {
    const int rows = std::min(kRows, N - r0);
    const int32_t* tgt = batch_->targets.data() + r0;
    bool any = false;
    for (int i = 0; i < rows; i++) any |= tgt[i] >= 0;
    if (!any) continue;  // rows without loss contribute neither loss nor gradient
    matmul_forward(logits.data(), hn.data() + size_t(r0) * C, m_.weights.lm_head.f32(), nullptr, rows, C, V);
    int64_t cnt = 0;
    if (backward) {
      total += cross_entropy_backward(logits.data(), tgt, rows, V, scale, &cnt);
      matmul_backward(dhn.data() + size_t(r0) * C, dlm ? dlm->f32() : nullptr, nullptr, logits.data(),
                      hn.data() + size_t(r0) * C, m_.weights.lm_head.f32(), rows, C, V);
    } else {
      total += cross_entropy_sum(logits.data(), tgt, rows, V, &cnt);
    }
    *count += cnt;
  }
  if (backward) {
    std::fill(dx_last, dx_last + size_t(N) * C, 0.0f);
    rmsnorm_backward(dx_last, grads_ ? grads_->final_norm.f32() : nullptr, dhn.data(), x_last,
                     m_.weights.final_norm.f32(), rstd.data(), N, C);
  }
  return total;
}

double TrainGraph::forward_backward(const PackedBatch& b, float scale, int64_t* count, const AdapterContext& ctx) {
  const ModelConfig& c = m_.config;
  const int L = c.num_hidden_layers;
  prepare(b);
  embedding_forward(x_in_[0].data(), b.ids.data(), m_.weights.embed.f32(), N_, c.hidden_size);
  for (int l = 0; l < L; l++) block_forward(l, acts_[checkpointing_ ? 0 : l], x_in_[l].data(), x_in_[l + 1].data(), ctx);
  double loss = head_forward_backward(x_in_[L].data(), dx_a_.data(), scale, true, count);
  for (int l = L - 1; l >= 0; l--) {
    Acts& a = acts_[checkpointing_ ? 0 : l];
    if (checkpointing_) {  // recompute this block's activations from its saved input
      std::vector<float> out(size_t(N_) * c.hidden_size);
      block_forward(l, a, x_in_[l].data(), out.data(), ctx);
    }
    block_backward(l, a, dx_a_.data(), dx_b_.data(), ctx);
    dx_a_.swap(dx_b_);
  }
  if (grads_) embedding_backward(grads_->embed.f32(), dx_a_.data(), b.ids.data(), N_, c.hidden_size);
  return loss;
}

double TrainGraph::forward_loss(const PackedBatch& b, int64_t* count) {
  const ModelConfig& c = m_.config;
  const int L = c.num_hidden_layers;
  prepare(b);
  AdapterContext ctx;  // eval: no dropout
  embedding_forward(x_in_[0].data(), b.ids.data(), m_.weights.embed.f32(), N_, c.hidden_size);
  for (int l = 0; l < L; l++) block_forward(l, acts_[checkpointing_ ? 0 : l], x_in_[l].data(), x_in_[l + 1].data(), ctx);
  return head_forward_backward(x_in_[L].data(), nullptr, 0.0f, false, count);
}

}  // namespace lathe
