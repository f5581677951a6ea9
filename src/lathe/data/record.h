// Records as they travel through `lathe data prepare`: the JSON a person will read in records.jsonl,
// where it came from (file plus line, page or array item, so every drop can be traced back), and the
// per-stage accounting that lets the report reconcile records in = kept + dropped by reason.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/records/record_shape.h"

namespace lathe::data {

struct Source {
  std::string file;
  int64_t line = 0;  // 1-based line (JSONL, CSV, text chunks); 0 when not line-based
  int64_t page = 0;  // 1-based PDF page; 0 otherwise
  int64_t item = 0;  // 1-based element of a JSON array; 0 otherwise
  std::string where() const;  // "file:12", "file page 3", "file item 7"
  nlohmann::json to_json() const;
};

struct Record {
  nlohmann::json json;  // after mapping: {"messages"}, {"text"} or {"input_ids","labels"}
  Source source;
  std::string id;       // stable hex id from the source position
  std::string stratum;  // value of split.stratify_by, read before mapping
  int64_t cluster = -1; // near-duplicate cluster (index of its first member) when duplicates are kept
};

// One stage's accounting. `in` = out + sum(dropped); examples keep a few (where, detail) per reason.
struct StageCounts {
  StageCounts() = default;
  explicit StageCounts(std::string name) : stage(std::move(name)) {}
  std::string stage;
  size_t in = 0, out = 0;
  std::map<std::string, size_t> dropped;
  std::map<std::string, std::vector<std::string>> examples;
  void drop(const std::string& reason, const std::string& example, size_t max_examples = 5);
  bool reconciles() const;
  nlohmann::json to_json() const;
};

// The texts of a record (record_text, record_answer, for_each_text) are the records layer's
// (lathe/records/record_shape.h), the same for every reader of a prepared record.

std::string hex64(uint64_t v);

}  // namespace lathe::data
