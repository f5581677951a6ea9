// What yaml-cpp 0.7 accepts but a conforming YAML 1.2 parser rejects, checked on the parsed tree
// against the source text: a quoted scalar that runs over a line break whose next line is not
// indented deeper than the block it belongs to (the typo `task: "stories` with no closing quote
// swallows the following keys, `gates:` included, into one string), a quoted key over several lines,
// and a quote left open at the end of the file. Errors read "[project] FILE:LINE:COL: ...".
#pragma once
#include <string>

#include <yaml-cpp/yaml.h>

namespace lathe::project {

// Also bounds the tree: at most this deep, and at most this many nodes with aliases expanded.
constexpr int kMaxProjectYamlDepth = 64;
constexpr size_t kMaxProjectYamlNodes = 100000;

// `root` must come from YAML::Load(text); `file` names the source in messages.
void check_yaml_strict(const std::string& text, const YAML::Node& root, const std::string& file);

}  // namespace lathe::project
