// `lathe eval`'s options, declared once (core/options.h): flag, YAML key, environment variable,
// default, help and validation. project.yaml's `eval:` section passes `holdout` on, and `goal.gates`
// the two gates. Every key is documented in docs/eval.md (a unit test keeps the two equal).
#pragma once
#include <string>
#include <vector>

#include "lathe/core/options.h"
#include "lathe/eval/runner.h"

namespace lathe::eval {

struct EvalCommandOptions {
  RunOptions run;
  std::vector<std::string> adapters, train_metrics;  // NAME=PATH (or PATH alone)
  std::string tests, output;
  std::string overrules;  // a reviewer's verdicts (overrules.h); "" = none
  double min_pass_rate = -1, max_forgetting = -1;  // < 0: the suite's own gate (if any)
  std::string gate_variants;                        // comma-separated; "": every adapter variant
  bool json = false;
  int threads = 0;
};

const OptionTable<EvalCommandOptions>& eval_options_table();

}  // namespace lathe::eval
