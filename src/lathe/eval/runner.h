// Runs a suite: every variant (the base model, the base with the suite's prompt-engineering
// baseline, each adapter) generates for every case with the same settings; assertions score the
// outputs; perplexity on the validation split and on a general-text holdout gives forgetting;
// cases whose prompt appears in the training data are flagged as contaminated.
//
// One base model serves the base, prompt and every LoRA / prefix adapter (adapters are applied
// without merging, so they never touch the base weights). A QLoRA adapter (trained on an NF4 base)
// gets its own copy of the base, quantized as during training, so the others still see f32 weights.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/eval/perplexity.h"
#include "lathe/eval/retrieval_eval.h"
#include "lathe/eval/test_suite.h"

namespace lathe::eval {

struct RunOptions {
  std::string model_path;
  std::string weights = "auto";    // --weights (model/model.h WeightFormat): every variant's base
  std::vector<std::pair<std::string, std::string>> adapters;  // NAME, DIR in command-line order
  std::string baseline = "base";   // reference variant for fixed/broken counts: "base" or "prompt"
  std::string eval_data;           // dataset dir with manifest.json, or a records .jsonl file
  std::string train_data;          // records .jsonl to check contamination against (else the manifest's train split)
  std::string holdout;             // general text: .txt (one document) or .jsonl of {"text"}
  int context = 0;                 // perplexity window (0: max_position_embeddings)
  size_t max_ppl_records = 2000;   // cap on validation / holdout records scored
  bool progress = true;            // one line per variant on stderr
  // Retrieval (eval/retrieval_eval.h): an index dir adds the variants "rag" (base + retrieved
  // passages) and "NAME+rag" for each adapter; empty: the suite's retrieval.index, if any.
  std::string retrieval;
  int retrieval_k = 0;             // passages per question (0: the suite's retrieval.k)
  std::string rag_template;        // prompt template file ({context}, {question}); empty: the suite's or the default
};

struct CaseOutput {
  std::string prompt_text;  // what the model was given, after templating
  std::string output;
  std::vector<AssertionResult> results;
  bool pass = false;
  double score = 0;          // weighted mean of assertion scores
  int prompt_tokens = 0, new_tokens = 0;
  std::string finish_reason;  // stop | length | stop-sequence
  double seconds = 0;         // retrieval (rag variants) + generation of this answer
  int passages_used = 0;      // rag variants: retrieved passages that fit the context
  // A reviewer's verdict replacing the assertions' (overrules.h): {"pass", "assertions_pass", "reason",
  // "reviewer", "at"}; null when none.
  nlohmann::json overrule;
};

struct TagStats {
  int cases = 0, passed = 0;
};

struct VariantResult {
  std::string name, kind, adapter_dir;  // kind: base | prompt | adapter | rag | adapter+rag
  std::vector<CaseOutput> cases;        // in suite order
  int passed = 0;
  double pass_rate = 0, weighted_pass_rate = 0, weighted_score = 0;
  std::map<std::string, TagStats> tags;
  std::optional<PerplexityResult> validation, holdout;
  std::optional<double> forgetting;     // holdout ppl / base holdout ppl - 1
  int fixed = 0, broken = 0;            // vs the reference variant: fail->pass, pass->fail
  double seconds = 0;
  // Cost per answer: means over the cases.
  double mean_prompt_tokens = 0, mean_new_tokens = 0, mean_latency_s = 0;
  std::optional<double> pass_given_hit;  // rag variants: pass rate over the cases whose retrieval hit
  bool uses_retrieval() const { return kind == "rag" || kind == "adapter+rag"; }
};

struct Contamination {
  bool flagged = false;
  std::string source;  // "FILE:LINE" of the training record it matched
};

struct EvalRun {
  EvalSuite suite;
  RunOptions options;
  std::string template_used;  // "plain" or the chat template's origin
  std::vector<VariantResult> variants;
  std::vector<Contamination> contamination;  // per case
  std::string reference;                     // the variant fixed/broken counts compare against
  // Retrieval, when an index was given: per case (suite order), shared by every rag variant.
  std::string retrieval_index;
  int retrieval_k = 0;
  std::vector<CaseRetrieval> retrieval;
};

EvalRun run_eval(const EvalSuite& suite, const RunOptions& options);

// Contamination compares a case's last user turn with each training record's prompt text (user
// turns; a {"text"} record's whole text; a pre-tokenized record's decoded ids that carry no loss)
// after this normalization: Unicode lowercase, whitespace runs collapsed to one space, trimmed. A
// case is flagged when its normalized prompt equals one, or (when at least 24 bytes long) occurs
// inside one; or when the data pipeline's contamination_matches (lathe/data/dedup.h: punctuation
// removed, MinHash near duplicates) pairs it with a training prompt.
std::string contamination_normalize(const std::string& s);  // lowercase, whitespace collapsed, trimmed

}  // namespace lathe::eval
