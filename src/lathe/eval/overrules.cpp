#include "lathe/eval/overrules.h"

#include <map>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"

namespace lathe::eval {

using nlohmann::json;

json load_overrules(const std::string& path) {
  json r;
  try {
    r = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("eval", "{}: not an overrules file (invalid JSON: {})", path, e.what());
  }
  if (!r.is_object() || r.value("format", "") != "lathe-eval-overrules-v1" || !r.contains("overrules") ||
      !r["overrules"].is_array())
    fail("eval", "{}: not an overrules file (expected \"format\": \"lathe-eval-overrules-v1\" and an \"overrules\" list)", path);
  size_t i = 0;
  for (const json& o : r["overrules"]) {
    if (!o.is_object() || !o.contains("case") || !o["case"].is_string() || !o.contains("variant") ||
        !o["variant"].is_string() || !o.contains("pass") || !o["pass"].is_boolean())
      fail("eval", "{}: overrules[{}]: needs \"case\" and \"variant\" (strings) and \"pass\" (a boolean)", path, i);
    i++;
  }
  return r;
}

json apply_overrules(EvalRun& run, const json& overrules) {
  // The last entry per (case, variant) wins: the file is an append-only log of decisions.
  std::map<std::pair<std::string, std::string>, json> last;
  for (const json& o : overrules["overrules"]) last[{o["case"].get<std::string>(), o["variant"].get<std::string>()}] = o;
  std::map<std::string, size_t> case_index;
  for (size_t i = 0; i < run.suite.cases.size(); i++) case_index[run.suite.cases[i].id] = i;
  json unmatched = json::array();
  for (auto& [key, o] : last) {
    auto ci = case_index.find(key.first);
    VariantResult* v = nullptr;
    for (auto& x : run.variants)
      if (x.name == key.second) v = &x;
    if (ci == case_index.end() || !v || ci->second >= v->cases.size()) {
      unmatched.push_back(o);
      continue;
    }
    CaseOutput& co = v->cases[ci->second];
    const bool assertions_pass = co.overrule.is_null() ? co.pass : co.overrule["assertions_pass"].get<bool>();
    co.overrule = {{"pass", o["pass"]},
                   {"assertions_pass", assertions_pass},
                   {"reason", o.value("reason", "")},
                   {"reviewer", o.value("reviewer", "")},
                   {"at", o.value("at", "")}};
    co.pass = o["pass"].get<bool>();
  }
  // Everything that follows from pass/fail, as run_eval computed it.
  const auto& cases = run.suite.cases;
  for (auto& v : run.variants) {
    double wsum = 0, wpass = 0;
    v.passed = 0;
    v.tags.clear();
    for (size_t i = 0; i < cases.size() && i < v.cases.size(); i++) {
      const bool pass = v.cases[i].pass;
      v.passed += pass;
      wsum += cases[i].weight;
      wpass += cases[i].weight * pass;
      for (auto& t : cases[i].tags) {
        v.tags[t].cases++;
        v.tags[t].passed += pass;
      }
    }
    v.pass_rate = cases.empty() ? 0 : double(v.passed) / double(cases.size());
    v.weighted_pass_rate = wsum > 0 ? wpass / wsum : 0;
  }
  const VariantResult* ref = nullptr;
  for (auto& v : run.variants)
    if (v.name == run.reference) ref = &v;
  for (auto& v : run.variants) {
    v.fixed = v.broken = 0;
    if (!ref || &v == ref) continue;
    for (size_t i = 0; i < cases.size(); i++) {
      v.fixed += !ref->cases[i].pass && v.cases[i].pass;
      v.broken += ref->cases[i].pass && !v.cases[i].pass;
    }
  }
  return unmatched;
}

}  // namespace lathe::eval
