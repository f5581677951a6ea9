#include "lathe/project/project_schema.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <cctype>

#include "lathe/core/error.h"
#include "lathe/data/pipeline.h"
#include "lathe/eval/test_suite.h"
#include "lathe/project/project_config.h"
#include "lathe/train/train_options.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace lathe::project {

namespace {

enum class Ty { Str, Int, Num, Bool, StrList, Map };

struct Ctx;
using Check = std::function<void(const Ctx&, const YAML::Node&, const std::string& path)>;

struct Spec {
  std::string key;
  Ty type;
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;                // lo itself is not allowed (learning rates, epsilons: > 0)
  std::vector<std::string> choices;    // for Str and StrList items
  std::vector<Spec> sub;               // Map: its keys
  Check check;                         // Map whose keys another layer declares
};

Spec str(std::string k, std::vector<std::string> choices = {}) { return {std::move(k), Ty::Str, -INFINITY, INFINITY, false, std::move(choices), {}, {}}; }
Spec strs(std::string k, std::vector<std::string> choices = {}) { return {std::move(k), Ty::StrList, -INFINITY, INFINITY, false, std::move(choices), {}, {}}; }
Spec integer(std::string k, double lo, double hi = INT_MAX) { return {std::move(k), Ty::Int, lo, hi, false, {}, {}, {}}; }
Spec num(std::string k, double lo, double hi = INFINITY, bool lo_open = false) { return {std::move(k), Ty::Num, lo, hi, lo_open, {}, {}, {}}; }
Spec boolean(std::string k) { return {std::move(k), Ty::Bool, -INFINITY, INFINITY, false, {}, {}, {}}; }
Spec mapping(std::string k, std::vector<Spec> sub) { return {std::move(k), Ty::Map, -INFINITY, INFINITY, false, {}, std::move(sub), {}}; }
Spec delegated(std::string k, Check c) { return {std::move(k), Ty::Map, -INFINITY, INFINITY, false, {}, {}, std::move(c)}; }

struct Ctx {
  const ProjectConfig& cfg;
  std::string at(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return fmt::format("{}:{}:{}", cfg.path, m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0);
  }
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string shown(const YAML::Node& n) {
  if (n.IsScalar()) {
    std::string s = n.Scalar();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return "'" + s + "'";
  }
  return n.IsSequence() ? "a list" : n.IsMap() ? "a mapping" : "nothing";
}

[[noreturn]] void unknown_key(const Ctx& c, const YAML::Node& key, const std::string& section,
                              const std::vector<std::string>& known) {
  const std::string k = key.Scalar(), near = closest_key(k, known);
  if (!near.empty()) fail("project", "{}: unknown key '{}' in '{}' (did you mean '{}'?)", c.at(key), k, section, near);
  fail("project", "{}: unknown key '{}' in '{}' (expected one of: {})", c.at(key), k, section, join(known));
}

void require_map(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) fail("project", "{}: {}: must be a mapping of key: value (got {})", c.at(n), path, shown(n));
  for (auto it = n.begin(); it != n.end(); ++it)
    if (!it->first.IsScalar()) fail("project", "{}: {}: keys must be plain names", c.at(it->first), path);
}

void validate_map(const Ctx& c, const YAML::Node& n, const std::string& path, const std::vector<Spec>& specs);

void validate_value(const Ctx& c, const YAML::Node& n, const std::string& path, const Spec& s) {
  auto bad = [&](const char* want) { fail("project", "{}: {}: must be {} (got {})", c.at(n), path, want, shown(n)); };
  auto in_choices = [&](const std::string& v, const YAML::Node& at) {
    if (s.choices.empty()) return;
    for (const auto& x : s.choices)
      if (v == x) return;
    const std::string near = closest_key(v, s.choices);
    fail("project", "{}: {}: '{}' is not one of: {}{}", c.at(at), path, v, join(s.choices),
         near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near));
  };
  auto in_range = [&](double v) {
    const bool low = s.lo_open ? !(v > s.lo) : !(v >= s.lo);
    if (!std::isfinite(v) || low || v > s.hi) {
      std::string rule = std::isinf(s.hi) ? fmt::format("{} {}", s.lo_open ? ">" : ">=", s.lo)
                                          : fmt::format("in {}{}, {}]", s.lo_open ? "(" : "[", s.lo, s.hi);
      fail("project", "{}: {}: must be {} (got {})", c.at(n), path, rule, shown(n));
    }
  };
  switch (s.type) {
    case Ty::Str:
      if (!n.IsScalar() || yaml_to_json(n).is_null()) bad("a string");
      in_choices(n.Scalar(), n);
      break;
    case Ty::Int: {
      const ordered_json j = n.IsScalar() ? yaml_to_json(n) : ordered_json();
      if (!j.is_number_integer()) bad("an integer");
      in_range(double(j.get<long long>()));
      break;
    }
    case Ty::Num: {
      const ordered_json j = n.IsScalar() ? yaml_to_json(n) : ordered_json();
      if (!j.is_number()) bad("a number");
      in_range(j.get<double>());
      break;
    }
    case Ty::Bool:
      if (!n.IsScalar() || !yaml_to_json(n).is_boolean()) bad("true or false");
      break;
    case Ty::StrList:
      if (!n.IsSequence()) bad("a list of strings, e.g. [a, b]");
      for (const auto& x : n) {
        if (!x.IsScalar() || yaml_to_json(x).is_null()) bad("a list of strings, e.g. [a, b]");
        in_choices(x.Scalar(), x);
      }
      break;
    case Ty::Map:
      if (s.check) s.check(c, n, path);
      else validate_map(c, n, path, s.sub);
      break;
  }
}

