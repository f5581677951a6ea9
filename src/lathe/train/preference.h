// Preference optimisation: DPO (loss_type sigmoid or ipo), KTO and ORPO, with TRL's semantics and
// metric names (formulas from TRL's documentation; no code of it).
//
// Everything reduces to per-sequence log-probabilities of the completion tokens (the positions whose
// label is not -100, i.e. the assistant span of the chat template, or the completion ids of
// pre-tokenized records):
//   s_i = Σ_t log p(token_t | tokens_<t)      summed for DPO sigmoid and KTO,
//   s_i / n_i                                 averaged per token for IPO and ORPO.
// A loss L(s) then gives per-sequence coefficients dL/ds_i, and the policy's backward runs as a
// weighted cross-entropy: every completion token of sequence i carries weight -dL/ds_i (/n_i) on its
// NLL. The reference policy is the same graph run without gradient: the base with the adapter
// switched off (no second copy of the model), a frozen copy of --init-adapter, or for full
// fine-tuning a frozen copy of the starting weights.
//
// Reductions per micro-batch, as TRL's trainers do: the loss is the mean over the micro-batch's
// examples (KTO: over its desirable and undesirable completions together, each weighted), plus for
// ORPO the NLL of the chosen completions averaged over their tokens. The trainer scales each
// micro-batch by 1/gradient_accumulation_steps (HF Trainer's accumulation).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lathe/model/linear.h"

namespace lathe {

class TrainGraph;

struct PreferenceOptions {
  std::string method = "dpo";        // dpo | kto | orpo
  std::string loss_type = "sigmoid"; // dpo: sigmoid | ipo
  double beta = 0.1;                 // DPO/KTO temperature; ORPO's lambda (TRL calls it beta)
  double label_smoothing = 0.0;      // DPO sigmoid: conservative DPO
  double desirable_weight = 1.0;     // KTO
  double undesirable_weight = 1.0;   // KTO
  bool average_logps() const { return method == "orpo" || (method == "dpo" && loss_type == "ipo"); }
};

// One micro-batch of preference examples, already tokenized and masked (labels: -100 = no loss;
// the completion tokens carry their own id as label, unshifted, as for SFT records).
//   dpo/orpo: example e has two sequences, chosen (2e) and rejected (2e+1).
//   kto: example e has one sequence (its completion) and `desirable[e]`; prompt_len[e] tokens of it
//        are the prompt, the rest the completion — KL pairs join prompt e with completion e-1
//        (cyclically within the micro-batch), as TRL's KTO builds its mismatched pairs.
struct PreferenceBatch {
  std::vector<std::vector<int32_t>> ids, labels;
  std::vector<int> prompt_len;  // kto
  std::vector<bool> desirable;  // kto
  int examples() const { return int(desirable.empty() ? ids.size() / 2 : desirable.size()); }
};

// The reference policy: a graph (the policy's own, or a frozen full copy's) and the adapters to run
// it with (null: none, i.e. the base). `graph` null: no reference (ORPO).
struct ReferencePolicy {
  TrainGraph* graph = nullptr;
  const AdapterSet* adapters = nullptr;
};

// Per-sequence completion log-probabilities and their token counts.
struct SequenceLogps {
  std::vector<double> sum;
  std::vector<int64_t> count;
};

// The loss of one micro-batch from log-probabilities (the policy's and the reference's, summed per
// sequence; `kl_*` are KTO's mismatched pairs), with dL/d(sum_i) for each policy sequence. Exposed
// for tests; preference_micro_step calls it.
struct PreferenceLoss {
  double loss = 0;
  std::vector<double> dloss_dsum;  // per policy sequence (chosen/rejected or KTO completion); ORPO's
                                   // NLL term is in it too (its tokens are the chosen completions')
  std::map<std::string, double> metrics;  // TRL's names: rewards/chosen, ..., logps/rejected, kl
  // Sums behind the metrics, so a step's metrics are means over all its micro-batches:
  std::map<std::string, double> metric_sums;
  std::map<std::string, int64_t> metric_counts;
};
PreferenceLoss preference_loss(const PreferenceOptions& o, const PreferenceBatch& b, const SequenceLogps& policy,
                               const SequenceLogps& reference, const SequenceLogps& kl_policy,
                               const SequenceLogps& kl_reference);

// One micro-batch: reference forward (no gradient), policy forward, the loss, and the policy's
// backward; d(loss · scale) accumulates into the trainable parameters' gradients (those the graph
// was built with). `ctx` carries dropout for the policy's forward. Returns the loss (unscaled).
// backward = false: the loss and metrics only (evaluation).
PreferenceLoss preference_micro_step(TrainGraph& graph, const AdapterSet* policy, const ReferencePolicy& reference,
                                     const PreferenceBatch& b, const PreferenceOptions& o, float scale,
                                     const AdapterContext& ctx, bool backward = true);

}  // namespace lathe
