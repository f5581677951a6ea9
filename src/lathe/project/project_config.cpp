#include "lathe/project/project_config.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/options_yaml.h"
#include "lathe/project/project_schema.h"
#include "lathe/project/yaml_strict.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace lathe::project {

ordered_json yaml_to_json(const YAML::Node& n) { return lathe::yaml_to_json(n); }

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
