// Stage 2, map: every record becomes one canonical shape a person can read and the trainer encodes:
// {"messages":[{role,content}...]} for all conversational shapes (messages, ShareGPT, Alpaca,
// prompt/completion, question/answer — converted by lathe::record_messages so `lathe train` on raw
// JSONL and a prepared dataset agree), {"text"} and {"input_ids","labels"?} unchanged.
// A field mapping renames source fields first, e.g. {"instruction": "질문", "output": "답변"} turns a
// CSV with columns 질문/답변 into Alpaca; nested fields are addressed with dots ("meta.question").
#pragma once
#include <map>
#include <optional>
#include <string>

#include "lathe/data/record.h"
#include "lathe/records/record_shape.h"

namespace lathe::data {

struct MappingOptions {
  std::map<std::string, std::string> fields;  // target field → source field
  std::string stratify_by;                    // field kept aside for stratified splitting
  std::string system_prompt;                  // added as a system message when a conversation has none
};

// Maps one record in place; returns the drop reason on failure ("no known shape (fields: a, b)" or
// the conversion error). `shape`, when given, receives the shape detected (after field mapping).
std::optional<std::string> map_record(Record& r, const MappingOptions& o, RecordShape* shape = nullptr);
void map_records(std::vector<Record>& records, const MappingOptions& o, StageCounts& counts,
                 std::map<std::string, size_t>& shapes);

}  // namespace lathe::data