void validate_map(const Ctx& c, const YAML::Node& n, const std::string& path, const std::vector<Spec>& specs) {
  require_map(c, n, path);
  std::vector<std::string> known;
  for (const auto& s : specs) known.push_back(s.key);
  for (auto it = n.begin(); it != n.end(); ++it) {
    const Spec* spec = nullptr;
    for (const auto& s : specs)
      if (s.key == it->first.Scalar()) spec = &s;
    if (!spec) unknown_key(c, it->first, path, known);
    validate_value(c, it->second, path + "." + spec->key, *spec);
  }
}

// A message from the data or eval layer names a dotted key path that starts with `path` (the
// `where` it was given: "data", "base_model.build.data"); this finds that key in project.yaml.
[[noreturn]] void map_back(const Ctx& c, const YAML::Node& section, const std::string& path, std::string msg) {
  const size_t br = msg.find("] ");
  if (msg.rfind("[", 0) == 0 && br != std::string::npos) msg = msg.substr(br + 2);
  YAML::Node at = section;
  std::string at_path = path;
  if (msg.rfind(path, 0) == 0) {
    const size_t colon = msg.find(':', path.size());
    std::string rest = colon == std::string::npos ? "" : msg.substr(path.size(), colon - path.size());
    size_t i = 0;
    while (i < rest.size() && rest[i] == '.') {
      size_t j = rest.find('.', i + 1);
      if (j == std::string::npos) j = rest.size();
      const std::string k = rest.substr(i + 1, j - i - 1);
      // Const lookups and reset(): operator[] on a non-const node inserts, and Node::operator= would
      // overwrite the section in the tree instead of moving `at` to its child.
      const YAML::Node& cur = at;
      if (!cur.IsMap() || !cur[k]) break;
      at.reset(cur[k]);
      at_path += "." + k;
      i = j;
    }
    if (colon != std::string::npos) msg = msg.substr(colon + 2 <= msg.size() ? colon + 2 : msg.size());
  }
  // Plain string search, not std::regex: libstdc++'s regex recurses per character and a long key
  // in the file would overflow the stack.
  const std::string uk = "unknown key '";
  const size_t u = msg.find(uk), e = u == std::string::npos ? u : msg.find('\'', u + uk.size());
  if (e != std::string::npos && at.IsMap()) {
    const std::string key = msg.substr(u + uk.size(), e - u - uk.size());
    std::string list;
    for (const std::string intro : {"expected one of: ", "allowed: "}) {
      const size_t l = msg.find(intro, e);
      if (l == std::string::npos) continue;
      const size_t close = msg.find(')', l);
      list = msg.substr(l + intro.size(), close == std::string::npos ? std::string::npos : close - l - intro.size());
      break;
    }
    for (auto it = at.begin(); it != at.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) {
        std::vector<std::string> known;
        for (size_t p = 0; !list.empty() && p != std::string::npos;) {
          size_t q = list.find(", ", p);
          known.push_back(list.substr(p, q == std::string::npos ? std::string::npos : q - p));
          p = q == std::string::npos ? q : q + 2;
        }
        unknown_key(c, it->first, at_path, known);
      }
  }
  if (msg.find("bad conversion") != std::string::npos) msg = fmt::format("wrong type for this key (got {})", shown(at));
  fail("project", "{}: {}: {}", c.at(at), at_path, msg);
}

// data: and base_model.build.data: the data layer's parser is the declaration of its keys.
void check_data(const Ctx& c, const YAML::Node& n, const std::string& path) {
  require_map(c, n, path);
  for (const char* k : {"output"})
    if (n[k]) fail("project", "{}: {}.{}: set by lathe run (OUTPUT_DIR/data); remove it", c.at(n[k]), path, k);
  if (n["format"] && n["format"].IsMap() && n["format"]["model"])
    fail("project", "{}: {}.format.model: set by lathe run (the base model's tokenizer formats the data); remove it",
         c.at(n["format"]["model"]), path);
  try {
    lathe::data::parse_data_config(n, path, c.cfg.dir);
  } catch (const lathe::Error& e) {
    map_back(c, n, path, e.what());
  } catch (const YAML::Exception& e) {
    map_back(c, n, path, fmt::format("{}: {}", path, e.msg));
  }
}

