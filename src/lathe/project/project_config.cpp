#include "lathe/project/project_config.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/project/project_schema.h"
#include "lathe/project/yaml_strict.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace lathe::project {

namespace {

ordered_json scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted in the file: a string, whatever it looks like
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used, 10);
    if (used == s.size()) return v;
  } catch (const std::logic_error&) {  // not an integer, or beyond 64 bits: maybe a float
  }
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    // "inf" and "nan" are strings in YAML 1.2 (its infinity is ".inf"), and JSON has no such numbers.
    if (used == s.size() && std::isfinite(v)) return v;
  } catch (const std::logic_error&) {  // not a number, or out of double range: a string
  }
  return s;
}

}  // namespace

ordered_json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar_to_json(n);
    case YAML::NodeType::Sequence: {
      ordered_json a = ordered_json::array();
      for (const auto& x : n) a.push_back(yaml_to_json(x));
      return a;
    }
    case YAML::NodeType::Map: {
      ordered_json o = ordered_json::object();
      for (auto it = n.begin(); it != n.end(); ++it) o[it->first.Scalar()] = yaml_to_json(it->second);
      return o;
    }
  }
  return nullptr;
}

YAML::Node json_to_yaml(const ordered_json& j) {
  YAML::Node n;
  if (j.is_object()) {
    n = YAML::Node(YAML::NodeType::Map);
    for (auto it = j.begin(); it != j.end(); ++it) n[it.key()] = json_to_yaml(it.value());
  } else if (j.is_array()) {
    n = YAML::Node(YAML::NodeType::Sequence);
    for (const auto& x : j) n.push_back(json_to_yaml(x));
  } else if (j.is_string()) {
    n = j.get<std::string>();
  } else if (j.is_boolean()) {
    n = j.get<bool>();
  } else if (j.is_number_integer()) {
    n = j.get<long long>();
  } else if (j.is_number()) {
    n = j.get<double>();
  }
  return n;
}

ordered_json ProjectConfig::section_json(const char* name) const { return has(name) ? yaml_to_json(root[name]) : nullptr; }

std::string ProjectConfig::resolve(const std::string& p) const {
  if (p.empty()) return p;
  fs::path q(p);
  return q.is_absolute() ? p : (fs::path(dir) / q).lexically_normal().string();
}

std::string ProjectConfig::where(const YAML::Node& n) const {
  return fmt::format("{}:{}:{}", path, n.Mark().line >= 0 ? n.Mark().line + 1 : 0, n.Mark().column >= 0 ? n.Mark().column + 1 : 0);
}

ProjectConfig load_project(const std::string& path) {
  const std::string dir = fs::absolute(fs::path(path)).parent_path().lexically_normal().string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    fail("project", "{}: cannot read the project file (create one with `lathe init DIR`)", path);
  if (fs::file_size(path, ec) > kMaxProjectFileBytes)
    fail("project", "{}: larger than {} bytes; a project file states settings, data belongs in files it names", path,
         kMaxProjectFileBytes);
  return parse_project(read_file(path), path, dir);
}

ProjectConfig parse_project(const std::string& text, const std::string& path, const std::string& dir) {
  ProjectConfig c;
  c.path = path;
  c.dir = dir;
  if (text.size() > kMaxProjectFileBytes)
    fail("project", "{}: larger than {} bytes; a project file states settings, data belongs in files it names", path,
         kMaxProjectFileBytes);
  try {
    c.root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("project", "{}:{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  // yaml-cpp reads some invalid YAML (an unclosed quote swallowing the next keys) as valid.
  check_yaml_strict(text, c.root, path);
  validate_project_schema(c);
  const YAML::Node& r = c.root;  // const lookups: operator[] on a non-const node inserts the key
  c.name = c.has("project") && r["project"]["name"] ? r["project"]["name"].Scalar() : fs::path(c.dir).filename().string();
  c.output_dir = c.resolve(c.has("project") && r["project"]["output_dir"] ? r["project"]["output_dir"].Scalar() : "out");
  if (c.has("goal") && r["goal"]["gates"]) {
    const YAML::Node g = r["goal"]["gates"];
    if (g["min_pass_rate"]) c.gates.min_pass_rate = yaml_to_json(g["min_pass_rate"]).get<double>();
    if (g["max_forgetting"]) c.gates.max_forgetting = yaml_to_json(g["max_forgetting"]).get<double>();
  }
  c.json = yaml_to_json(c.root);
  return c;
}

}  // namespace lathe::project
