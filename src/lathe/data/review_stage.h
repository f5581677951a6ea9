// A reviewer's decisions on prepared records (the `lathe ui` data review page writes them to
// PROJECT/review/data.json; `lathe data prepare --review FILE` applies them). The sources are never
// edited: the decisions are a stage of the pipeline, after personal data, so the next prepare drops
// the rejected records, replaces the edited ones and counts the approved and labelled ones, and the
// review file's content is part of the prepare stage's fingerprint in `lathe run`.
//
// File format (JSON): {"format": "lathe-data-review-v1", "decisions": {ID: DECISION}} where ID is a
// record's `_id` in <split>.records.jsonl and DECISION is
//   {"action": "approve" | "edit" | "reject" | "label", "record": {...} (edit: the mapped record,
//    e.g. {"messages": [...]}), "labels": ["..."], "reason": "...", "reviewer": "...", "at": ISO time}
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/data/record.h"

namespace lathe::data {

// Reads and checks a review file; errors name the file and the record id ("[data] F: decision ID: ...").
nlohmann::json load_review(const std::string& path);

// Applies the decisions to `recs` (dropping rejected ones as "rejected by reviewer"); `summary` gets
// {"file", "decisions", "approved", "edited", "rejected", "labelled", "labels": {LABEL: count},
// "unmatched": ids of decisions that matched no record (their record was dropped earlier or its
// source changed)}.
// `edited` (when given) gets one flag per surviving record: 1 where an edit replaced it (its text has
// not been through cleaning and personal-data detection; the pipeline runs those on it next).
StageCounts review_stage(std::vector<Record>& recs, const nlohmann::json& review, const std::string& path,
                         nlohmann::json& summary, std::vector<char>* edited = nullptr);

}  // namespace lathe::data
