// YAML → option settings (core/options.h): a mapping of key: value, nested mappings for dotted keys
// ("clean: {min_chars: 5}" is clean.min_chars), each value remembering FILE:LINE (or FILE:LINE:COL)
// of where it was written. Unknown keys are errors at the key's position, with the closest known key
// or the list of keys allowed there.
#pragma once
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "lathe/core/options.h"

namespace lathe {

struct YamlOptionSource {
  std::string component;  // "[component]" of error messages
  std::string file;       // names the text in `where`: "c.yaml", "project.yaml"
  bool columns = false;   // where = FILE:LINE:COL (project.yaml) instead of FILE:LINE
  std::string section;    // the mapping's own name in unknown-key messages ("data", "train"); "" = top level
  std::string base_dir;   // for path options: the file's directory
  std::vector<std::string> skip;  // dotted keys of sub-sections the caller reads itself: known, not read
};

// YAML → JSON, keeping map order; plain scalars become numbers/bools/null where YAML 1.2's core
// schema reads them so, quoted scalars stay strings.
nlohmann::ordered_json yaml_to_json(const YAML::Node& n);

// FILE:LINE[:COL] of a node.
std::string yaml_where(const YamlOptionSource& src, const YAML::Node& n);

// One setting per key of `map` that names an option of `options` (a table's, or several tables'
// together). A null node is an empty mapping.
OptionSettings options_from_yaml(const YAML::Node& map, const std::vector<const Option*>& options,
                                 const YamlOptionSource& src);
// Every option of a table.
std::vector<const Option*> all_options(const OptionTableBase& table);

// Loads FILE (a mapping of key: value, or `section:` of one when `section_key` is given and present)
// as settings for `table`; errors name FILE:LINE.
OptionSettings options_from_yaml_file(const std::string& path, const OptionTableBase& table,
                                      const std::string& section_key = "");

}  // namespace lathe
