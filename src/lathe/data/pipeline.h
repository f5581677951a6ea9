// `lathe data prepare`: collect → map → clean → personal data → dedup → format/tokenize → split,
// writing a prepared dataset directory (manifest.json, <split>.records.jsonl, token shards) and the
// data report (report.json, report.html). The `data:` YAML section (docs/data.md) configures it all.
#pragma once
#include <array>
#include <functional>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/data/clean.h"
#include "lathe/data/collect.h"
#include "lathe/data/mapping.h"

namespace YAML {
class Node;
}

namespace lathe::data {

struct PiiStageOptions {
  std::string policy = "redact";  // redact | drop | report | off
  float min_confidence = 0.5f;
  std::vector<std::string> types;  // empty = all
  std::string ip_ranges = "all";   // all | public | private (which IP addresses count; see pii.h IpRanges)
};

struct DedupStageOptions {
  bool exact = true;
  bool near = true;
  std::string near_action = "drop";  // drop | keep (kept clusters still never straddle splits)
  double threshold = 0.7;
  int ngram = 5;
  std::vector<std::string> eval_prompts;     // files (JSONL/JSON/CSV/text) whose prompts must not leak
  std::string contamination_action = "drop";  // drop | report
  // Preference records: what makes two records duplicates. pair: the prompt and every answer (and a
  // KTO label) match, so several pairs of one prompt survive; prompt: the prompt alone, one record per
  // prompt. Records that share a prompt always land in the same split.
  std::string preference_key = "pair";  // pair | prompt
};

struct FormatOptions {
  std::string model;           // HF dir or .gguf; empty = no tokenization (no shards)
  std::string chat_template;   // built-in name or .jinja path; "" = the model's
  int max_seq_length = 2048;
  bool train_on_inputs = false;
  std::string truncation = "truncate";  // truncate | drop
  bool packing = false;
  size_t min_tokens = 0;       // sequences shorter than this are dropped
  std::string system_prompt;
};

struct SplitOptions {
  std::array<double, 3> ratios{0.9, 0.05, 0.05};  // train, validation, test
  uint64_t seed = 42;
  std::string stratify_by;
};

struct DataConfig {
  std::vector<std::string> inputs;
  std::string output;
  std::string review;  // a reviewer's decisions (review_stage.h); "" = none
  bool strict = false;
  // What `lathe data prepare` may hold in memory beyond the per-record state (bytes; "" / 0 = the
  // default: a quarter of the RAM, at most 1 GiB). finish_data_config parses max_memory into
  // max_memory_bytes. It changes how the work is staged, never the outputs.
  std::string max_memory;
  uint64_t max_memory_bytes = 0;
  CollectOptions collect;
  MappingOptions mapping;
  CleanOptions clean;
  PiiStageOptions pii;
  DedupStageOptions dedup;
  FormatOptions format;
  SplitOptions split;
  nlohmann::json to_json() const;
};

// Reads a `data:` mapping (or a file whose top level has `data:`); unknown keys are errors naming
// the key. Relative paths are resolved against `base_dir`.
DataConfig parse_data_config(const YAML::Node& node, const std::string& where, const std::string& base_dir = "");
DataConfig load_data_config(const std::string& path);

// Split per record (0 train, 1 validation, 2 test): groups (near-duplicate clusters, or single
// records) are ordered by a hash of (seed, group id) within each stratum and cut by the ratios, so
// the result depends only on the seed, ratios and record ids, and a cluster never straddles splits.
// The one split with a share of the records (0 train, 1 validation, 2 test), or -1 when several have.
int only_split(const SplitOptions& o);
std::vector<int> assign_splits(const std::vector<Record>& records, const SplitOptions& o);
// The same over n records given by their id, stratum and cluster (-1: none); the references returned
// must stay valid while the call runs.
std::vector<int> assign_splits(size_t n, const std::function<const std::string&(size_t)>& id_of,
                               const std::function<const std::string&(size_t)>& stratum_of,
                               const std::function<int64_t(size_t)>& cluster_of, const SplitOptions& o);

// Runs every stage and writes the output directory; returns report.json's content. Under mpirun
// (several ranks) the per-record stages run on shares of the input files, rank 0 runs the others and
// writes the same directory one process writes, and the other ranks return null (docs/data.md).
nlohmann::json run_pipeline(const DataConfig& cfg);

// Renders report.json as a self-contained HTML page (inline SVG charts, no scripts, no CDN).
std::string render_report_html(const nlohmann::json& report);

}  // namespace lathe::data
