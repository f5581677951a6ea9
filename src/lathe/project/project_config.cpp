#include "lathe/project/project_config.h"

#include <filesystem>
#include <set>

#include "lathe/core/error.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace lathe::project {

namespace {

const std::set<std::string> kSections = {"project", "goal", "base_model", "data", "train", "eval", "export", "serve"};

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
  } catch (...) {
  }
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used == s.size()) return v;
  } catch (...) {
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
  return fmt::format("{}:{}", path, n.Mark().line >= 0 ? n.Mark().line + 1 : 0);
}

namespace {

double gate_value(const ProjectConfig& c, const YAML::Node& gates, const char* key) {
  if (!gates[key]) return -1;
  try {
    double v = gates[key].as<double>();
    if (v < 0) fail("project", "{}: goal.gates.{} must be >= 0", c.where(gates[key]), key);
    return v;
  } catch (const YAML::Exception&) {
    fail("project", "{}: goal.gates.{} must be a number", c.where(gates[key]), key);
  }
}

void require_map(const ProjectConfig& c, const char* name) {
  if (c.has(name) && !c.root[name].IsMap()) fail("project", "{}: section '{}' must be a mapping", c.where(c.root[name]), name);
}

}  // namespace

ProjectConfig load_project(const std::string& path) {
  ProjectConfig c;
  c.path = path;
  c.dir = fs::absolute(fs::path(path)).parent_path().lexically_normal().string();
  try {
    c.root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail("project", "{}: cannot read the project file (create one with `lathe init DIR`)", path);
  } catch (const YAML::Exception& e) {
    fail("project", "{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  if (!c.root.IsMap()) fail("project", "{}: expected a mapping of sections (project, goal, base_model, data, ...)", path);
  for (auto it = c.root.begin(); it != c.root.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (!kSections.count(key))
      fail("project", "{}: unknown section '{}' (expected one of: project, goal, base_model, data, train, eval, "
                      "export, serve)", c.where(it->first), key);
  }
  for (const char* s : {"project", "goal", "base_model", "data", "train", "eval", "export", "serve"}) require_map(c, s);
  c.name = c.has("project") && c.root["project"]["name"] ? c.root["project"]["name"].as<std::string>()
                                                          : fs::path(c.dir).filename().string();
  std::string out = c.has("project") && c.root["project"]["output_dir"] ? c.root["project"]["output_dir"].as<std::string>()
                                                                          : "out";
  c.output_dir = c.resolve(out);
  if (c.has("goal") && c.root["goal"]["gates"]) {
    YAML::Node g = c.root["goal"]["gates"];
    if (!g.IsMap()) fail("project", "{}: goal.gates must be a mapping", c.where(g));
    for (auto it = g.begin(); it != g.end(); ++it) {
      const std::string k = it->first.Scalar();
      if (k != "min_pass_rate" && k != "max_forgetting")
        fail("project", "{}: unknown gate '{}' (min_pass_rate, max_forgetting)", c.where(it->first), k);
    }
    c.gates.min_pass_rate = gate_value(c, g, "min_pass_rate");
    c.gates.max_forgetting = gate_value(c, g, "max_forgetting");
  }
  if (!c.has("base_model")) fail("project", "{}: section 'base_model' is required (path: or build:)", path);
  YAML::Node b = c.root["base_model"];
  if (!b["path"] && !b["build"]) fail("project", "{}: base_model needs 'path' (an HF directory or .gguf) or 'build'", c.where(b));
  for (auto it = b.begin(); it != b.end(); ++it) {
    const std::string k = it->first.Scalar();
    if (k != "path" && k != "build")
      fail("project", "{}: unknown key base_model.{} (path, build)", c.where(it->first), k);
  }
  if (!c.has("train")) fail("project", "{}: section 'train' is required", path);
  c.json = yaml_to_json(c.root);
  return c;
}

}  // namespace lathe::project
