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

Forward::Forward(const Model& m, int max_chunk, const AdapterSet* adapters)
    : m_(m), adapters_(adapters), max_chunk_(max_chunk) {
  const ModelConfig& c = m.config;
  rope_ = RopeFreqs::of(c);
  x_.resize(size_t(max_chunk) * c.hidden_size);
  acts_.resize(c, max_chunk, /*saved=*/false);
  scratch_.xn.resize(size_t(max_chunk) * c.hidden_size);
}

size_t Forward::workspace_bytes() const {
  const BlockActs& a = acts_;
  const BlockScratch& s = scratch_;
  return sizeof(float) * (x_.size() + a.q.size() + a.k.size() + a.v.size() + a.att.size() + a.x_mid.size() +
                          a.gate.size() + a.up.size() + rows_.cos.capacity() + rows_.sin.capacity() + s.xn.size());
}

const float* Forward::hidden(const int32_t* ids, int T, KVCache* cache) {
  SequenceChunk chunk{cache, T, nullptr};
  return hidden(ids, &chunk, 1);
}

const float* Forward::hidden(const int32_t* ids, const SequenceChunk* chunks, int n) {
  const ModelConfig& c = m_.config;
  rows_.seqs.clear();
  int N = 0;
  for (int i = 0; i < n; i++) {
    const SequenceChunk& ch = chunks[i];
    LATHE_CHECK(ch.tokens > 0, "a chunk of {} tokens", ch.tokens);
    KVCache* cache = ch.cache;
    if (cache->len + ch.tokens > cache->capacity)
      fail("model", "sequence of {} tokens exceeds the KV cache capacity of {}", cache->len + ch.tokens,
           cache->capacity);
    for (int t = 0; t < ch.tokens; t++)
      if (ids[N + t] < 0 || ids[N + t] >= c.vocab_size)
        fail("model", "token id {} at position {} is outside the vocabulary [0, {})", ids[N + t], cache->len + t,
             c.vocab_size);
    rows_.seqs.push_back({N, ch.tokens, cache->len, cache, ch.adapters});
    N += ch.tokens;
  }
  LATHE_CHECK(N > 0 && N <= max_chunk_, "chunk of {} tokens, workspace holds {}", N, max_chunk_);
  rows_.N = N;
  rows_.set_rope(rope_);
  BlockContext bc{m_, adapters_, nullptr, AdapterContext{}};
  embed_rows(m_, ids, N, x_.data());
  for (int l = 0; l < c.num_hidden_layers; l++) block_forward(bc, l, rows_, acts_, scratch_, x_.data(), x_.data());
  for (const BlockSequence& sq : rows_.seqs) sq.cache->len += sq.rows;
  float* xn = scratch_.xn.data();
  rmsnorm_forward(xn, nullptr, x_.data(), norm_weight(c, m_.weights.final_norm, scratch_.norm_w), N, c.hidden_size,
                  c.rms_norm_eps);
  return xn;
}

void Forward::logits(const float* hidden_rows, int n, float* out) const {
  const ModelConfig& c = m_.config;
  LinearRef head;  // through the one projection function: f32, or Q8_0/Q4_0 blocks
  head.w = &m_.weights.lm_head;
  linear_forward(head, hidden_rows, out, n, AdapterContext{});
  logits_softcap(c, out, n);
}

}  // namespace lathe
