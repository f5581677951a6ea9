#include "lathe/eval/eval_options.h"

#include "lathe/model/model.h"

namespace lathe::eval {

const OptionTable<EvalCommandOptions>& eval_options_table() {
  using C = EvalCommandOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("eval");
    t.add("model", [](C& c) -> auto& { return c.run.model_path; }, "Base model: HF directory or .gguf file").needed();
    t.add("weights", [](C& c) -> auto& { return c.run.weights; }, kWeightsOptionHelp).one_of(weight_format_choices());
    t.add("adapter", &C::adapters, "Adapter variant NAME=DIR (repeatable; DIR alone uses its folder name)");
    t.add("tests", &C::tests, "Test suite: .yaml (suite) or .jsonl (cases)").needed();
    t.add("eval_data", [](C& c) -> auto& { return c.run.eval_data; },
          "Dataset directory (manifest.json: validation split for perplexity, train split for contamination) or a "
          "records .jsonl for validation perplexity");
    t.add("train_data", [](C& c) -> auto& { return c.run.train_data; },
          "Training records .jsonl to flag contaminated cases against");
    t.add("holdout", [](C& c) -> auto& { return c.run.holdout; },
          "General text (.txt, or .jsonl of {\"text\"}) to measure forgetting on");
    t.add("baseline", [](C& c) -> auto& { return c.run.baseline; }, "Reference variant for fixed/broken counts")
        .one_of({"base", "prompt"});
    t.add("train_metrics", &C::train_metrics,
          "Training metrics NAME=metrics.jsonl for the report's curves (default: DIR/metrics.jsonl of each adapter)");
    t.add("output", &C::output, "Directory for report.json and report.html").needed();
    t.add("min_pass_rate", &C::min_pass_rate, "Gate: each adapter must pass at least this fraction of cases").range(0, 1);
    t.add("gate_variants", &C::gate_variants,
          "Variants the gates judge, comma-separated (default: every adapter variant; others are only reported)")
        .csv();
    t.add("max_forgetting", &C::max_forgetting, "Gate: holdout perplexity may rise at most this fraction over the base")
        .min(0);
    t.add("context_length", [](C& c) -> auto& { return c.run.context; },
          "Perplexity window (0 = max_position_embeddings)")
        .min(0);
    t.add("retrieval", [](C& c) -> auto& { return c.run.retrieval; },
          "Index directory (lathe index build): adds the variants rag and NAME+rag (default: the suite's retrieval.index)")
        .path();
    t.add("retrieval_k", [](C& c) -> auto& { return c.run.retrieval_k; },
          "Passages retrieved per question (0: the suite's retrieval.k, default 3)")
        .range(0, 50);
    t.add("rag_template", [](C& c) -> auto& { return c.run.rag_template; },
          "RAG prompt template file with {context} and {question} (default: docs/retrieval.md's layout)")
        .path();
    t.add("overrules", &C::overrules, "Reviewers' verdicts that overrule the assertions (lathe ui's review/eval_overrules.json)")
        .path();
    t.add("json", &C::json, "Print report.json's variant summary and gate as one JSON line on stdout");
    t.add("threads", &C::threads, "Threads for kernels and BLAS (0 = all cores)").min(0);
    return t;
  }();
  return table;
}

}  // namespace lathe::eval
