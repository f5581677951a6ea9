#include "lathe/eval/test_suite.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/records/record_shape.h"

namespace lathe::eval {

namespace {

std::string at_line(const std::string& origin, const YAML::Node& n) {
  return origin + ":" + std::to_string(n.Mark().line + 1);
}

// YAML -> JSON. Plain (unquoted) scalars become numbers, booleans or null when they read as such
// (YAML 1.2 core schema); quoted scalars stay strings.
nlohmann::json yaml_to_json(const YAML::Node& n, const std::string& origin) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& x : n) a.push_back(yaml_to_json(x, origin));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) {
        // A complex key (`? [a, b] : x`, `{a: 1}: x`) is valid YAML but names no field: an error with
        // its line, never yaml-cpp's bad-conversion exception (found by fuzz_project_yaml).
        if (!kv.first.IsScalar())
          fail("eval", "{}: a mapping key must be a plain name, not a list or mapping", at_line(origin, kv.first));
        o[kv.first.Scalar()] = yaml_to_json(kv.second, origin);
      }
      return o;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& s = n.Scalar();
  if (n.Tag() == "?") {
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    if (!s.empty()) {
      char* end = nullptr;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (*end == '\0') return i;
      double d = std::strtod(s.c_str(), &end);
      if (*end == '\0') return d;
    }
  }
  return s;
}

std::string get_string(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return "";
  if (!j[key].is_string()) fail("eval", "{}: '{}' must be a string, got {}", where, key, j[key].dump());
  return j[key].get<std::string>();
}

double get_number(const nlohmann::json& j, const char* key, double def, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number()) fail("eval", "{}: '{}' must be a number, got {}", where, key, j[key].dump());
  return j[key].get<double>();
}

void check_keys(const nlohmann::json& j, std::initializer_list<const char*> allowed, const std::string& where,
                const char* what) {
  for (auto& [k, v] : j.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      fail("eval", "{}: unknown key '{}' in {} (allowed: {})", where, k, what, list);
    }
  }
}

Assertion assertion_from_json(const nlohmann::json& j, const std::string& where, bool has_expected) {
  if (!j.is_object()) fail("eval", "{}: an assertion must be a mapping with a 'type', got {}", where, j.dump());
  check_keys(j, {"type", "value", "threshold", "tolerance", "min", "max", "unit", "schema", "weight"}, where,
             "an assertion");
  Assertion a;
  a.where = where;
  a.type = get_string(j, "type", where);
  if (a.type.empty()) fail("eval", "{}: assertion without a 'type'", where);
  if (j.contains("value")) a.value = j["value"];
  if (j.contains("schema")) {
    if (!j["schema"].is_object()) fail("eval", "{}: 'schema' must be a mapping", where);
    a.schema = j["schema"];
  }
  a.threshold = get_number(j, "threshold", -1, where);
  a.tolerance = get_number(j, "tolerance", 0, where);
  a.min = int64_t(get_number(j, "min", -1, where));
  a.max = int64_t(get_number(j, "max", -1, where));
  a.unit = get_string(j, "unit", where);
  a.weight = get_number(j, "weight", 1, where);
  if (a.weight < 0) fail("eval", "{}: weight must be >= 0", where);
  validate_assertion(a, has_expected);
  return a;
}

