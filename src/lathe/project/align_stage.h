// The align stage's data (docs/project.md, "align"): the preference records of align.data (and of the
// feedback exported from a server's --data-dir) gathered into one JSONL file for `lathe train`, after
// the check the prepare stage applies to supervised data: a record whose prompt equals, contains or
// nearly repeats an evaluation prompt is dropped (data.dedup.contamination_action: drop, the default)
// or only reported (report), so the round is scored on questions it did not train on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/data/dedup.h"
#include "lathe/project/project_config.h"

namespace lathe::project {

// The prompts the project evaluates on: every user turn of every case of its eval suite (eval.suite
// or the inline suite). Empty without an eval: section.
std::vector<std::string> project_eval_prompts(const ProjectConfig& cfg);

// data.dedup's threshold and ngram (the prepare stage's near-duplicate settings) and its
// contamination_action; the data layer's defaults where the project sets none.
struct ContaminationPolicy {
  data::MinHashOptions minhash;
  std::string action = "drop";  // drop | report
};
ContaminationPolicy project_contamination_policy(const ProjectConfig& cfg);

struct AlignDataSummary {
  struct Source {
    std::string file;
    int64_t records = 0, kept = 0;
  };
  std::vector<Source> sources;
  int64_t records = 0, kept = 0, contaminated = 0, pretokenized = 0;
  // "FILE:LINE: matches eval prompt "..."" for the first few contaminated records.
  std::vector<std::string> examples;
};

// Reads each file (JSONL, one preference record a line: {"prompt","chosen","rejected"},
// {"chosen","rejected"}, {"prompt","completion","label"} or their *_input_ids forms), checks that
// each record has one of those shapes and that DPO/ORPO get pairs (errors name FILE:LINE), applies
// `policy` against `eval_prompts` and writes the records that stay, byte for byte, to `output`.
// Pre-tokenized records carry no text to compare and are counted, not checked. `names` are the
// files as messages show them (project-relative), parallel to `files`.
AlignDataSummary gather_align_data(const std::vector<std::string>& files, const std::vector<std::string>& names,
                                   const std::string& method, const std::vector<std::string>& eval_prompts,
                                   const ContaminationPolicy& policy, const std::string& output);

// Prints what was gathered (records per file, the contaminated ones) and writes it as JSON to `path`
// (OUTPUT_DIR/align_data/report.json).
void report_align_data(const AlignDataSummary& sum, const ContaminationPolicy& policy, const std::string& path);

}  // namespace lathe::project
