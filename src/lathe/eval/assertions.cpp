#include "lathe/eval/assertions.h"

#include <oniguruma.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/eval/text_metrics.h"

namespace lathe::eval {

namespace {

const char* kTypes[] = {"equals", "contains",    "icontains", "contains-any", "contains-all", "starts-with", "regex",
                        "is-json", "rouge-l",    "chrf",      "levenshtein",  "length",       "numeric"};

std::string base_type(const std::string& t, bool* negated) {
  *negated = t.rfind("not-", 0) == 0;
  return *negated ? t.substr(4) : t;
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// Oniguruma, Perl syntax, UTF-8: Unicode classes such as [가-힣] or \p{Hangul} work on characters.
class PatternMatcher {
 public:
  PatternMatcher(const std::string& pattern, std::string* error) {
    static std::once_flag once;
    std::call_once(once, [] {
      OnigEncoding enc = ONIG_ENCODING_UTF8;
      onig_initialize(&enc, 1);
    });
    OnigErrorInfo einfo;
    const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
    int r = onig_new(&re_, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_PERL, &einfo);
    if (r != ONIG_NORMAL) {
      OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(msg, r, &einfo);
      re_ = nullptr;
      *error = reinterpret_cast<const char*>(msg);
    }
  }
  ~PatternMatcher() {
    if (re_) onig_free(re_);
  }
  PatternMatcher(const PatternMatcher&) = delete;
  PatternMatcher& operator=(const PatternMatcher&) = delete;
  bool ok() const { return re_ != nullptr; }
  bool search(std::string_view s) const {
    OnigRegion* region = onig_region_new();
    const auto* str = reinterpret_cast<const OnigUChar*>(s.data());
    int r = onig_search(re_, str, str + s.size(), str, str + s.size(), region, ONIG_OPTION_NONE);
    onig_region_free(region, 1);
    return r >= 0;
  }

 private:
  ::OnigRegex re_ = nullptr;
};

double default_threshold(const std::string& t) {
  if (t == "rouge-l") return 0.75;  // promptfoo's rouge-n default
  if (t == "chrf") return 0.5;
  if (t == "levenshtein") return 5;  // promptfoo's default max distance
  return 0;
}

std::string value_string(const Assertion& a, const std::string& expected) {
  if (a.value.is_null()) return expected;
  if (a.value.is_string()) return a.value.get<std::string>();
  return a.value.dump();
}

std::vector<std::string> value_list(const Assertion& a, const std::string& expected) {
  std::vector<std::string> out;
  if (a.value.is_array()) {
    for (auto& v : a.value) out.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  } else {
    out.push_back(value_string(a, expected));
  }
  return out;
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

std::string json_type_name(const nlohmann::json& v) {
  if (v.is_object()) return "object";
  if (v.is_array()) return "array";
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "boolean";
  if (v.is_null()) return "null";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  return "number";
}

bool type_ok(const nlohmann::json& v, const std::string& t) {
  std::string n = json_type_name(v);
  return n == t || (t == "number" && n == "integer") ||
         (t == "integer" && v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
}

// First number in the text: optional sign, digits with optional thousands commas, optional fraction.
bool first_number(std::string_view s, double* out) {
  for (size_t i = 0; i < s.size(); i++) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) continue;
    size_t b = i;
    if (b > 0 && (s[b - 1] == '-' || s[b - 1] == '+')) b--;
    std::string num;
    if (s[b] == '-') num.push_back('-');
    size_t j = i;
    while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) ||
                            (s[j] == ',' && j + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[j + 1]))))) {
      if (s[j] != ',') num.push_back(s[j]);
      j++;
    }
    if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
      num.push_back('.');
      j++;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) num.push_back(s[j++]);
    }
    *out = std::strtod(num.c_str(), nullptr);
    return true;
  }
  return false;
}

size_t word_count(std::string_view s) {
  size_t n = 0;
  bool in = false;
  for (char32_t c : utf8_code_points(s)) {
    bool sp = is_unicode_space(c);
    if (!sp && !in) n++;
    in = !sp;
  }
  return n;
}

}  // namespace

