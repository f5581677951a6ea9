// The files the workbench's review pages read and write in a project. Sources are never edited:
//  - PROJECT/review/data.json (data/review_stage.h): a decision per record id, applied by the next
//    `lathe run`'s prepare stage (its fingerprint covers the file);
//  - PROJECT/review/eval_overrules.json (eval/overrules.h): reviewers' verdicts, applied by the next
//    eval (`lathe eval --overrules`), which shows them in its report.
// Writes are atomic (temporary file + rename) and serialized by the caller.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "lathe/project/stage_runner.h"

namespace lathe::ui {

// The prepared records (every split's records.jsonl) with their split and source position, the
// data report's drop reasons, personal-data findings and duplicate examples, and the decisions.
// {"prepared": bool, "records": [{"id","split","where","record"}], "report": {...}, "decisions": {...}}
nlohmann::json data_review_view(const project::ProjectPaths& p, size_t max_records = 5000);

// Adds (or replaces) the decision for record `id` and writes the file. `body` is the page's request:
// {"id", "action": approve|edit|reject|label, "record"? (edit), "labels"?, "reason"?}; throws
// lathe::Error("[ui] ...") naming the field when it is malformed. Returns the stored decision.
nlohmann::json save_data_decision(const project::ProjectPaths& p, const nlohmann::json& body, const std::string& reviewer);
// Removes the decision for `id` (undo); false when there was none.
bool remove_data_decision(const project::ProjectPaths& p, const std::string& id);

// The eval report's variants and cases, with the overrules on file (applied or not yet).
nlohmann::json eval_review_view(const project::ProjectPaths& p);
// Appends an overrule {"case","variant","pass","reason"}; the reason is required.
nlohmann::json save_overrule(const project::ProjectPaths& p, const nlohmann::json& body, const std::string& reviewer);

}  // namespace lathe::ui
