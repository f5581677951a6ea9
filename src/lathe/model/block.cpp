#include "lathe/model/block.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/core/dtype.h"
#include "lathe/core/error.h"
#include "lathe/core/phase_prof.h"
#include "lathe/kernels/cpu/qblock.h"  // dequantize_row: rows of a quantized embedding table
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/forward.h"

namespace lathe {

// ---- rows ----

void BlockRows::set_rope(const RopeFreqs& f) {
  const size_t half = f.inv_freq.size();
  cos.resize(size_t(N) * half);
  sin.resize(size_t(N) * half);
  for (const BlockSequence& s : seqs) {
    // Longrope's factors switch on the sequence's length; a cached sequence decides once, by its
    // cache's capacity (as llama.cpp does by its context), so keys already cached keep their angles.
    const int length = s.cache ? s.cache->capacity : s.pos0 + s.rows;
    const bool use_long = !f.inv_freq_long.empty() && length > f.long_from;
    rope_fill(use_long ? f.inv_freq_long : f.inv_freq, s.pos0, s.rows, cos.data() + size_t(s.row0) * half,
              sin.data() + size_t(s.row0) * half, f.mscale);
  }
  if (f.inv_freq_local.empty()) return;
  cos_local.resize(size_t(N) * half);
  sin_local.resize(size_t(N) * half);
  for (const BlockSequence& s : seqs)
    rope_fill(f.inv_freq_local, s.pos0, s.rows, cos_local.data() + size_t(s.row0) * half,
              sin_local.data() + size_t(s.row0) * half);
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
  if (c.post_attn_norm) o_out.resize(N * C);
  if (c.post_ffn_norm) down_out.resize(N * C);
  if (saved) {
    rstd1.resize(N), rstd2.resize(N);
    if (c.post_attn_norm) rstd_pa.resize(N);
    if (c.post_ffn_norm) rstd_pf.resize(N);
    if (c.qk_norm) {
      q_pre.resize(N * QD), k_pre.resize(N * KD);
      rstd_q.resize(size_t(N) * c.num_attention_heads), rstd_k.resize(size_t(N) * c.num_key_value_heads);
    }
  }
}

void BlockActs::keep_recomputed(const ModelConfig& c, int N, size_t probs_floats) {
  if (probs_floats == 0) {  // release, not just clear: the point is the memory
    for (auto* v : {&xn_attn, &xn_ffn, &act, &probs}) std::vector<float>().swap(*v);
    return;
  }
  const size_t C = c.hidden_size, F = c.intermediate_size;
  xn_attn.resize(N * C), xn_ffn.resize(N * C), act.resize(N * F), probs.resize(probs_floats);
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

// ---- family pieces shared with the drivers ----

const float* norm_weight(const ModelConfig& c, const Tensor& w, std::vector<float>& buf) {
  if (!c.norm_plus_one) return w.f32();
  const int64_t n = w.numel();
  buf.resize(size_t(n));
  for (int64_t i = 0; i < n; i++) buf[size_t(i)] = 1.0f + w.f32()[i];
  return buf.data();
}

// sqrt(C) as the checkpoint's dtype holds it (HF builds the normalizer in the embedding dtype).
static float embed_scale(const ModelConfig& c) {
  const float s = std::sqrt(float(c.hidden_size));
  if (c.torch_dtype == "bfloat16") return bf16_to_f32(f32_to_bf16(s));
  if (c.torch_dtype == "float16") return f16_to_f32(f32_to_f16(s));
  return s;
}

float inputs_embeds_scale(const ModelConfig& c) {
  return c.embed_scale && c.arch != Arch::Gemma3 ? embed_scale(c) : 1.0f;
}

float embedding_module_scale(const ModelConfig& c) {
  return c.embed_scale && c.arch == Arch::Gemma3 ? embed_scale(c) : 1.0f;
}

void embed_rows(const Model& m, const int32_t* ids, int N, float* x) {
  const ModelConfig& c = m.config;
  const Tensor& table = m.weights.embed;
  if (is_qblock_dtype(table.dtype)) {
    // A table in a kernel format (quantized weights, docs/quant.md): dequantize the N rows looked
    // up. The ids were checked against the vocabulary by the caller, as for the f32 lookup.
    const QType qt = weight_qtype(table.dtype);
    const size_t row = qblock_row_bytes(qt, c.hidden_size);
    const auto* base = static_cast<const uint8_t*>(table.data);
    for (int t = 0; t < N; t++)
      dequantize_row(qt, base + size_t(ids[t]) * row, x + size_t(t) * c.hidden_size, c.hidden_size);
  } else {
    embedding_forward(x, ids, table.f32(), N, c.hidden_size);
  }
  if (!c.embed_scale) return;
  const float s = embed_scale(c);
  for (size_t i = 0; i < size_t(N) * c.hidden_size; i++) x[i] *= s;
}

void embed_rows_backward(const Model& m, float* dtable, const float* dx, const int32_t* ids, int N) {
  const ModelConfig& c = m.config;
  if (!c.embed_scale) return embedding_backward(dtable, dx, ids, N, c.hidden_size);
  std::vector<float> scaled(dx, dx + size_t(N) * c.hidden_size);
  const float s = embed_scale(c);
  for (float& v : scaled) v *= s;
  embedding_backward(dtable, scaled.data(), ids, N, c.hidden_size);
}

void logits_softcap(const ModelConfig& c, float* logits, int64_t n) {
  if (c.final_logit_softcapping > 0.0f) softcap_forward(logits, n * c.vocab_size, c.final_logit_softcapping);
}

static AttentionOpts attention_opts(const ModelConfig& c, int l) {
  AttentionOpts o;
  o.scale = c.attention_scale();
  o.softcap = c.attn_logit_softcapping;
  o.window = c.layer_is_sliding(l) ? c.sliding_window : 0;
  return o;
}

// The RoPE table layer l uses (null: the layer has no RoPE).
static const std::vector<float>* rope_cos(const ModelConfig& c, const BlockRows& rows, int l, bool sine) {
  if (!c.layer_uses_rope(l)) return nullptr;
  if (c.layer_uses_local_rope(l)) return sine ? &rows.sin_local : &rows.cos_local;
  return sine ? &rows.sin : &rows.cos;
}

static void rope_layer(const ModelConfig& c, const BlockRows& rows, int l, float* q, float* k, bool backward) {
  const std::vector<float>* cs = rope_cos(c, rows, l, false);
  if (!cs) return;
  prof::PhaseScope ps(prof::Phase::NormAct);
  const std::vector<float>* sn = rope_cos(c, rows, l, true);
  const int N = rows.N, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim, R = c.rotary_dim();
  auto rot = backward ? rope_backward : rope_forward;
  rot(q, cs->data(), sn->data(), N, H, D, R);
  rot(k, cs->data(), sn->data(), N, Hkv, D, R);
}

// Splits a fused projection's rows [N, a + b (+ c)] into its parts, or packs parts into it.
static void split_cols(const float* src, int N, std::initializer_list<std::pair<float*, int>> parts) {
  int W = 0;
  for (auto& p : parts) W += p.second;
  for (int n = 0; n < N; n++) {
    int off = 0;
    for (auto& [dst, w] : parts) {
      std::memcpy(dst + size_t(n) * w, src + size_t(n) * W + off, sizeof(float) * w);
      off += w;
    }
  }
}
static void pack_cols(float* dst, int N, std::initializer_list<std::pair<const float*, int>> parts) {
  int W = 0;
  for (auto& p : parts) W += p.second;
  for (int n = 0; n < N; n++) {
    int off = 0;
    for (auto& [src, w] : parts) {
      std::memcpy(dst + size_t(n) * W + off, src + size_t(n) * w, sizeof(float) * w);
      off += w;
    }
  }
}

// ---- forward ----

void block_forward(const BlockContext& bc, int l, const BlockRows& rows, BlockActs& a, BlockScratch& s,
                   const float* x_in, float* x_out) {
  const ModelConfig& c = bc.m.config;
  const LayerWeights& w = bc.m.weights.layers[l];
  const int N = rows.N, C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int QD = c.q_dim(), KD = c.kv_dim(), F = c.intermediate_size;
  const bool saved = !a.rstd1.empty();
  const bool keep = saved && a.kept();  // backward reads the kept values instead of recomputing them
  AdapterContext ctx = bc.actx;
  ctx.layer = l;
  std::vector<AdapterRows> groups;
  auto lin = [&](LinearId id) { return block_lin(bc, rows, l, id, groups); };
  auto normw = [&](const Tensor& t) { return norm_weight(c, t, s.norm_w); };
  float* xn = keep ? a.xn_attn.data() : at_least(s.xn, size_t(N) * C);

  // Attention: x_mid = x_in + [post-norm](o(attention(rope(q), rope(k), v))) of [pre-norm](x_in).
  const float* ain = x_in;
  if (c.pre_attn_norm) {
    prof::PhaseScope ps(prof::Phase::NormAct);
    rmsnorm_forward(xn, saved ? a.rstd1.data() : nullptr, x_in, normw(w.attn_norm), N, C, c.rms_norm_eps);
    ain = xn;
  }
  if (c.fused_qkv) {  // Phi-3: one projection, rows [q; k; v]
    float* qkv = at_least(s.fused, size_t(N) * (QD + 2 * KD));
    linear_forward(lin(LinearId::QKV), ain, qkv, N, ctx);
    prof::timed(prof::Phase::NormAct, [&] { split_cols(qkv, N, {{a.q.data(), QD}, {a.k.data(), KD}, {a.v.data(), KD}}); });
  } else {
    std::vector<AdapterRows> gk, gv;  // each LinearRef's own row groups while all three are in use
    linear_forward_many({{lin(LinearId::Q), a.q.data()},
                         {block_lin(bc, rows, l, LinearId::K, gk), a.k.data()},
                         {block_lin(bc, rows, l, LinearId::V, gv), a.v.data()}},
                        ain, N, ctx);
  }
  if (c.qk_norm) {  // RMSNorm over each head's D channels, before RoPE
    prof::PhaseScope ps(prof::Phase::NormAct);
    const float* q_in = a.q.data();
    const float* k_in = a.k.data();
    if (saved) {  // backward needs the inputs of the norms
      a.q_pre = a.q, a.k_pre = a.k;
      q_in = a.q_pre.data(), k_in = a.k_pre.data();
    }
    rmsnorm_forward(a.q.data(), saved ? a.rstd_q.data() : nullptr, q_in, normw(w.q_norm), N * H, D, c.rms_norm_eps);
    rmsnorm_forward(a.k.data(), saved ? a.rstd_k.data() : nullptr, k_in, normw(w.k_norm), N * Hkv, D, c.rms_norm_eps);
  }
  rope_layer(c, rows, l, a.q.data(), a.k.data(), /*backward=*/false);
  const AttentionOpts opts = attention_opts(c, l);
  size_t probs_at = 0;  // this sequence's probabilities in a.probs (kept)
  for (const BlockSequence& sq : rows.seqs) {
    prof::PhaseScope ps(prof::Phase::AttnFwd);
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
    float* probs = keep ? a.probs.data() + probs_at : nullptr;  // null: a block of rows at a time, per thread
    probs_at += size_t(H) * T * S;
    LATHE_CHECK(!keep || probs_at <= a.probs.size(), "kept attention probabilities: {} floats for {}", a.probs.size(),
                probs_at);
    attention_forward(a.att.data() + size_t(t0) * QD, probs, a.q.data() + size_t(t0) * QD, k, v, T, S, H, Hkv, D,
                      opts);
  }
  if (c.post_attn_norm) {
    linear_forward(lin(LinearId::O), a.att.data(), a.o_out.data(), N, ctx);
    prof::PhaseScope ps(prof::Phase::NormAct);
    rmsnorm_forward(a.x_mid.data(), saved ? a.rstd_pa.data() : nullptr, a.o_out.data(), normw(w.post_attn_norm), N,
                    C, c.rms_norm_eps);
  } else {
    linear_forward(lin(LinearId::O), a.att.data(), a.x_mid.data(), N, ctx);
  }
  prof::timed(prof::Phase::NormAct, [&] { add_forward(a.x_mid.data(), a.x_mid.data(), x_in, int64_t(N) * C); });

  // MLP: x_out = x_mid + [post-norm](down(act(gate(m)) * up(m))), m = [pre-norm](x_mid).
  const float* min = a.x_mid.data();
  if (c.pre_ffn_norm) {
    prof::PhaseScope ps(prof::Phase::NormAct);
    if (keep) xn = a.xn_ffn.data();
    rmsnorm_forward(xn, saved ? a.rstd2.data() : nullptr, a.x_mid.data(), normw(w.ffn_norm), N, C, c.rms_norm_eps);
    min = xn;
  }
  if (c.fused_gate_up) {  // Phi-3: one projection, rows [gate; up]
    float* gu = at_least(s.fused, size_t(N) * 2 * F);
    linear_forward(lin(LinearId::GateUp), min, gu, N, ctx);
    prof::timed(prof::Phase::NormAct, [&] { split_cols(gu, N, {{a.gate.data(), F}, {a.up.data(), F}}); });
  } else {
    std::vector<AdapterRows> gu;
    linear_forward_many({{lin(LinearId::Gate), a.gate.data()}, {block_lin(bc, rows, l, LinearId::Up, gu), a.up.data()}},
                        min, N, ctx);
  }
  // Training keeps gate and up for backward; inference writes the product over gate.
  float* act = keep ? a.act.data() : saved ? at_least(s.act, size_t(N) * F) : a.gate.data();
  prof::timed(prof::Phase::NormAct, [&] {
    (c.hidden_act == Activation::GeluTanh ? geglu_forward : swiglu_forward)(act, a.gate.data(), a.up.data(),
                                                                            int64_t(N) * F);
  });
  if (c.post_ffn_norm) {
    linear_forward(lin(LinearId::Down), act, a.down_out.data(), N, ctx);
    prof::PhaseScope ps(prof::Phase::NormAct);
    rmsnorm_forward(x_out, saved ? a.rstd_pf.data() : nullptr, a.down_out.data(), normw(w.post_ffn_norm), N, C,
                    c.rms_norm_eps);
  } else {
    linear_forward(lin(LinearId::Down), act, x_out, N, ctx);
  }
  prof::timed(prof::Phase::NormAct, [&] { add_forward(x_out, x_out, a.x_mid.data(), int64_t(N) * C); });
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
  auto normw = [&](const Tensor& t) { return norm_weight(c, t, s.norm_w); };
  auto gnorm = [&](Tensor LayerWeights::*t) { return g ? (g->*t).f32() : nullptr; };
  const bool keep = a.kept();  // the forward kept what is otherwise recomputed here
  float* xn = keep ? nullptr : at_least(s.xn, size_t(N) * C);
  float* act = keep ? a.act.data() : at_least(s.act, size_t(N) * F);
  // dy of a projection whose output went through a post-norm: back through that norm first.
  auto through_post_norm = [&](const float* dout, const std::vector<float>& y, const std::vector<float>& rstd,
                               Tensor LayerWeights::*t) {
    prof::PhaseScope ps(prof::Phase::NormAct);
    std::vector<float> dy(size_t(N) * C, 0.0f);
    rmsnorm_backward(dy.data(), gnorm(t), dout, y.data(), normw(w.*t), rstd.data(), N, C);
    return dy;
  };

  // The gradients below live in one arena of the driver's scratch, zeroed where they accumulate.
  // Vectors allocated and freed per layer (as they were) made jemalloc hand their pages back and
  // fault them in again every layer: ~90 ms of a 1.6 s step at SmolLM2-135M, seq 512.
  const size_t nC = size_t(N) * C, nF = size_t(N) * F, nQ = size_t(N) * QD, nK = size_t(N) * KD;
  float* const dx_mid = at_least(s.grads, 2 * nC + 3 * nF + 2 * nQ + 2 * nK + (c.qk_norm ? nQ + nK : 0));
  float *const dxn = dx_mid + nC, *const dact = dxn + nC, *const dgate = dact + nF, *const dup = dgate + nF;
  float *const datt = dup + nF, *dq = datt + nQ, *dk = dq + nQ, *const dv = dk + nK;

  // MLP: x_out = x_mid + [post-norm](down(act(gate(m)) * up(m))), m = [pre-norm](x_mid).
  std::memcpy(dx_mid, dx_out, sizeof(float) * nC);
  std::vector<float> d_down;
  const float* ddown = dx_out;
  if (c.post_ffn_norm) {
    d_down = through_post_norm(dx_out, a.down_out, a.rstd_pf, &LayerWeights::post_ffn_norm);
    ddown = d_down.data();
  }
  std::fill(dact, dact + nF, 0.0f);  // dgate and dup are written by the activation's backward
  const bool gelu = c.hidden_act == Activation::GeluTanh;
  const float* min = a.x_mid.data();
  if (keep) {
    if (c.pre_ffn_norm) min = a.xn_ffn.data();
  } else {
    prof::PhaseScope ps(prof::Phase::Recompute);
    (gelu ? geglu_forward : swiglu_forward)(act, a.gate.data(), a.up.data(), int64_t(N) * F);  // see BlockScratch
    if (c.pre_ffn_norm) {
      rmsnorm_forward(xn, nullptr, a.x_mid.data(), normw(w.ffn_norm), N, C, c.rms_norm_eps);
      min = xn;
    }
  }
  linear_backward(lin(LinearId::Down), act, ddown, dact, N, ctx);
  prof::timed(prof::Phase::NormAct, [&] {
    (gelu ? geglu_backward : swiglu_backward)(dgate, dup, dact, a.gate.data(), a.up.data(),
                                              int64_t(N) * F);
  });
  std::fill(dxn, dxn + nC, 0.0f);
  if (c.fused_gate_up) {
    float* dgu = at_least(s.fused, size_t(N) * 2 * F);
    prof::timed(prof::Phase::NormAct, [&] { pack_cols(dgu, N, {{dgate, F}, {dup, F}}); });
    linear_backward(lin(LinearId::GateUp), min, dgu, dxn, N, ctx);
  } else {
    linear_backward(lin(LinearId::Gate), min, dgate, dxn, N, ctx);
    linear_backward(lin(LinearId::Up), min, dup, dxn, N, ctx);
  }
  prof::timed(prof::Phase::NormAct, [&] {
    if (c.pre_ffn_norm)
      rmsnorm_backward(dx_mid, gnorm(&LayerWeights::ffn_norm), dxn, a.x_mid.data(), normw(w.ffn_norm),
                       a.rstd2.data(), N, C);
    else
      add_forward(dx_mid, dx_mid, dxn, int64_t(N) * C);
  });

  // Attention: x_mid = x_in + [post-norm](o(attention(rope(q), rope(k), v))) of [pre-norm](x_in).
  std::fill(datt, dv + nK, 0.0f);  // datt, dq, dk, dv
  std::vector<float> d_o;
  const float* dO = dx_mid;
  if (c.post_attn_norm) {
    d_o = through_post_norm(dx_mid, a.o_out, a.rstd_pa, &LayerWeights::post_attn_norm);
    dO = d_o.data();
  }
  linear_backward(lin(LinearId::O), a.att.data(), dO, datt, N, ctx);
  const AttentionOpts opts = attention_opts(c, l);
  size_t probs_at = 0;
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
    const float* probs = keep ? a.probs.data() + probs_at : nullptr;
    probs_at += size_t(H) * T * S;
    LATHE_CHECK(!keep || probs_at <= a.probs.size(), "kept attention probabilities: {} floats for {} (backward "
                "of other rows than the forward's)", a.probs.size(), probs_at);
    // Unless kept, the backward recomputes each block of rows' probabilities where it uses them (the
    // forward's values, bitwise; the attention output itself is not recomputed).
    prof::PhaseScope ps(prof::Phase::AttnBwd);
    attention_backward(dq + size_t(t0) * QD, dkb, dvb, datt + size_t(t0) * QD,
                       a.q.data() + size_t(t0) * QD, k, v, probs, T, S, H, Hkv, D, opts);
    if (P > 0 && as->prefix_dk.size() > size_t(l) && as->prefix_dk[l]) {
      float *pk = as->prefix_dk[l], *pv = as->prefix_dv[l];
      for (size_t i = 0; i < size_t(P) * KD; i++) pk[i] += dkb[i], pv[i] += dvb[i];
    }
    std::memcpy(dk + size_t(t0) * KD, dkb + size_t(P) * KD, sizeof(float) * T * KD);
    std::memcpy(dv + size_t(t0) * KD, dvb + size_t(P) * KD, sizeof(float) * T * KD);
  }
  rope_layer(c, rows, l, dq, dk, /*backward=*/true);
  if (c.qk_norm) {
    prof::PhaseScope ps(prof::Phase::NormAct);
    float *const dq_pre = dv + nK, *const dk_pre = dq_pre + nQ;
    std::fill(dq_pre, dk_pre + nK, 0.0f);
    rmsnorm_backward(dq_pre, gnorm(&LayerWeights::q_norm), dq, a.q_pre.data(), normw(w.q_norm), a.rstd_q.data(),
                     N * H, D);
    rmsnorm_backward(dk_pre, gnorm(&LayerWeights::k_norm), dk, a.k_pre.data(), normw(w.k_norm), a.rstd_k.data(),
                     N * Hkv, D);
    dq = dq_pre, dk = dk_pre;
  }
  std::fill(dxn, dxn + nC, 0.0f);
  const float* ain = x_in;
  if (c.pre_attn_norm && keep) {
    ain = a.xn_attn.data();
  } else if (c.pre_attn_norm) {
    prof::PhaseScope ps(prof::Phase::Recompute);
    rmsnorm_forward(xn, nullptr, x_in, normw(w.attn_norm), N, C, c.rms_norm_eps);  // recompute xn1
    ain = xn;
  }
  if (c.fused_qkv) {
    float* dqkv = at_least(s.fused, size_t(N) * (QD + 2 * KD));
    prof::timed(prof::Phase::NormAct, [&] { pack_cols(dqkv, N, {{dq, QD}, {dk, KD}, {dv, KD}}); });
    linear_backward(lin(LinearId::QKV), ain, dqkv, dxn, N, ctx);
  } else {
    linear_backward(lin(LinearId::Q), ain, dq, dxn, N, ctx);
    linear_backward(lin(LinearId::K), ain, dk, dxn, N, ctx);
    linear_backward(lin(LinearId::V), ain, dv, dxn, N, ctx);
  }
  prof::PhaseScope ps(prof::Phase::NormAct);
  std::memcpy(dx_in, dx_mid, sizeof(float) * N * C);
  if (c.pre_attn_norm)
    rmsnorm_backward(dx_in, gnorm(&LayerWeights::attn_norm), dxn, x_in, normw(w.attn_norm), a.rstd1.data(), N,
                     C);
  else
    add_forward(dx_in, dx_in, dxn, int64_t(N) * C);
}

}  // namespace lathe