bool is_known_assertion_type(const std::string& type) {
  bool neg;
  std::string t = base_type(type, &neg);
  return std::find(std::begin(kTypes), std::end(kTypes), t) != std::end(kTypes);
}

static bool schema_check(const nlohmann::json& x, const nlohmann::json& s, const std::string& path, std::string* why) {
  if (!s.is_object()) return true;
  if (s.contains("type")) {
    std::vector<std::string> types;
    for (auto& t : s["type"].is_array() ? s["type"] : nlohmann::json::array({s["type"]}))
      if (t.is_string()) types.push_back(t.get<std::string>());
    if (!std::any_of(types.begin(), types.end(), [&](const std::string& t) { return type_ok(x, t); })) {
      *why = path + ": expected " + s["type"].dump() + ", got " + json_type_name(x);
      return false;
    }
  }
  if (s.contains("enum") && s["enum"].is_array() && std::find(s["enum"].begin(), s["enum"].end(), x) == s["enum"].end()) {
    *why = path + ": " + x.dump() + " is not one of " + s["enum"].dump();
    return false;
  }
  if (x.is_object()) {
    if (s.contains("required") && s["required"].is_array())
      for (auto& k : s["required"])
        if (k.is_string() && !x.contains(k.get<std::string>())) {
          *why = path + ": missing required key \"" + k.get<std::string>() + "\"";
          return false;
        }
    if (s.contains("properties") && s["properties"].is_object())
      for (auto& [k, sub] : s["properties"].items())
        if (x.contains(k) && !schema_check(x[k], sub, path + "." + k, why)) return false;
  }
  if (x.is_array() && s.contains("items"))
    for (size_t i = 0; i < x.size(); i++)
      if (!schema_check(x[i], s["items"], path + "[" + std::to_string(i) + "]", why)) return false;
  return true;
}

bool json_matches_schema(const nlohmann::json& v, const nlohmann::json& schema, std::string* why) {
  return schema_check(v, schema, "$", why);
}

void validate_assertion(const Assertion& a, bool has_expected) {
  bool neg;
  std::string t = base_type(a.type, &neg);
  if (!is_known_assertion_type(a.type))
    fail("eval", "{}: unknown assertion type '{}' (equals, contains, icontains, contains-any, contains-all, "
                 "not-contains, starts-with, regex, is-json, rouge-l, chrf, levenshtein, length, numeric; "
                 "any with a not- prefix)", a.where, a.type);
  bool needs_value = t != "is-json" && t != "length";
  if (needs_value && a.value.is_null() && !has_expected)
    fail("eval", "{}: assertion '{}' needs a value (or the case's expected)", a.where, a.type);
  if ((t == "contains-any" || t == "contains-all") && !a.value.is_null() && !a.value.is_array())
    fail("eval", "{}: assertion '{}' needs a list of strings as value", a.where, a.type);
  if (t == "numeric") {
    double d;
    bool ok = a.value.is_number() || (a.value.is_null() && has_expected) ||
              (a.value.is_string() && first_number(a.value.get<std::string>(), &d));
    if (!ok) fail("eval", "{}: assertion 'numeric' needs a number as value", a.where);
  }
  if (t == "length" && a.min < 0 && a.max < 0) fail("eval", "{}: assertion 'length' needs min and/or max", a.where);
  if (t == "regex" && a.value.is_string()) {
    std::string err;
    PatternMatcher re(a.value.get<std::string>(), &err);
    if (!re.ok()) fail("eval", "{}: regex '{}': {}", a.where, a.value.get<std::string>(), err);
  }
  if (!a.unit.empty() && a.unit != "word" && a.unit != "char")
    fail("eval", "{}: unit must be word or char, got '{}'", a.where, a.unit);
}

