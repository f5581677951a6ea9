#include "lathe/model/train_graph.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/ignore_index.h"
#include "lathe/core/phase_prof.h"
#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/base_compute.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/forward.h"

namespace lathe {

// ---- PackedBatch ----

void PackedBatch::add(const std::vector<int32_t>& input_ids, const std::vector<int32_t>& labels) {
  LATHE_CHECK(input_ids.size() == labels.size(), "ids/labels length mismatch");
  seg_start.push_back(int(ids.size()));
  seg_len.push_back(int(input_ids.size()));
  first_label.push_back(labels.empty() ? kIgnoreIndex : labels[0]);
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

TrainGraph::TrainGraph(const Model& m, const AdapterSet* adapters, ModelWeights* grads, bool checkpointing)
    : m_(m), adapters_(adapters), grads_(grads), checkpointing_(checkpointing) {
  // Quantized blocks have no backward (and the lm_head chunks below read f32): say which weight.
  ModelWeights w = m.weights;  // shallow copies; for_each_tensor wants a mutable reference
  for_each_tensor(m.config, w, [&](TensorSlot& s) {
    if (is_qblock_dtype(s.tensor->dtype))
      fail("train", "tensor '{}' is {}: quantized weights are for inference (generate, eval, serve); load the "
           "model with f32 weights to train", s.hf_name, dtype_name(s.tensor->dtype));
  });
  if (is_qblock_dtype(m.weights.lm_head.dtype))
    fail("train", "tensor 'lm_head.weight' is {}: quantized weights are for inference; load the model with f32 "
         "weights to train", dtype_name(m.weights.lm_head.dtype));
  rope_ = RopeFreqs::of(m.config);
  acts_.resize(checkpointing ? 1 : m.config.num_hidden_layers);
}

TrainGraph::~TrainGraph() = default;

int TrainGraph::head_chunk_rows(int V) {
  // 256 rows, fewer for large vocabularies (Gemma's 262k) so a chunk's logits stay <= 2^25 floats
  // (128 MiB). Each chunk's two products make OpenBLAS pack the whole [V, C] head again, which costs
  // about what the products of 64 rows do: with 2^24 (64 rows at 262k) a Gemma-3 LoRA step spent a
  // third of its time in sgemm's copy routines.
  return int(std::clamp<int64_t>((int64_t(1) << 25) / V, 16, 256));
}

size_t TrainGraph::activation_bytes(const ModelConfig& c, int N, int T, int P, bool checkpointing, bool keep) {
  const size_t C = c.hidden_size, F = c.intermediate_size, QD = c.q_dim(), KD = c.kv_dim();
  size_t per_token = 2 + 2 * C + 2 * QD + 2 * KD + 2 * F;  // one block's saved rows
  if (c.qk_norm) per_token += QD + KD + c.num_attention_heads + c.num_key_value_heads;
  if (c.post_attn_norm) per_token += C + 1;  // o_proj output + rstd
  if (c.post_ffn_norm) per_token += C + 1;   // down_proj output + rstd
  size_t block = per_token * N;
  keep = keep && !checkpointing;
  // Kept for backward: both normalised inputs, the SwiGLU output and each sequence's H x T x (P + T)
  // probabilities (N / T sequences of T tokens at most: H N (P + T) floats).
  if (keep) block += (2 * C + F) * N + size_t(c.num_attention_heads) * N * (P + T);
  size_t blocks = checkpointing ? 1 : size_t(c.num_hidden_layers);
  size_t inputs = size_t(c.num_hidden_layers + 1) * N * C;
  // residual grads, recomputed xn / act, K/V buffers, logits chunk, backward temporaries, and the
  // attention kernels' own: per thread a block of a query group's rows (their queries, output
  // gradients, probabilities and the probabilities' gradient), and the backward's dk/dv partials
  // (at most 16 + Hkv parts of S x D each; kernels/cpu/attention.cpp)
  const size_t S = size_t(P + T), threads = size_t(std::max(1, num_threads()));
  const size_t group_rows = size_t(c.num_attention_heads / c.num_key_value_heads) * kAttnRowBlock;
  size_t scratch = 3 * N * C + N * F + 2 * S * KD * 2 +
                   size_t(head_chunk_rows(c.vocab_size)) * c.vocab_size * (c.final_logit_softcapping > 0 ? 2 : 1) + 3 * N * F + N * (QD + 2 * KD) +
                   threads * 2 * group_rows * (S + c.head_dim) + 2 * size_t(16 + c.num_key_value_heads) * S * c.head_dim;
  if (keep) scratch -= N * C + N * F;  // not used as scratch then
  return sizeof(float) * (block * blocks + inputs + scratch + size_t(N) * c.head_dim);
}

// Prompt tuning as PEFT runs it: inputs_embeds = [prompt; embed(ids)] per sequence, the labels
// prefixed with P times -100, so after the shift the virtual rows predict nothing except the last
// one, which predicts the sequence's first label. The virtual rows' ids are placeholders (0);
// forward_blocks writes the prompt embeddings over their rows.
static void add_prompt_rows(const PackedBatch& b, int P, PackedBatch* out) {
  *out = PackedBatch{};
  for (size_t s = 0; s < b.seg_start.size(); s++) {
    out->seg_start.push_back(int(out->ids.size()));
    out->seg_len.push_back(P + b.seg_len[s]);
    out->first_label.push_back(kIgnoreIndex);
    for (int p = 0; p < P; p++) {
      out->ids.push_back(0);
      out->targets.push_back(p + 1 == P ? b.first_label[s] : kIgnoreIndex);
    }
    const size_t t0 = size_t(b.seg_start[s]);
    out->ids.insert(out->ids.end(), b.ids.begin() + t0, b.ids.begin() + t0 + b.seg_len[s]);
    out->targets.insert(out->targets.end(), b.targets.begin() + t0, b.targets.begin() + t0 + b.seg_len[s]);
  }
}

void TrainGraph::prepare(const PackedBatch& b, const AdapterSet* adapters) {
  const ModelConfig& c = m_.config;
  for (int32_t id : b.ids)
    if (id < 0 || id >= c.vocab_size) fail("train", "token id {} is outside the vocabulary [0, {})", id, c.vocab_size);
  prompt_len_ = adapters ? adapters->prompt_len : 0;
  LATHE_CHECK(prompt_len_ == 0 || b.first_label.size() == b.seg_start.size(), "prompt tuning needs first_label");
  if (prompt_len_ > 0) add_prompt_rows(b, prompt_len_, &with_prompt_);
  batch_ = prompt_len_ > 0 ? &with_prompt_ : &b;
  N_ = batch_->num_tokens();
  const int P = adapters ? adapters->prefix_len : 0;
  const size_t C = c.hidden_size;
  x_in_.resize(c.num_hidden_layers + 1);
  for (auto& x : x_in_) x.resize(size_t(N_) * C);
  size_t probs_floats = 0;  // every sequence's [H, T, P + T] attention probabilities (kept ones)
  for (size_t s = 0; s < batch_->seg_start.size(); s++)
    probs_floats += size_t(c.num_attention_heads) * batch_->seg_len[s] * (P + batch_->seg_len[s]);
  for (auto& a : acts_) {
    a.resize(c, N_, /*saved=*/true);
    a.keep_recomputed(c, N_, keep_recomputed_ ? probs_floats : 0);
  }
  // Each sequence's tokens take positions P.. (after the prefix, as Hugging Face places them).
  rows_.N = N_;
  rows_.seqs.clear();
  for (size_t s = 0; s < batch_->seg_start.size(); s++)
    rows_.seqs.push_back({batch_->seg_start[s], batch_->seg_len[s], P, nullptr, nullptr});
  rows_.set_rope(rope_);
  dx_a_.resize(size_t(N_) * C);
  dx_b_.resize(size_t(N_) * C);
}

// Final norm + lm_head + cross-entropy, in row chunks so logits never take more than
// kRows x V floats. With `backward`, writes d(loss·scale)/dx_last into dx_last.
// Only the rows with a target go through the lm_head: prompt tokens under completion-only loss (a
// third to two thirds of a chat corpus's tokens) and padding need no logits, and the head's two
// products are a sixth of a SmolLM2-135M LoRA step. The rows are gathered in order, so each kept
// row's logits, loss and gradient are the same products as before (the same bits natively;
// OpenBLAS's Haswell kernels may round a row differently at another position in their tiles), and
// the loss adds the same rows in the same order, grouped by chunk.
double TrainGraph::head_forward_backward(const float* x_last, float* dx_last, float scale, bool backward,
                                         int64_t* count, const float* row_weight, double* row_nll) {
  prof::PhaseScope ps(prof::Phase::Head);
  const ModelConfig& c = m_.config;
  const int N = N_, C = c.hidden_size, V = c.vocab_size;
  std::vector<float> hn(size_t(N) * C), rstd(N), dhn, norm_buf;
  const float* final_w = norm_weight(c, m_.weights.final_norm, norm_buf);
  rmsnorm_forward(hn.data(), rstd.data(), x_last, final_w, N, C, c.rms_norm_eps);
  if (backward) dhn.assign(size_t(N) * C, 0.0f);
  if (row_nll) std::fill(row_nll, row_nll + N, 0.0);

  // The rows with a target, gathered when some have none.
  std::vector<int> live;
  live.reserve(size_t(N));
  for (int i = 0; i < N; i++)
    if (batch_->targets[size_t(i)] >= 0) live.push_back(i);
  const int L = int(live.size());
  const bool gather = L < N;
  std::vector<float> h_live, dh_live, w_live;
  std::vector<int32_t> t_live;
  std::vector<double> nll_live;
  const float* h = hn.data();
  const int32_t* targets = batch_->targets.data();
  const float* weights = row_weight;
  float* dh = backward ? dhn.data() : nullptr;
  double* nll = row_nll;
  if (gather) {
    h_live.resize(size_t(L) * C);
    t_live.resize(size_t(L));
    for (int j = 0; j < L; j++) {
      std::memcpy(h_live.data() + size_t(j) * C, hn.data() + size_t(live[j]) * C, sizeof(float) * C);
      t_live[size_t(j)] = targets[live[j]];
    }
    h = h_live.data(), targets = t_live.data();
    if (row_weight) {
      w_live.resize(size_t(L));
      for (int j = 0; j < L; j++) w_live[size_t(j)] = row_weight[live[j]];
      weights = w_live.data();
    }
    if (backward) dh_live.assign(size_t(L) * C, 0.0f), dh = dh_live.data();
    if (row_nll) nll_live.assign(size_t(L), 0.0), nll = nll_live.data();
  }

  const int kRows = head_chunk_rows(V);
  const float cap = c.final_logit_softcapping;
  if (logits_.size() < size_t(std::min(kRows, L)) * V) logits_.resize(size_t(std::min(kRows, L)) * V);
  float* const logits = logits_.data();
  double total = 0;
  *count = 0;
  Tensor* dlm = grads_ ? &grads_->lm_head : nullptr;
  const BaseCompute bcomp = base_compute();
  const bool lowp = bcomp != BaseCompute::F32 && !dlm;
  for (int r0 = 0; r0 < L; r0 += kRows) {
    const int rows = std::min(kRows, L - r0);
    const int32_t* tgt = targets + r0;
    const float* hr = h + size_t(r0) * C;
    // A frozen lm_head runs with the frozen base's compute (--base-compute; kernels/cpu/base_compute.h).
    if (lowp)
      base_compute_forward(bcomp, m_.weights.lm_head.f32(), V, C, hr, nullptr, logits, rows);
    else
      matmul_forward(logits, hr, m_.weights.lm_head.f32(), nullptr, rows, C, V);
    logits_softcap(c, logits, rows);
    if (backward && cap > 0.0f) capped_.assign(logits, logits + size_t(rows) * V);
    int64_t cnt = 0;
    if (backward) {
      total += cross_entropy_backward(logits, tgt, rows, V, scale, &cnt, weights ? weights + r0 : nullptr);
      if (cap > 0.0f) softcap_backward(logits, capped_.data(), int64_t(rows) * V, cap);
      if (lowp)
        base_compute_backward_input(bcomp, m_.weights.lm_head.f32(), V, C, logits, dh + size_t(r0) * C, rows);
      else
        matmul_backward(dh + size_t(r0) * C, dlm ? dlm->f32() : nullptr, nullptr, logits, hr,
                        m_.weights.lm_head.f32(), rows, C, V);
    } else {
      total += cross_entropy_sum(logits, tgt, rows, V, &cnt, nll ? nll + r0 : nullptr);
    }
    *count += cnt;
  }
  if (gather) {
    for (int j = 0; j < L; j++) {
      if (backward)
        std::memcpy(dhn.data() + size_t(live[j]) * C, dh_live.data() + size_t(j) * C, sizeof(float) * C);
      if (row_nll) row_nll[live[j]] = nll_live[size_t(j)];
    }
  }
  if (backward) {
    std::fill(dx_last, dx_last + size_t(N) * C, 0.0f);
    rmsnorm_backward(dx_last, grads_ ? grads_->final_norm.f32() : nullptr, dhn.data(), x_last, final_w, rstd.data(), N,
                     C);
  }
  return total;
}

void TrainGraph::forward_blocks(const BlockContext& bc) {
  const int L = m_.config.num_hidden_layers;
  embed_rows(m_, batch_->ids.data(), N_, x_in_[0].data());
  if (prompt_len_ > 0) {
    const AdapterSet* as = bc.adapters;
    LATHE_CHECK(as && as->prompt_len == prompt_len_ && as->prompt_embeds, "prompt rows without prompt embeddings");
    const size_t C = m_.config.hidden_size;
    const float s = inputs_embeds_scale(m_.config);  // Gemma2 scales the virtual rows with the tokens
    for (int s0 : batch_->seg_start) {
      float* x = x_in_[0].data() + size_t(s0) * C;
      std::memcpy(x, as->prompt_embeds, sizeof(float) * prompt_len_ * C);
      if (s != 1.0f)
        for (size_t i = 0; i < size_t(prompt_len_) * C; i++) x[i] *= s;
    }
  }
  for (int l = 0; l < L; l++)
    block_forward(bc, l, rows_, acts_[checkpointing_ ? 0 : l], scratch_, x_in_[l].data(), x_in_[l + 1].data());
}

// From d loss / d(last block output) in dx_a_ down to the embeddings.
void TrainGraph::backward_blocks(const BlockContext& bc) {
  for (int l = m_.config.num_hidden_layers - 1; l >= 0; l--) {
    BlockActs& a = acts_[checkpointing_ ? 0 : l];
    if (checkpointing_) {  // recompute this block's activations from its saved input
      prof::PhaseScope ps(prof::Phase::Recompute);
      std::vector<float> out(size_t(N_) * m_.config.hidden_size);
      block_forward(bc, l, rows_, a, scratch_, x_in_[l].data(), out.data());
    }
    block_backward(bc, l, rows_, a, scratch_, x_in_[l].data(), dx_a_.data(), dx_b_.data());
    dx_a_.swap(dx_b_);
    if (layer_hook_) layer_hook_(l);
  }
  if (prompt_len_ > 0) {  // the virtual rows' input gradient, summed over the sequences
    LATHE_CHECK(!grads_, "prompt tuning with full fine-tuning");
    if (float* g = bc.adapters ? bc.adapters->prompt_dembeds : nullptr) {
      const size_t C = m_.config.hidden_size, n = size_t(prompt_len_) * C;
      const float s = inputs_embeds_scale(m_.config);
      for (int s0 : batch_->seg_start)
        for (size_t i = 0; i < n; i++) g[i] += s * dx_a_[size_t(s0) * C + i];
    }
    return;
  }
  if (grads_) embed_rows_backward(m_, grads_->embed.f32(), dx_a_.data(), batch_->ids.data(), N_);
}

// A new id for a training forward pass and its backward (AdapterContext::pass), unique across graphs.
static uint64_t next_pass() {
  static std::atomic<uint64_t> n{0};
  return ++n;
}

double TrainGraph::forward_backward(const PackedBatch& b, float scale, int64_t* count, const AdapterContext& ctx0) {
  prepare(b, adapters_);
  AdapterContext ctx = ctx0;
  ctx.pass = next_pass();
  const BlockContext bc{m_, adapters_, grads_, ctx};
  forward_blocks(bc);
  double loss = head_forward_backward(x_in_[m_.config.num_hidden_layers].data(), dx_a_.data(), scale, true, count);
  backward_blocks(bc);
  return loss;
}

double TrainGraph::forward_loss(const PackedBatch& b, int64_t* count) {
  prepare(b, adapters_);
  forward_blocks(BlockContext{m_, adapters_, grads_, AdapterContext{}});  // eval: no dropout
  return head_forward_backward(x_in_[m_.config.num_hidden_layers].data(), nullptr, 0.0f, false, count);
}

void TrainGraph::forward_logps(const PackedBatch& b, const AdapterSet* adapters, const AdapterContext& ctx,
                               std::vector<double>* logp) {
  LATHE_CHECK(!adapters || adapters->prompt_len == 0, "preference training with prompt tuning");
  prepare(b, adapters);
  ctx_ = ctx;
  ctx_.pass = next_pass();
  logps_adapters_ = adapters;
  forward_blocks(BlockContext{m_, adapters, adapters == adapters_ ? grads_ : nullptr, ctx_});
  logp->assign(size_t(N_), 0.0);
  int64_t count = 0;
  head_forward_backward(x_in_[m_.config.num_hidden_layers].data(), nullptr, 0.0f, false, &count, nullptr,
                        logp->data());
  for (double& v : *logp) v = -v;
}

void TrainGraph::backward_weighted(const std::vector<float>& weight) {
  LATHE_CHECK(batch_ && int(weight.size()) == N_, "backward_weighted: {} weights for {} rows", weight.size(), N_);
  LATHE_CHECK(logps_adapters_ == adapters_, "backward_weighted after a forward with other adapters than the graph's");
  int64_t count = 0;
  head_forward_backward(x_in_[m_.config.num_hidden_layers].data(), dx_a_.data(), 1.0f, true, &count, weight.data());
  backward_blocks(BlockContext{m_, adapters_, grads_, ctx_});
}

}  // namespace lathe
