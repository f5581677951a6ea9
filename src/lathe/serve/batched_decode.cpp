#include "lathe/serve/batched_decode.h"

#include <cstring>

#include "lathe/core/error.h"
#include "lathe/kernels/cpu/cpu.h"

namespace lathe::serve {

BatchedDecoder::BatchedDecoder(const Model& m, int max_batch) : m_(m), max_batch_(max_batch) {
  const ModelConfig& c = m.config;
  inv_freq_ = rope_inv_freq(c);
  size_t B = size_t(max_batch);
  x_.resize(B * c.hidden_size);
  xn_.resize(B * c.hidden_size);
  proj_.resize(B * c.hidden_size);
  q_.resize(B * c.q_dim());
  att_.resize(B * c.q_dim());
  k_.resize(B * c.kv_dim());
  v_.resize(B * c.kv_dim());
  gate_.resize(B * c.intermediate_size);
  up_.resize(B * c.intermediate_size);
  cos_.resize(B * c.head_dim / 2);
  sin_.resize(B * c.head_dim / 2);
}

void BatchedDecoder::linear(int l, LinearId id, const float* x, float* y, int n, const AdapterSet* const* adapters) {
  LinearRef base = block_linear(m_, l, id);  // no adapter: the delta is added per row below
  AdapterContext ctx;
  ctx.layer = l;
  linear_forward(base, x, y, n, ctx);
  const int in = int(base.w->dim(1)), out = int(base.w->dim(0));
  for (int i = 0; i < n; i++)
    if (LinearAdapter* a = adapters[i] ? adapters[i]->linear(l, id) : nullptr)
      a->forward(x + size_t(i) * in, y + size_t(i) * out, 1, ctx);
}

void BatchedDecoder::step(const int32_t* ids, KVCache* const* caches, const AdapterSet* const* adapters, int n,
                          float* logits) {
  const ModelConfig& c = m_.config;
  const int C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int KV = c.kv_dim(), Q = c.q_dim(), F = c.intermediate_size;
  LATHE_CHECK(n > 0 && n <= max_batch_, "batch of {} rows, workspace holds {}", n, max_batch_);
  for (int i = 0; i < n; i++) {
    if (caches[i]->len + 1 > caches[i]->capacity)
      fail("model", "sequence of {} tokens exceeds the KV cache capacity of {}", caches[i]->len + 1, caches[i]->capacity);
    if (ids[i] < 0 || ids[i] >= c.vocab_size) fail("model", "token id {} is outside the vocabulary", ids[i]);
    rope_fill(inv_freq_, caches[i]->len, 1, cos_.data() + size_t(i) * D / 2, sin_.data() + size_t(i) * D / 2);
  }
  embedding_forward(x_.data(), ids, m_.weights.embed.f32(), n, C);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const LayerWeights& w = m_.weights.layers[l];
    // Attention: projections batched; RoPE row-wise at each row's position; attention per sequence.
    rmsnorm_forward(xn_.data(), nullptr, x_.data(), w.attn_norm.f32(), n, C, c.rms_norm_eps);
    linear(l, LinearId::Q, xn_.data(), q_.data(), n, adapters);
    linear(l, LinearId::K, xn_.data(), k_.data(), n, adapters);
    linear(l, LinearId::V, xn_.data(), v_.data(), n, adapters);
    if (c.qk_norm) {
      rmsnorm_forward(q_.data(), nullptr, q_.data(), w.q_norm.f32(), n * H, D, c.rms_norm_eps);
      rmsnorm_forward(k_.data(), nullptr, k_.data(), w.k_norm.f32(), n * Hkv, D, c.rms_norm_eps);
    }
    rope_forward(q_.data(), cos_.data(), sin_.data(), n, H, D);
    rope_forward(k_.data(), cos_.data(), sin_.data(), n, Hkv, D);
    for (int i = 0; i < n; i++) {
      KVCache& kv = *caches[i];
      const int pos = kv.len, S = pos + 1;
      std::memcpy(kv.k[l].f32() + size_t(pos) * KV, k_.data() + size_t(i) * KV, sizeof(float) * KV);
      std::memcpy(kv.v[l].f32() + size_t(pos) * KV, v_.data() + size_t(i) * KV, sizeof(float) * KV);
      if (scores_.size() < size_t(H) * S) scores_.resize(size_t(H) * S);
      attention_forward(att_.data() + size_t(i) * Q, nullptr, q_.data() + size_t(i) * Q, kv.k[l].f32(), kv.v[l].f32(), 1,
                        S, H, Hkv, D, scores_.data());
    }
    linear(l, LinearId::O, att_.data(), proj_.data(), n, adapters);
    add_forward(x_.data(), x_.data(), proj_.data(), int64_t(n) * C);
    // MLP, batched.
    rmsnorm_forward(xn_.data(), nullptr, x_.data(), w.ffn_norm.f32(), n, C, c.rms_norm_eps);
    linear(l, LinearId::Gate, xn_.data(), gate_.data(), n, adapters);
    linear(l, LinearId::Up, xn_.data(), up_.data(), n, adapters);
    swiglu_forward(gate_.data(), gate_.data(), up_.data(), int64_t(n) * F);
    linear(l, LinearId::Down, gate_.data(), proj_.data(), n, adapters);
    add_forward(x_.data(), x_.data(), proj_.data(), int64_t(n) * C);
  }
  for (int i = 0; i < n; i++) caches[i]->len++;
  rmsnorm_forward(xn_.data(), nullptr, x_.data(), m_.weights.final_norm.f32(), n, C, c.rms_norm_eps);
  matmul_forward(logits, xn_.data(), m_.weights.lm_head.f32(), nullptr, n, C, c.vocab_size);
}

}  // namespace lathe::serve
