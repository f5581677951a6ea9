// Reviewers' verdicts that overrule the assertions of a case for one variant (the `lathe ui` eval
// review page writes them to PROJECT/review/eval_overrules.json; `lathe eval --overrules FILE`
// applies them). An overruled case counts as the reviewer said in every number that follows from
// pass/fail — passed, pass rates, tags, fixed/broken, the decision and the gates — and the report
// shows the overrule (who, why, what the assertions said) next to the case.
//
// File format (JSON): {"format": "lathe-eval-overrules-v1", "overrules": [{"case": ID, "variant": NAME,
// "pass": true|false, "reason": "...", "reviewer": "...", "at": ISO time}, ...]}; a later entry for
// the same case and variant replaces an earlier one.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "lathe/eval/runner.h"

namespace lathe::eval {

// Reads and checks the file; errors name it and the entry ("[eval] F: overrules[3]: ...").
nlohmann::json load_overrules(const std::string& path);

// Applies them to `run` and recomputes what depends on pass/fail. Entries naming a case or variant
// the run does not have are returned (as the entries), so the caller can warn; they change nothing.
nlohmann::json apply_overrules(EvalRun& run, const nlohmann::json& overrules);

}  // namespace lathe::eval
