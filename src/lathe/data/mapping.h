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

// Preference records (record_shape.h: TRL's {"prompt","chosen","rejected"}, implicit-prompt
// {"chosen","rejected"}, KTO's {"prompt","completion","label"} and their pre-tokenized forms) become
// their stored form, lathe::preference_record: only the shape's fields, the prompt explicit, strings
// kept strings and message lists kept lists; `system_prompt` is added to message-list prompts.
//
// Maps one record in place; returns the drop reason on failure ("no known shape (fields: a, b)" or
// the conversion error). `shape`, when given, receives the shape detected (after field mapping), and
// `pref` its preference shape (None for SFT shapes).
std::optional<std::string> map_record(Record& r, const MappingOptions& o, RecordShape* shape = nullptr,
                                      PreferenceShape* pref = nullptr);

// What the records of one preparation are: SFT records, or paired (DPO/ORPO) or unpaired (KTO)
// preference records. Never several: a prepared dataset trains one way.
enum class DatasetKind { Sft, Paired, Unpaired };
const char* dataset_kind_name(DatasetKind k);  // "sft", "paired", "unpaired"

// Maps every record; drops are counted in `counts`, shapes seen in `shapes`. Returns the kind of the
// records (Sft when none has a known shape). Throws "[data] FILE:LINE: ..." naming the first record
// whose kind differs from the first record's (records of no known shape are dropped, not counted).
//
// `seen`, when given, receives the first record's kind and position (none when no record has a known
// shape): a job whose files are spread over processes checks the kinds of its parts with merge_kinds.
struct KindSeen {
  std::optional<DatasetKind> kind;
  std::string first;  // where the first record of `kind` is
};
DatasetKind map_records(std::vector<Record>& records, const MappingOptions& o, StageCounts& counts,
                        std::map<std::string, size_t>& shapes, KindSeen* seen = nullptr);
// The kind of records `into` followed by records `next`: throws the error map_records throws on one
// process when `next`'s kind differs from `into`'s.
void merge_kinds(KindSeen& into, const KindSeen& next);

}  // namespace lathe::data