// train: and base_model.build.train: keys, types (from the defaults) and ranges come from
// LATHE_TRAIN_OPTIONS and validate_train_options.
void check_train(const Ctx& c, const YAML::Node& n, const std::string& path, bool for_base) {
  require_map(c, n, path);
  const std::vector<std::string> keys = train_option_keys();
  const nlohmann::json defaults = train_options_to_json(TrainOptions());
  nlohmann::json opts = nlohmann::json::object();
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string k = it->first.Scalar();
    const YAML::Node v = it->second;
    const std::string kp = path + "." + k;
    if (!defaults.contains(k)) unknown_key(c, it->first, path, keys);
    const bool by_run = k == "model" || k == "output" || k == "config" || (for_base && (k == "data" || k == "method")) ||
                        (!for_base && k == "data" && c.cfg.has("data"));
    if (by_run)
      fail("project", "{}: {}: set by lathe run (base_model, the prepared data, OUTPUT_DIR/{}); remove it", c.at(it->first),
           kp, for_base ? "base" : "train");
    const nlohmann::json& d = defaults[k];
    if (d.is_string()) {
      if (k == "lora_target_modules" && v.IsSequence()) {
        validate_value(c, v, kp, strs(k));
        std::string joined;
        for (const auto& x : v) joined += (joined.empty() ? "" : ",") + x.Scalar();
        opts[k] = joined;
      } else {
        validate_value(c, v, kp, str(k));
        opts[k] = v.Scalar();
      }
    } else if (d.is_boolean()) {
      validate_value(c, v, kp, boolean(k));
      opts[k] = yaml_to_json(v).get<bool>();
    } else if (d.is_number_integer()) {
      validate_value(c, v, kp, integer(k, INT_MIN, INT_MAX));
      opts[k] = yaml_to_json(v).get<long long>();
    } else {
      validate_value(c, v, kp, num(k, -INFINITY));
      opts[k] = yaml_to_json(v).get<double>();
    }
  }
  // Placeholders for what lathe run fills in, so only the file's own values are judged.
  for (const char* k : {"model", "data", "output", "eval_data"})
    if (!opts.contains(k) || opts[k].get<std::string>().empty()) opts[k] = "(set by lathe run)";
  try {
    validate_train_options(train_options_from_json(opts));
  } catch (const lathe::Error& e) {
    const std::string msg = e.what();  // "[train] --learning-rate: must be > 0 (got -1)"
    const size_t d = msg.find("] --"), colon = d == std::string::npos ? d : msg.find(": ", d);
    if (colon != std::string::npos) {
      std::string k = msg.substr(d + 4, colon - d - 4);
      std::replace(k.begin(), k.end(), '-', '_');
      fail("project", "{}: {}.{}: {}", c.at(n[k] ? n[k] : n), path, k, msg.substr(colon + 2));
    }
    fail("project", "{}: {}: {}", c.at(n), path, msg);
  }
}

// eval: either `suite: FILE` (plus holdout) or a suite written inline; the eval layer's parser is
// the declaration of the suite's keys.
void check_eval(const Ctx& c, const YAML::Node& n, const std::string& path) {
  require_map(c, n, path);
  if (n["holdout"]) validate_value(c, n["holdout"], path + ".holdout", str("holdout"));
  if (n["suite"]) {
    validate_value(c, n["suite"], path + ".suite", str("suite"));
    for (auto it = n.begin(); it != n.end(); ++it)
      if (it->first.Scalar() != "suite" && it->first.Scalar() != "holdout")
        fail("project", "{}: {}.{}: eval.suite names a suite file; the other suite keys belong in that file (holdout "
                        "may stay)", c.at(it->first), path, it->first.Scalar());
    const std::string file = c.cfg.resolve(n["suite"].Scalar());
    if (!fs::exists(file)) fail("project", "{}: {}.suite: no such file {}", c.at(n["suite"]), path, file);
    try {
      lathe::eval::load_suite(file);
    } catch (const lathe::Error& e) {
      fail("project", "{}: {}.suite: {}", c.at(n["suite"]), path, e.what());
    }
    return;
  }
  YAML::Node suite = YAML::Clone(n);
  suite.remove("holdout");
  YAML::Emitter em;
  em << suite;
  try {
    lathe::eval::parse_suite_yaml(em.c_str(), path, c.cfg.dir);
  } catch (const lathe::Error& e) {
    std::string msg = e.what();
    // The eval layer counts lines in the re-emitted section; the section's own line is the one to show.
    const std::string pre = "[eval] " + path + ":";
    if (msg.rfind(pre, 0) == 0) {
      size_t i = pre.size();
      while (i < msg.size() && std::isdigit((unsigned char)msg[i])) i++;
      msg = path + msg.substr(i);
    }
    map_back(c, n, path, msg);
  }
}

