// project.yaml: one file that states a fine-tuning project end to end — the goal and its acceptance
// gates, the base model (or how to build a small one), and one section per stage whose keys are
// exactly those of the stage's own command (data → `lathe data prepare`, train → `lathe train`,
// eval → `lathe eval`'s suite, export, serve). Every key is documented in docs/project.md.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace lathe::project {

struct Gates {
  double min_pass_rate = -1;   // < 0: no gate
  double max_forgetting = -1;  // < 0: no gate
};

struct ProjectConfig {
  std::string path;        // the project.yaml
  std::string dir;         // its directory: relative paths in the file resolve against it
  std::string name;
  std::string output_dir;  // absolute; default DIR/out
  YAML::Node root;
  nlohmann::ordered_json json;  // the whole file, for hashing and the run registry
  Gates gates;

  bool has(const char* section) const { return root[section] && !root[section].IsNull(); }
  YAML::Node section(const char* name) const { return root[name]; }
  nlohmann::ordered_json section_json(const char* name) const;  // null when absent
  std::string resolve(const std::string& p) const;              // relative to dir
  std::string where(const YAML::Node& n) const;                 // "project.yaml:LINE:COL"
};

// A project file is settings, not data: larger files are refused before parsing.
constexpr size_t kMaxProjectFileBytes = 1 << 20;

// Reads the file, rejects what YAML 1.2 rejects but yaml-cpp accepts (yaml_strict.h), and validates
// every key of every section against the schema (project_schema.h) before anything runs. Throws
// "[project] FILE:LINE:COL: section.key: ..." naming the key.
ProjectConfig load_project(const std::string& path);
// The same from text already read; `path` names it in messages, `dir` is the project directory.
ProjectConfig parse_project(const std::string& text, const std::string& path, const std::string& dir);

// YAML → JSON, keeping map order; scalars become numbers/bools where YAML 1.2 core would read them.
nlohmann::ordered_json yaml_to_json(const YAML::Node& n);
YAML::Node json_to_yaml(const nlohmann::ordered_json& j);

}  // namespace lathe::project
