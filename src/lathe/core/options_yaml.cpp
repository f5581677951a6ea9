#include "lathe/core/options_yaml.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace lathe {

using nlohmann::ordered_json;

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

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string shown_node(const YAML::Node& n) {
  if (n.IsScalar()) {
    std::string s = n.Scalar();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return "'" + s + "'";
  }
  return n.IsSequence() ? "a list" : n.IsMap() ? "a mapping" : "nothing";
}

void collect(const YAML::Node& map, const std::string& prefix, const std::vector<const Option*>& options,
             const YamlOptionSource& src, OptionSettings& out) {
  const std::string label = src.section.empty() ? prefix : prefix.empty() ? src.section : src.section + "." + prefix;
  if (map.IsNull()) return;
  if (!map.IsMap())
    throw OptionError(src.component, yaml_where(src, map), label,
                      fmt::format("{}: must be a mapping of key: value (got {})", label.empty() ? "the file" : label,
                                  shown_node(map)),
                      true, OptionSource::File);
  // The names allowed at this level: options and the first part of nested options' keys.
  std::vector<std::string> known;
  for (const Option* o : options) {
    if (o->key.compare(0, prefix.size() + (prefix.empty() ? 0 : 1), prefix.empty() ? "" : prefix + ".") != 0) continue;
    const std::string rest = o->key.substr(prefix.empty() ? 0 : prefix.size() + 1);
    const std::string head = rest.substr(0, rest.find('.'));
    if (std::find(known.begin(), known.end(), head) == known.end()) known.push_back(head);
  }
  for (const std::string& s : src.skip) {
    const size_t cut = prefix.empty() ? 0 : prefix.size() + 1;
    if (s.size() <= cut || (!prefix.empty() && s.compare(0, cut, prefix + ".") != 0)) continue;
    const std::string head = s.substr(cut, s.find('.', cut) - cut);
    if (std::find(known.begin(), known.end(), head) == known.end()) known.push_back(head);
  }
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar())
      throw OptionError(src.component, yaml_where(src, it->first), "", "keys must be plain names", true, OptionSource::File);
    const std::string k = it->first.Scalar();
    const std::string full = prefix.empty() ? k : prefix + "." + k;
    const Option* opt = nullptr;
    for (const Option* o : options)
      if (o->key == full) opt = o;
    if (std::find(src.skip.begin(), src.skip.end(), full) != src.skip.end()) continue;  // the caller's
    const bool section = std::find(known.begin(), known.end(), k) != known.end();
    if (!opt && !section) {
      const std::string near = closest_key(k, known);
      const std::string in = label.empty() ? "" : fmt::format(" in '{}'", label);
      throw OptionError(src.component, yaml_where(src, it->first), full,
                        near.empty() ? fmt::format("unknown key '{}'{} (expected one of: {})", k, in, join(known))
                                     : fmt::format("unknown key '{}'{} (did you mean '{}'?)", k, in, near),
                        true, OptionSource::File);
    }
    if (!opt) {
      collect(it->second, full, options, src, out);
      continue;
    }
    const YAML::Node key_node = it->first, n = it->second;
    OptionValue v;
    v.source = OptionSource::File;
    v.where = yaml_where(src, n.IsNull() ? key_node : n);  // an empty value: the key's position
    v.base_dir = src.base_dir;
    if (n.IsScalar()) {
      v.is_text = true;
      v.quoted = n.Tag() == "!";
      v.text = n.Scalar();
    } else {
      v.json = yaml_to_json(n);
    }
    out.push_back({opt, std::move(v)});
  }
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

std::string yaml_where(const YamlOptionSource& src, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  const int line = m.line >= 0 ? m.line + 1 : 0, col = m.column >= 0 ? m.column + 1 : 0;
  return src.columns ? fmt::format("{}:{}:{}", src.file, line, col) : fmt::format("{}:{}", src.file, line);
}

OptionSettings options_from_yaml(const YAML::Node& map, const std::vector<const Option*>& options,
                                 const YamlOptionSource& src) {
  OptionSettings out;
  collect(map, "", options, src, out);
  return out;
}

std::vector<const Option*> all_options(const OptionTableBase& table) {
  std::vector<const Option*> v;
  for (const auto& o : table.options()) v.push_back(&o);
  return v;
}

OptionSettings options_from_yaml_file(const std::string& path, const OptionTableBase& table, const std::string& section_key) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(table.component().c_str(), "{}: cannot read config file", path);
  } catch (const YAML::Exception& e) {
    fail(table.component().c_str(), "{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  YamlOptionSource src{table.component(), path, false, "", std::filesystem::path(path).parent_path().string(), {}};
  const YAML::Node& r = root;  // const lookups: operator[] on a non-const node inserts the key
  if (!section_key.empty() && r.IsMap() && r[section_key]) {
    src.section = section_key;
    return options_from_yaml(r[section_key], all_options(table), src);
  }
  if (!root.IsNull() && !root.IsMap()) fail(table.component().c_str(), "{}: expected a mapping of option: value", path);
  return options_from_yaml(root, all_options(table), src);
}

}  // namespace lathe