EvalCase case_from_json_impl(const nlohmann::json& j, const std::string& where,
                             const std::vector<std::string>* assert_wheres) {
  if (!j.is_object()) fail("eval", "{}: a test case must be an object", where);
  check_keys(j, {"id", "prompt", "messages", "system", "expected", "assert", "tags", "weight", "source"}, where,
             "a test case");
  EvalCase c;
  c.where = where;
  if (j.contains("id")) c.id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
  c.prompt = get_string(j, "prompt", where);
  c.system = get_string(j, "system", where);
  c.source = get_string(j, "source", where);
  if (j.contains("expected") && !j["expected"].is_null()) {
    c.expected = j["expected"].is_string() ? j["expected"].get<std::string>() : j["expected"].dump();
    c.has_expected = true;
  }
  if (j.contains("messages")) {
    const auto& m = j["messages"];
    if (!m.is_array() || m.empty()) fail("eval", "{}: 'messages' must be a non-empty list", where);
    for (size_t i = 0; i < m.size(); i++) {
      if (!m[i].is_object() || !m[i].contains("role") || !m[i]["role"].is_string() || !m[i].contains("content") ||
          !m[i]["content"].is_string())
        fail("eval", "{}: messages[{}] must be {{role, content}} with string values", where, i);
    }
    if (m.back()["role"] != "user") fail("eval", "{}: the last message must be a user turn", where);
    c.messages = record_to_messages(j, RecordShape::Messages);  // value for value, as training reads them
  }
  if (c.prompt.empty() == c.messages.is_null())
    fail("eval", "{}: give exactly one of 'prompt' or 'messages'", where);
  if (j.contains("tags")) {
    if (!j["tags"].is_array()) fail("eval", "{}: 'tags' must be a list of strings", where);
    for (auto& t : j["tags"]) {
      if (!t.is_string()) fail("eval", "{}: 'tags' must be a list of strings", where);
      c.tags.push_back(t.get<std::string>());
    }
  }
  c.weight = get_number(j, "weight", 1, where);
  if (c.weight < 0) fail("eval", "{}: weight must be >= 0", where);
  if (j.contains("assert")) {
    const auto& a = j["assert"];
    if (!a.is_array()) fail("eval", "{}: 'assert' must be a list", where);
    for (size_t i = 0; i < a.size(); i++) {
      std::string w = assert_wheres && i < assert_wheres->size() ? (*assert_wheres)[i] : where;
      c.asserts.push_back(assertion_from_json(a[i], w, c.has_expected));
    }
  }
  if (c.asserts.empty()) {
    if (!c.has_expected) fail("eval", "{}: a case needs 'expected' or at least one assertion", where);
    Assertion eq;
    eq.type = "equals";
    eq.where = where;
    c.asserts.push_back(eq);
  }
  return c;
}

void finish_cases(std::vector<EvalCase>& cases, const std::string& origin) {
  std::map<std::string, std::string> seen;
  for (size_t i = 0; i < cases.size(); i++) {
    if (cases[i].id.empty()) cases[i].id = "case-" + std::to_string(i + 1);
    auto [it, fresh] = seen.emplace(cases[i].id, cases[i].where);
    if (!fresh) fail("eval", "{}: duplicate case id '{}' (first at {})", cases[i].where, cases[i].id, it->second);
  }
  if (cases.empty()) fail("eval", "{}: no test cases", origin);
}

}  // namespace

EvalCase case_from_json(const nlohmann::json& j, const std::string& where) {
  return case_from_json_impl(j, where, nullptr);
}

std::vector<EvalCase> parse_cases_jsonl(const std::string& text, const std::string& origin) {
  std::vector<EvalCase> cases;
  JsonlTextLines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    std::string where = origin + ":" + std::to_string(lines.line());
    nlohmann::json j;
    JsonError err;
    if (!try_parse_json_bounded(line, j, &err)) fail("eval", "{}: invalid JSON: {}", where, err.message);
    cases.push_back(case_from_json(j, where));
  }
  finish_cases(cases, origin);
  return cases;
}

