// report.json (for machines) and report.html (for people) of an evaluation run, and the CI gate.
// The HTML is rendered from the JSON document, so both always carry the same numbers.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/html_escape.h"
#include "lathe/eval/runner.h"

namespace lathe::eval {

struct GateFailure {
  std::string variant, gate;  // gate: min_pass_rate | max_forgetting
  double value = 0, limit = 0;
  std::vector<std::string> failing_cases;  // case ids that failed for this variant
};

// Gates apply to the adapter variants (the candidates a team would ship); with no adapters, to
// the base. min_pass_rate compares the fraction of cases passed; max_forgetting compares
// holdout ppl / base holdout ppl - 1.
std::vector<GateFailure> evaluate_gates(const EvalRun& run, const Gates& gates);

struct ReportInputs {
  std::vector<std::pair<std::string, std::string>> train_metrics;  // variant name, metrics.jsonl path
  std::string command_line;
  Gates gates;
  std::vector<GateFailure> gate_failures;
};

// Reads metrics.jsonl rows that carry step and loss / eval_loss / lr; a missing file gives [].
nlohmann::ordered_json read_training_curve(const std::string& path);

// The trainer's last row that carries trainable_params (method, parameter counts, train_runtime,
// train_tokens_per_second, peak_rss_mib); null when the file has none.
nlohmann::ordered_json read_training_summary(const std::string& path);

nlohmann::ordered_json report_json(const EvalRun& run, const ReportInputs& in);
// A self-contained page (inline CSS and SVG, no scripts from elsewhere); every text is escaped.
std::string report_html(const nlohmann::ordered_json& report);

using ::lathe::html_escape;  // core/html_escape.h

}  // namespace lathe::eval
