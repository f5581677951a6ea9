// The report's decision box: tune, prompt or retrieve? Among the variants of one evaluation it names
// the one that passes the gate at the lowest cost per answer, overall and per tag, and lists the
// cases only retrieval fixes and those only tuning fixes.
//
// Cost per answer is the tokens the model processes for it (prompt tokens + generated tokens, mean
// over the cases), then latency: a longer prompt (few-shot examples, retrieved passages) is paid on
// every request, a tuned adapter once at training time. Without a min_pass_rate gate the candidates
// are the variants with the highest pass rate. "Only retrieval fixes": the base fails, `rag` passes
// and no adapter without retrieval passes; "only tuning fixes": the base fails, some adapter without
// retrieval passes and `rag` fails.
#pragma once
#include <nlohmann/json.hpp>

#include "lathe/eval/runner.h"

namespace lathe::eval {

nlohmann::ordered_json decision_json(const EvalRun& run, const Gates& gates);

// Later rounds of an adapter (a preference round on top of the supervised one, say): an adapter
// variant named PARENT+SUFFIX, where PARENT is another adapter variant of the run, is a round of
// PARENT (`tuned+dpo` of `tuned`; the longest such PARENT when several fit); with retrieval,
// PARENT+SUFFIX+rag is likewise a round of PARENT+rag. Per round: the cases it fixed (PARENT fails,
// the round passes) and broke (the reverse), overall and per tag, in suite order. decision_json
// puts them under "feedback_rounds".
nlohmann::ordered_json feedback_rounds_json(const EvalRun& run);

}  // namespace lathe::eval