const std::vector<Spec>& sections() {
  static const std::vector<Spec> s = {
      mapping("project", {str("name"), str("output_dir")}),
      mapping("goal", {str("task"), str("users"), str("domain"),
                   mapping("gates", {num("min_pass_rate", 0, 1), num("max_forgetting", 0)})}),
      mapping("base_model",
          {str("path"),
           mapping("build",
               {mapping("tokenizer", {strs("inputs"), integer("vocab_size", 257), integer("min_frequency", 1),
                                  str("special_tokens"), str("chat_template")}),
                mapping("model", {str("arch", {"llama", "mistral", "qwen2", "qwen3"}), integer("hidden_size", 1),
                              integer("intermediate_size", 1), integer("num_hidden_layers", 1),
                              integer("num_attention_heads", 1), integer("num_key_value_heads", 1),
                              integer("head_dim", 1), integer("vocab_size", 1), integer("max_position_embeddings", 1),
                              num("rope_theta", 0, INFINITY, true), num("rms_norm_eps", 0, INFINITY, true),
                              num("initializer_range", 0, INFINITY, true), boolean("tie_word_embeddings"),
                              integer("seed", 0)}),
                delegated("data", check_data),
                delegated("train", [](const Ctx& c, const YAML::Node& n, const std::string& p) { check_train(c, n, p, true); })})}),
      delegated("data", check_data),
      delegated("train", [](const Ctx& c, const YAML::Node& n, const std::string& p) { check_train(c, n, p, false); }),
      delegated("eval", check_eval),
      mapping("export", {strs("formats", {"peft", "merged", "gguf", "gguf-lora"}), str("gguf_type", {"f32", "f16", "q8_0"}),
                     str("name")}),
      mapping("serve", {str("host"), integer("port", 0, 65535), str("api_key_file"), str("served_model_name"),
                    integer("max_concurrency", 1), integer("queue_size", 0), integer("ctx", 0),
                    integer("prefill_chunk", 1), str("data_dir"), str("log_prompts", {"on", "off", "redact"}),
                    str("chat_template"), boolean("batch_decode"), num("timeout", 0, INFINITY, true),
                    integer("max_body_bytes", 1), integer("threads", 0)}),
  };
  return s;
}

}  // namespace

std::string closest_key(const std::string& key, const std::vector<std::string>& known) {
  // Optimal string alignment distance: insert, delete, substitute, swap neighbours, each 1.
  auto dist = [](const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); i++) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); j++) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); i++)
      for (size_t j = 1; j <= b.size(); j++) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  };
  if (key.size() > 64) return "";  // not a typo of any key; spares the quadratic table
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& k : known) {
    std::string a = key;
    std::replace(a.begin(), a.end(), '-', '_');  // flag spelling of a key: a typo of 0
    const size_t d = dist(a, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  const size_t limit = std::min<size_t>(2, std::max<size_t>(1, key.size() / 3));
  return best_d <= limit ? best : "";
}

void validate_project_schema(const ProjectConfig& cfg) {
  Ctx c{cfg};
  const YAML::Node& root = cfg.root;
  if (!root.IsMap()) fail("project", "{}: expected a mapping of sections (project, goal, base_model, data, ...)", cfg.path);
  std::vector<std::string> names;
  for (const auto& s : sections()) names.push_back(s.key);
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->first.IsScalar()) fail("project", "{}: section names must be plain names", c.at(it->first));
    const std::string k = it->first.Scalar();
    const Spec* spec = nullptr;
    for (const auto& s : sections())
      if (s.key == k) spec = &s;
    if (!spec) {
      const std::string near = closest_key(k, names);
      fail("project", "{}: unknown section '{}' ({}expected one of: {})", c.at(it->first), k,
           near.empty() ? "" : fmt::format("did you mean '{}'? ", near), join(names));
    }
    if (it->second.IsNull()) continue;  // an empty section is an absent one
    validate_value(c, it->second, k, *spec);
  }
  if (!cfg.has("base_model")) fail("project", "{}: section 'base_model' is required (path: or build:)", cfg.path);
  const YAML::Node b = root["base_model"];
  if (!b["path"] == !b["build"])
    fail("project", "{}: base_model needs exactly one of 'path' (an HF directory or .gguf) or 'build'", c.at(b));
  if (!cfg.has("train")) fail("project", "{}: section 'train' is required", cfg.path);
}

}  // namespace lathe::project
