// Assertions on one generated output, named as promptfoo names them where it has the type.
// Each gives pass/fail and a score in [0, 1]; a "not-" prefix on any type inverts pass and
// uses 1 - score (promptfoo's convention), e.g. not-regex, not-icontains.
//
// type           value (when absent: the case's `expected`)      pass when                     score
// equals         string                                          output == value (both trimmed) 1/0
// contains       string                                          value occurs in output         1/0
// icontains      string                                          same, Unicode-lowercased       1/0
// contains-any   list of strings                                 any occurs                     1/0
// contains-all   list of strings                                 all occur                      fraction found
// not-contains   string or list                                  none occurs                    1/0
// starts-with    string                                          trimmed output starts with it  1/0
// regex          pattern (Oniguruma, Perl syntax, UTF-8)         a match exists                 1/0
// is-json        optional `schema` (subset, see below)           output (trimmed) is JSON       1/0
// rouge-l        reference string; threshold (default 0.75);     F >= threshold                 F
//                `unit: word|char` (default word)
// chrf           reference string; threshold (default 0.5)       chrF >= threshold              chrF
// levenshtein    string; threshold = max distance (default 5)    distance <= threshold          1 - d/max(len)
// length         `min` and/or `max` code points (or `unit: word`) within bounds                1/0
// numeric        number; `tolerance` (default 0)                 first number in output is      1/0
//                                                                within tolerance of value
// JSON-schema subset: type (object, array, string, number, integer, boolean, null, or a list of
// them), required, properties (recursively), items, enum.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace lathe::eval {

struct Assertion {
  std::string type;                 // as written, possibly with "not-"
  nlohmann::json value;             // null when absent
  nlohmann::json schema;            // is-json only; null when absent
  double threshold = -1;            // < 0: the type's default
  double tolerance = 0;             // numeric
  int64_t min = -1, max = -1;       // length; -1 = unbounded
  std::string unit;                 // rouge-l: word|char; length: char|word
  double weight = 1;                // weight in the case score
  std::string where;                // "file:line" for messages
};

struct AssertionResult {
  std::string type;
  bool pass = false;
  double score = 0;
  std::string detail;  // what was compared, e.g. "chrF 0.62 < 0.70"
};

// Throws lathe::Error("[eval] WHERE: ...") for an unknown type or a missing/ill-typed value. Checks
// the regex compiles. `has_expected` says whether the case gives `expected` as the default value.
void validate_assertion(const Assertion& a, bool has_expected);
AssertionResult evaluate_assertion(const Assertion& a, std::string_view output, const std::string& expected);

// True when `type` (without "not-") is one of the types above.
bool is_known_assertion_type(const std::string& type);

// Checks `v` against the schema subset; on failure *why says where ("$.items[2]: expected string").
bool json_matches_schema(const nlohmann::json& v, const nlohmann::json& schema, std::string* why);

}  // namespace lathe::eval
