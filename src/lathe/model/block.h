// The decoder block: the one place where an architecture's block is wired (norms, projections,
// q/k norm, RoPE, attention, MLP, residuals), forward and backward side by side. Every path runs
// it: inference and generation (Forward), batched serving (BatchedDecoder) and training
// (TrainGraph). Those drivers differ only in how they arrange rows:
//
//   - a call runs N rows at once through every projection (one matmul over all rows);
//   - the rows split into sequences (BlockSequence), and attention runs per sequence, so sequences
//     never see each other: one chunk of one request (Forward), one new token of each of n
//     requests (BatchedDecoder), or the sequences of a packed micro-batch (TrainGraph);
//   - a sequence's keys/values either go into its KV cache (inference; a prefix-tuning prefix
//     fills the cache's first rows) or, without a cache (training), are its own rows after the
//     adapter's key/value prefix — the K/V hook of prefix tuning.
//
// Adapters attach only through linear_forward / linear_backward (the projection hook) and the K/V
// prefix: this file never knows which PEFT method is active. docs/architecture.md says how an
// architecture or a PEFT method is added.
#pragma once
#include <cstdint>
#include <vector>

#include "lathe/kernels/attention_opts.h"
#include "lathe/model/linear.h"
#include "lathe/model/model.h"
#include "lathe/model/rope.h"

namespace lathe {

struct KVCache;

// One sequence's rows in a block call.
struct BlockSequence {
  int row0 = 0, rows = 0;  // its rows among the call's N
  int pos0 = 0;            // position of its first row (RoPE; the keys/values before it)
  KVCache* cache = nullptr;              // inference: keys/values appended at rows pos0.. of the cache
  const AdapterSet* adapters = nullptr;  // its own adapters (serving); null: the call's adapters
};

// The rows of one call: N rows in sequences, with each row's RoPE angles.
struct BlockRows {
  int N = 0;
  std::vector<BlockSequence> seqs;
  std::vector<float> cos, sin;              // [N, R/2] at each row's position (global layers)
  std::vector<float> cos_local, sin_local;  // the same for Gemma 3's sliding layers
  // Fills the tables from the sequences' positions (pos0 + index within the sequence); a longrope
  // sequence longer than the original context (a cached one: its cache's capacity) uses the long factors.
  void set_rope(const RopeFreqs& f);
  bool per_sequence_adapters() const;
};

// What a block's forward leaves behind. Training keeps one per layer (`saved`: the values its
// backward needs); inference reuses one and skips what only backward reads.
struct BlockActs {
  std::vector<float> rstd1;           // [N]                      (saved, pre_attn_norm)
  std::vector<float> q_pre, k_pre;    // [N,H*D], [N,Hkv*D]       (saved, qk_norm: before the norm)
  std::vector<float> rstd_q, rstd_k;  // [N*H], [N*Hkv]           (saved, qk_norm)
  std::vector<float> q, k, v;         // [N,H*D], [N,Hkv*D] x2 (q, k after RoPE)
  std::vector<float> att;             // [N,H*D]
  std::vector<float> x_mid, rstd2;    // [N,C], [N] (rstd2 saved)
  std::vector<float> gate, up;        // [N,F] x2 (inference: gate receives the SwiGLU output)
  std::vector<float> o_out, rstd_pa;  // [N,C], [N]  post_attn_norm: o_proj's output and its norm's rstd (saved)
  std::vector<float> down_out, rstd_pf;  // [N,C], [N]  post_ffn_norm: down_proj's output and rstd (saved)
  // What backward would otherwise recompute (BlockScratch), kept when the memory plan has room
  // (TrainGraph::set_keep_recomputed); empty: recompute.
  std::vector<float> xn_attn, xn_ffn;  // [N,C] the normalised inputs of attention and the MLP
  std::vector<float> act;              // [N,F] the SwiGLU / GeGLU output
  std::vector<float> probs;            // each sequence's [H, T, S] attention probabilities, in row order
  void resize(const ModelConfig& c, int N, bool saved);
  // Sizes (probs_floats > 0) or frees (0) the kept buffers above.
  void keep_recomputed(const ModelConfig& c, int N, size_t probs_floats);
  bool kept() const { return !act.empty(); }
};

// Scratch shared by all blocks of a driver. Normalised inputs, the SwiGLU output and the attention
// probabilities are recomputed in backward rather than kept per layer (bitwise the same values from
// the same kernels), which takes them out of the per-layer footprint (probs alone were H·T² per
// sequence), unless the driver keeps them (BlockActs::keep_recomputed). The attention kernels hold
// the probabilities of one block of rows per thread themselves (kernels/cpu/attention.cpp).
struct BlockScratch {
  std::vector<float> xn;     // [N,C] normalised block input
  std::vector<float> act;    // [N,F] SwiGLU output (training)
  std::vector<float> kv;     // one sequence's [prefix; rows] keys, values and their gradients (4 x S x Hkv*D)
  std::vector<float> grads;  // block_backward's gradients of the block's inner values (one arena)
  std::vector<float> fused;  // [N, QD + 2 KD] or [N, 2F]: a fused projection's output or gradient
  std::vector<float> norm_w; // Gemma: (1 + w) of the norm in use
};

// What a block reads besides its rows: the model, the adapters applied to every row (unless a
// sequence brings its own), the weight gradients of full fine-tuning, and the adapter context.
struct BlockContext {
  const Model& m;
  const AdapterSet* adapters = nullptr;
  ModelWeights* grads = nullptr;
  AdapterContext actx;
};

// The scale an RMSNorm applies: its weight, or (1 + w) for Gemma (written into `buf`).
const float* norm_weight(const ModelConfig& c, const Tensor& w, std::vector<float>& buf);
// Token embeddings of ids[N] into x[N,C], times sqrt(C) for Gemma (rounded to the checkpoint's
// dtype, as HF multiplies in the embedding dtype).
void embed_rows(const Model& m, const int32_t* ids, int N, float* x);
// Full fine-tuning: the embedding table's gradient from dx[N,C] (the same scale applied).
void embed_rows_backward(const Model& m, float* dtable, const float* dx, const int32_t* ids, int N);
// Where HF puts Gemma's sqrt(hidden), which decides what PEFT's virtual tokens (prompt tuning,
// P-tuning) get: Gemma2 scales the whole inputs_embeds in the model's forward, so the virtual rows are
// scaled too (inputs_embeds_scale); Gemma3's embedding module scales its lookups, so virtual rows go
// in as they are and TEXT init copies scaled rows (embedding_module_scale). 1 for other families.
// Their product is what embed_rows applies to token rows.
float inputs_embeds_scale(const ModelConfig& c);
float embedding_module_scale(const ModelConfig& c);
// Final-logit soft-capping (Gemma 2) on logits[n, V] in place, if the model has it.
void logits_softcap(const ModelConfig& c, float* logits, int64_t n);

// x_out[N,C] = block l (x_in[N,C]); x_out may alias x_in (inference). Appends each cached
// sequence's keys/values at its pos0 (the caller advances cache->len after the last block).
void block_forward(const BlockContext& bc, int l, const BlockRows& rows, BlockActs& a, BlockScratch& s,
                   const float* x_in, float* x_out);
// dx_in[N,C] = ∂/∂x_in given dx_out, from the activations of block_forward(saved) with input
// x_in; accumulates weight, adapter and prefix gradients. Training only (no caches).
void block_backward(const BlockContext& bc, int l, const BlockRows& rows, BlockActs& a, BlockScratch& s,
                    const float* x_in, const float* dx_out, float* dx_in);

}  // namespace lathe