AssertionResult evaluate_assertion(const Assertion& a, std::string_view output, const std::string& expected) {
  bool neg;
  std::string t = base_type(a.type, &neg);
  AssertionResult r;
  r.type = a.type;
  double thr = a.threshold >= 0 ? a.threshold : default_threshold(t);
  auto set = [&](bool pass, double score, std::string detail) {
    r.pass = pass;
    r.score = score;
    r.detail = std::move(detail);
  };
  if (t == "equals") {
    std::string v = value_string(a, expected);
    bool eq = trim(output) == trim(v);
    set(eq, eq, eq ? "equal" : "differs");
  } else if (t == "contains" || t == "icontains") {
    auto list = value_list(a, expected);
    std::string out = t == "icontains" ? unicode_lower(output) : std::string(output);
    const std::string* hit = nullptr;
    for (auto& v : list)
      if (contains(out, t == "icontains" ? unicode_lower(v) : v)) {
        hit = &v;
        break;
      }
    set(hit != nullptr, hit != nullptr, hit ? "found \"" + *hit + "\"" : "not found");
  } else if (t == "contains-any" || t == "contains-all") {
    auto list = value_list(a, expected);
    size_t found = 0;
    std::string missing;
    for (auto& v : list) {
      if (contains(output, v))
        found++;
      else
        missing += (missing.empty() ? "" : ", ") + ("\"" + v + "\"");
    }
    if (t == "contains-any")
      set(found > 0, found > 0, fmt::format("{} of {} found", found, list.size()));
    else
      set(found == list.size(), list.empty() ? 1.0 : double(found) / double(list.size()),
          missing.empty() ? "all found" : "missing " + missing);
  } else if (t == "starts-with") {
    std::string v = value_string(a, expected);
    bool ok = trim(output).rfind(trim(v), 0) == 0;
    set(ok, ok, ok ? "starts with it" : "does not start with it");
  } else if (t == "regex") {
    std::string err;
    PatternMatcher re(value_string(a, expected), &err);
    if (!re.ok()) {
      set(false, 0, "bad regex: " + err);
    } else {
      bool m = re.search(output);
      set(m, m, m ? "matched" : "no match");
    }
  } else if (t == "is-json") {
    nlohmann::json j;  // model output: deep nesting must not reach the recursive schema check
    if (!try_parse_json_bounded(trim(output), j)) {
      set(false, 0, "not valid JSON");
    } else {
      std::string why;
      bool ok = a.schema.is_null() || json_matches_schema(j, a.schema, &why);
      set(ok, ok, ok ? "valid JSON" : "schema: " + why);
    }
  } else if (t == "rouge-l") {
    double f = rouge_l(output, value_string(a, expected), a.unit == "char");
    set(f >= thr, f, fmt::format("ROUGE-L {:.3f} {} {:.3f}", f, f >= thr ? ">=" : "<", thr));
  } else if (t == "chrf") {
    double f = chrf(output, value_string(a, expected));
    set(f >= thr, f, fmt::format("chrF {:.3f} {} {:.3f}", f, f >= thr ? ">=" : "<", thr));
  } else if (t == "levenshtein") {
    std::string v = value_string(a, expected);
    int64_t d = levenshtein(trim(output), trim(v));
    double longest = double(std::max(utf8_code_points(trim(output)).size(), utf8_code_points(trim(v)).size()));
    set(double(d) <= thr, longest == 0 ? 1.0 : 1.0 - double(d) / longest,
        fmt::format("distance {} {} {}", d, double(d) <= thr ? "<=" : ">", thr));
  } else if (t == "length") {
    int64_t n = a.unit == "word" ? int64_t(word_count(output)) : int64_t(utf8_code_points(output).size());
    bool ok = (a.min < 0 || n >= a.min) && (a.max < 0 || n <= a.max);
    set(ok, ok, fmt::format("{} {}{}", n, a.unit == "word" ? "words" : "characters", ok ? "" : " (out of bounds)"));
  } else if (t == "numeric") {
    double want = 0, got = 0;
    if (a.value.is_number())
      want = a.value.get<double>();
    else
      first_number(value_string(a, expected), &want);
    if (!first_number(output, &got)) {
      set(false, 0, "no number in output");
    } else {
      bool ok = std::fabs(got - want) <= a.tolerance;
      set(ok, ok, fmt::format("{} vs {} (tolerance {})", got, want, a.tolerance));
    }
  }
  if (neg) {
    r.pass = !r.pass;
    r.score = 1.0 - r.score;
    r.detail = "not: " + r.detail;
  }
  return r;
}

}  // namespace lathe::eval
