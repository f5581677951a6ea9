// Training forward + backward over a packed micro-batch: embedding -> L x block (model/block.h,
// forward and backward) -> final norm -> lm_head -> cross-entropy.
//
// A micro-batch is a set of sequences laid end to end (N tokens in all); every matmul runs over
// all N rows at once, while attention runs per sequence (segment), so sequences never attend to
// each other — the same mechanism serves padding-free batching and packing (each sequence is a
// BlockSequence). Gradients flow through linear_backward (the one projection function), so LoRA /
// QLoRA / full fine-tuning plug in there, and prefix tuning through AdapterSet's key/value
// prefixes; this file never knows which method is active. With gradient checkpointing only each block's input is kept and the
// block is recomputed during backward.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "lathe/model/block.h"
#include "lathe/model/linear.h"
#include "lathe/model/model.h"

namespace lathe {

struct PackedBatch {
  std::vector<int32_t> ids;      // [N]
  std::vector<int32_t> targets;  // [N] the label of the next position in the same sequence; -100 = none
  std::vector<int> seg_start, seg_len;
  std::vector<int32_t> first_label;  // [sequences] labels[0]: what a virtual token before it predicts
  int num_tokens() const { return int(ids.size()); }
  int max_segment() const;
  int64_t num_targets() const;  // targets that carry loss
  // Appends one sequence with Hugging Face's shift: targets[t] = labels[t + 1], last = -100.
  void add(const std::vector<int32_t>& input_ids, const std::vector<int32_t>& labels);
};

class TrainGraph {
 public:
  // `grads` (full fine-tuning) mirrors the weights and receives their gradients (null: base
  // frozen). For tied embeddings grads->lm_head must share grads->embed's storage.
  TrainGraph(const Model& m, const AdapterSet* adapters, ModelWeights* grads, bool gradient_checkpointing);
  ~TrainGraph();

  // Forward and backward of one micro-batch; d(loss·scale) accumulates into every gradient.
  // Returns Σ NLL over the counted targets, *count = their number.
  double forward_backward(const PackedBatch& b, float scale, int64_t* count, const AdapterContext& ctx);
  // Forward only (evaluation): Σ NLL and count.
  double forward_loss(const PackedBatch& b, int64_t* count);

  // Preference training splits the step in two, because its per-token weights depend on the whole
  // sequence's log-probability. forward_logps runs the batch with `adapters` in place of the graph's
  // own (the reference policy passes its own, or null for the bare base; the policy passes the
  // graph's) and writes each row's log p(target) into logp (0 where the target is -100).
  // backward_weighted then runs the backward of Σ_t weight[t]·NLL[t] for the batch of the last
  // forward_logps, which must have used the graph's own adapters (and `ctx`'s dropout, kept for
  // recompute). The head's logits are recomputed chunk by chunk, never kept.
  void forward_logps(const PackedBatch& b, const AdapterSet* adapters, const AdapterContext& ctx,
                     std::vector<double>* logp);
  void backward_weighted(const std::vector<float>& weight);
  const AdapterSet* adapters() const { return adapters_; }
  // Keep, per layer, what backward otherwise recomputes (normalised inputs, SwiGLU output, attention
  // probabilities: BlockActs::keep_recomputed) when the memory plan has room for it (the trainer
  // decides with activation_bytes). The values, and so the gradients, are bitwise the same either
  // way. Ignored with gradient checkpointing, which recomputes whole blocks.
  void set_keep_recomputed(bool keep) { keep_recomputed_ = keep && !checkpointing_; }
  bool keep_recomputed() const { return keep_recomputed_; }
  // Called after each decoder layer's backward with its index, top layer first: that layer's
  // gradients are complete for this micro-batch (data-parallel training starts sending them while
  // the layers below compute). Empty: none.
  void set_layer_backward_hook(std::function<void(int)> hook) { layer_hook_ = std::move(hook); }

  // Bytes of saved activations and scratch for a micro-batch of N tokens whose longest sequence
  // has T tokens (the memory plan printed before step 1).
  // Rows of one logits chunk of the loss head (the [rows, V] logits are never larger).
  static int head_chunk_rows(int V);
  // `keep`: with set_keep_recomputed (no effect with checkpointing).
  static size_t activation_bytes(const ModelConfig& c, int N, int T, int prefix_len, bool checkpointing,
                                 bool keep = false);

 private:
  void prepare(const PackedBatch& b, const AdapterSet* adapters);
  void forward_blocks(const BlockContext& bc);
  void backward_blocks(const BlockContext& bc);
  // `row_weight` (backward) scales each row's loss; `row_nll` (forward) receives each row's NLL.
  double head_forward_backward(const float* x_last, float* dx_last, float scale, bool backward, int64_t* count,
                               const float* row_weight = nullptr, double* row_nll = nullptr);

  const Model& m_;
  const AdapterSet* adapters_;
  ModelWeights* grads_;
  bool checkpointing_;
  bool keep_recomputed_ = false;
  const PackedBatch* batch_ = nullptr;
  PackedBatch with_prompt_;  // prompt tuning: the batch with P virtual rows before each sequence
  int prompt_len_ = 0;
  AdapterContext ctx_;                      // of the last forward_logps (backward_weighted recomputes with it)
  const AdapterSet* logps_adapters_ = nullptr;  // and the adapters it ran with
  int N_ = 0;
  BlockRows rows_;                         // the batch's sequences, at positions P.. (after the prefix)
  std::vector<BlockActs> acts_;            // one per block (or one shared when checkpointing)
  std::vector<std::vector<float>> x_in_;   // block inputs [L+1][N*C] (x_in_[L] = last block output)
  RopeFreqs rope_;
  std::vector<float> dx_a_, dx_b_;         // residual gradients
  // The head's logits chunk, kept between steps: a vector made per step zero-filled its 50 MB
  // (SmolLM2's 256 x 49,152) and the allocator returned the pages to be faulted in again each step.
  std::vector<float> logits_;
  std::vector<float> capped_;  // the soft-capped logits of a chunk (Gemma 2), kept for the same reason
  BlockScratch scratch_;
  std::function<void(int)> layer_hook_;
};

}  // namespace lathe
