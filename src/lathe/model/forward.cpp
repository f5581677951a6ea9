#include "lathe/model/forward.h"

#include <cmath>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/sys.h"
#include "lathe/kernels/cpu/cpu.h"

namespace lathe {

KVCache KVCache::create(const ModelConfig& c, int capacity) {
  // Callers bound `capacity` by the context (bounded_generation_length), but the cache is the one
  // allocation that grows with a user-chosen length, so its size is checked here too, before any
  // tensor exists: a clear error instead of std::bad_alloc or the OOM killer.
  if (capacity < 0 || capacity > kMaxContextLength + kMaxContextLength)
    fail("model", "KV cache of {} positions is outside [0, {}]", capacity, 2 * kMaxContextLength);
  const uint64_t bytes = 2ull * uint64_t(c.num_hidden_layers) * uint64_t(capacity) * uint64_t(c.kv_dim()) * sizeof(float);
  const uint64_t avail = available_memory_bytes();
  if (avail > 0 && bytes > avail)
    fail("model", "a KV cache for {} positions needs {:.1f} MiB but only {:.1f} MiB of memory is available; "
         "ask for fewer tokens", capacity, double(bytes) / 1048576.0, double(avail) / 1048576.0);
  KVCache kv;
  kv.capacity = capacity;
  for (int l = 0; l < c.num_hidden_layers; l++) {
    kv.k.push_back(Tensor::empty(DType::F32, {capacity, c.kv_dim()}));
    kv.v.push_back(Tensor::empty(DType::F32, {capacity, c.kv_dim()}));
  }
  return kv;
}

KVCache KVCache::create_for(const ModelConfig& c, int tokens, const AdapterSet* adapters) {
  const int P = adapters ? adapters->prefix_len : 0;
  KVCache kv = create(c, tokens + P);
  for (int l = 0; l < c.num_hidden_layers && P > 0; l++) {
    std::memcpy(kv.k[l].f32(), adapters->prefix_k[l], sizeof(float) * P * c.kv_dim());
    std::memcpy(kv.v[l].f32(), adapters->prefix_v[l], sizeof(float) * P * c.kv_dim());
  }
  kv.len = P;
  return kv;
}

size_t KVCache::bytes() const {
  size_t b = 0;
  for (auto& t : k) b += t.nbytes();
  for (auto& t : v) b += t.nbytes();
  return b;
}

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(half);
  // HF computes base ** (arange(0, D, 2) / D) in float32; same here.
  for (int i = 0; i < half; i++) inv[i] = 1.0f / std::pow(c.rope_theta, float(2 * i) / float(c.head_dim));
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == RopeScaling::Linear) {
    for (float& f : inv) f /= rs.factor;
  } else if (rs.type == RopeScaling::Llama3) {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, a smooth blend between.
    const float orig = float(rs.original_max_position_embeddings);
    const float low_wavelen = orig / rs.low_freq_factor, high_wavelen = orig / rs.high_freq_factor;
    for (float& f : inv) {
      float wavelen = 2.0f * float(M_PI) / f;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else if (wavelen >= high_wavelen) {
        float smooth = (orig / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0f - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  return inv;
}

void rope_fill(const std::vector<float>& inv_freq, int pos0, int T, float* cos, float* sin) {
  const int half = int(inv_freq.size());
  for (int t = 0; t < T; t++)
    for (int i = 0; i < half; i++) {
      float angle = float(pos0 + t) * inv_freq[i];
      cos[size_t(t) * half + i] = float(std::cos(double(angle)));
      sin[size_t(t) * half + i] = float(std::sin(double(angle)));
    }
}

Forward::Forward(const Model& m, int max_chunk, const AdapterSet* adapters)
    : m_(m), adapters_(adapters), max_chunk_(max_chunk) {
  const ModelConfig& c = m.config;
  inv_freq_ = rope_inv_freq(c);
  size_t T = size_t(max_chunk);
  x_.resize(T * c.hidden_size);
  xn_.resize(T * c.hidden_size);
  q_.resize(T * c.q_dim());
  att_.resize(T * c.q_dim());
  proj_.resize(T * c.hidden_size);
  gate_.resize(T * c.intermediate_size);
  up_.resize(T * c.intermediate_size);
  cos_.resize(T * c.head_dim / 2);
  sin_.resize(T * c.head_dim / 2);
}

size_t Forward::workspace_bytes() const {
  return sizeof(float) * (x_.size() + xn_.size() + q_.size() + att_.size() + proj_.size() + gate_.size() +
                          up_.size() + cos_.size() + sin_.size() + scores_.capacity());
}

LinearRef Forward::lin(int l, LinearId id) const {
  LinearRef r = block_linear(m_, l, id);
  r.adapter = adapters_ ? adapters_->linear(l, id) : nullptr;
  return r;
}

void Forward::attention_block(int l, int T, KVCache* cache) {
  const ModelConfig& c = m_.config;
  const LayerWeights& w = m_.weights.layers[l];
  const int C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int pos0 = cache->len, S = pos0 + T;
  float* kc = cache->k[l].f32() + size_t(pos0) * c.kv_dim();  // this chunk's rows in the cache
  float* vc = cache->v[l].f32() + size_t(pos0) * c.kv_dim();

  ctx_.layer = l;
  rmsnorm_forward(xn_.data(), nullptr, x_.data(), w.attn_norm.f32(), T, C, c.rms_norm_eps);
  linear_forward(lin(l, LinearId::Q), xn_.data(), q_.data(), T, ctx_);
  linear_forward(lin(l, LinearId::K), xn_.data(), kc, T, ctx_);
  linear_forward(lin(l, LinearId::V), xn_.data(), vc, T, ctx_);
  if (c.qk_norm) {  // Qwen3: RMSNorm over each head's D channels, before RoPE
    rmsnorm_forward(q_.data(), nullptr, q_.data(), w.q_norm.f32(), T * H, D, c.rms_norm_eps);
    rmsnorm_forward(kc, nullptr, kc, w.k_norm.f32(), T * Hkv, D, c.rms_norm_eps);
  }
  rope_forward(q_.data(), cos_.data(), sin_.data(), T, H, D);
  rope_forward(kc, cos_.data(), sin_.data(), T, Hkv, D);
  size_t need = size_t(H) * T * S;
  if (scores_.size() < need) scores_.resize(need);
  attention_forward(att_.data(), nullptr, q_.data(), cache->k[l].f32(), cache->v[l].f32(), T, S, H, Hkv, D,
                    scores_.data());
  linear_forward(lin(l, LinearId::O), att_.data(), proj_.data(), T, ctx_);
  add_forward(x_.data(), x_.data(), proj_.data(), int64_t(T) * C);
}

void Forward::mlp_block(int l, int T) {
  const ModelConfig& c = m_.config;
  const LayerWeights& w = m_.weights.layers[l];
  const int C = c.hidden_size, F = c.intermediate_size;
  ctx_.layer = l;
  rmsnorm_forward(xn_.data(), nullptr, x_.data(), w.ffn_norm.f32(), T, C, c.rms_norm_eps);
  linear_forward(lin(l, LinearId::Gate), xn_.data(), gate_.data(), T, ctx_);
  linear_forward(lin(l, LinearId::Up), xn_.data(), up_.data(), T, ctx_);
  swiglu_forward(gate_.data(), gate_.data(), up_.data(), int64_t(T) * F);
  linear_forward(lin(l, LinearId::Down), gate_.data(), proj_.data(), T, ctx_);
  add_forward(x_.data(), x_.data(), proj_.data(), int64_t(T) * C);
}

const float* Forward::hidden(const int32_t* ids, int T, KVCache* cache) {
  const ModelConfig& c = m_.config;
  LATHE_CHECK(T > 0 && T <= max_chunk_, "chunk of {} tokens, workspace holds {}", T, max_chunk_);
  if (cache->len + T > cache->capacity)
    fail("model", "sequence of {} tokens exceeds the KV cache capacity of {}", cache->len + T, cache->capacity);
  for (int t = 0; t < T; t++)
    if (ids[t] < 0 || ids[t] >= c.vocab_size)
      fail("model", "token id {} at position {} is outside the vocabulary [0, {})", ids[t], cache->len + t,
           c.vocab_size);
  embedding_forward(x_.data(), ids, m_.weights.embed.f32(), T, c.hidden_size);
  rope_fill(inv_freq_, cache->len, T, cos_.data(), sin_.data());
  for (int l = 0; l < c.num_hidden_layers; l++) {
    attention_block(l, T, cache);
    mlp_block(l, T);
  }
  cache->len += T;
  rmsnorm_forward(xn_.data(), nullptr, x_.data(), m_.weights.final_norm.f32(), T, c.hidden_size, c.rms_norm_eps);
  return xn_.data();
}

void Forward::logits(const float* hidden_rows, int n, float* out) const {
  const ModelConfig& c = m_.config;
  matmul_forward(out, hidden_rows, m_.weights.lm_head.f32(), nullptr, n, c.hidden_size, c.vocab_size);
}

}  // namespace lathe