EvalSuite parse_suite_yaml(const std::string& text, const std::string& origin, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("eval", "{}:{}: invalid YAML: {}", origin, e.mark.line + 1, e.msg);
  }
  if (!root.IsMap()) fail("eval", "{}: the suite must be a mapping (name, generation, baseline, gates, cases)", origin);
  EvalSuite s;
  s.source = origin;
  nlohmann::json top = yaml_to_json(root, origin);
  check_keys(top, {"name", "description", "generation", "baseline", "gates", "retrieval", "cases", "cases_file"},
             at_line(origin, root), "the suite");
  s.name = get_string(top, "name", at_line(origin, root));
  if (root["generation"]) {
    std::string w = at_line(origin, root["generation"]);
    const auto& g = top["generation"];
    if (!g.is_object()) fail("eval", "{}: 'generation' must be a mapping", w);
    check_keys(g, {"max_new_tokens", "temperature", "top_k", "top_p", "seed", "stop", "template"}, w, "generation");
    auto& G = s.generation;
    G.max_new_tokens = int(get_number(g, "max_new_tokens", G.max_new_tokens, w));
    if (G.max_new_tokens < 1) fail("eval", "{}: max_new_tokens must be >= 1", w);
    G.temperature = float(get_number(g, "temperature", G.temperature, w));
    G.top_k = int(get_number(g, "top_k", G.top_k, w));
    G.top_p = float(get_number(g, "top_p", G.top_p, w));
    G.seed = uint64_t(get_number(g, "seed", 0, w));
    if (g.contains("stop")) {
      const auto& st = g["stop"];
      for (auto& x : st.is_array() ? st : nlohmann::json::array({st})) {
        if (!x.is_string() || x.get<std::string>().empty())
          fail("eval", "{}: 'stop' must be a string or a list of non-empty strings", w);
        G.stop.push_back(x.get<std::string>());
      }
    }
    std::string t = get_string(g, "template", w);
    if (!t.empty()) G.template_name = t;
  }
  if (root["baseline"]) {
    std::string w = at_line(origin, root["baseline"]);
    const auto& b = top["baseline"];
    if (!b.is_object()) fail("eval", "{}: 'baseline' must be a mapping", w);
    check_keys(b, {"system", "few_shot"}, w, "baseline");
    s.baseline.system = get_string(b, "system", w);
    if (b.contains("few_shot")) {
      if (!b["few_shot"].is_array()) fail("eval", "{}: 'few_shot' must be a list of {{prompt, response}}", w);
      for (size_t i = 0; i < b["few_shot"].size(); i++) {
        const auto& f = b["few_shot"][i];
        std::string fw = at_line(origin, root["baseline"]["few_shot"][i]);
        if (!f.is_object()) fail("eval", "{}: a few-shot example must be {{prompt, response}}", fw);
        check_keys(f, {"prompt", "response"}, fw, "a few-shot example");
        FewShot fs{get_string(f, "prompt", fw), get_string(f, "response", fw)};
        if (fs.prompt.empty() || fs.response.empty())
          fail("eval", "{}: a few-shot example needs both 'prompt' and 'response'", fw);
        s.baseline.few_shot.push_back(fs);
      }
    }
  }
  if (root["gates"]) {
    std::string w = at_line(origin, root["gates"]);
    const auto& g = top["gates"];
    if (!g.is_object()) fail("eval", "{}: 'gates' must be a mapping", w);
    check_keys(g, {"min_pass_rate", "max_forgetting"}, w, "gates");
    s.gates.min_pass_rate = get_number(g, "min_pass_rate", -1, w);
    s.gates.max_forgetting = get_number(g, "max_forgetting", -1, w);
  }
  if (root["retrieval"]) {
    std::string w = at_line(origin, root["retrieval"]);
    const auto& r = top["retrieval"];
    if (!r.is_object()) fail("eval", "{}: 'retrieval' must be a mapping (index, k, template)", w);
    check_keys(r, {"index", "k", "template"}, w, "retrieval");
    auto resolve = [&](const std::string& f) {
      std::filesystem::path p(f);
      return f.empty() || p.is_absolute() ? f : (std::filesystem::path(base_dir) / p).string();
    };
    s.retrieval.index = resolve(get_string(r, "index", w));
    s.retrieval.template_path = resolve(get_string(r, "template", w));
    double k = get_number(r, "k", s.retrieval.k, w);
    if (k < 1 || k > 50 || k != double(int(k))) fail("eval", "{}: retrieval.k must be an integer in [1, 50]", w);
    s.retrieval.k = int(k);
  }
  if (root["cases"] && root["cases_file"])
    fail("eval", "{}: give 'cases' or 'cases_file', not both", at_line(origin, root["cases_file"]));
  if (root["cases"]) {
    const YAML::Node& cn = root["cases"];
    if (!cn.IsSequence()) fail("eval", "{}: 'cases' must be a list", at_line(origin, cn));
    for (const auto& c : cn) {
      std::vector<std::string> aw;
      if (c.IsMap() && c["assert"] && c["assert"].IsSequence())
        for (const auto& a : c["assert"]) aw.push_back(at_line(origin, a));
      s.cases.push_back(case_from_json_impl(yaml_to_json(c, origin), at_line(origin, c), &aw));
    }
    finish_cases(s.cases, origin);
  } else if (root["cases_file"]) {
    std::string f = get_string(top, "cases_file", at_line(origin, root["cases_file"]));
    std::filesystem::path p(f);
    if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
    if (p.extension() != ".jsonl") fail("eval", "{}: cases_file must be a .jsonl file", at_line(origin, root["cases_file"]));
    if (!file_exists(p.string())) fail("eval", "{}: cases_file {}: no such file", at_line(origin, root["cases_file"]), p.string());
    s.cases = parse_cases_jsonl(read_file(p.string()), p.string());
  } else {
    fail("eval", "{}: the suite has no 'cases' or 'cases_file'", origin);
  }
  return s;
}

EvalSuite load_suite(const std::string& path) {
  if (!file_exists(path)) fail("eval", "{}: no such file", path);
  std::string text = read_file(path);
  std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".jsonl") {
    EvalSuite s;
    s.name = std::filesystem::path(path).stem().string();
    s.cases = parse_cases_jsonl(text, path);
    return s;
  }
  if (ext == ".yaml" || ext == ".yml")
    return parse_suite_yaml(text, path, std::filesystem::path(path).parent_path().string());
  fail("eval", "{}: a test file must be .yaml, .yml or .jsonl", path);
}

}  // namespace lathe::eval
