#include "lathe/project/project_schema.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/options_yaml.h"
#include "lathe/data/data_config.h"
#include "lathe/eval/eval_options.h"
#include "lathe/eval/test_suite.h"
#include "lathe/peft/export_options.h"
#include "lathe/project/launcher.h"
#include "lathe/project/project_config.h"
#include "lathe/retrieval/index_options.h"
#include "lathe/serve/serve_options.h"
#include "lathe/train/train_options.h"

namespace fs = std::filesystem;

namespace lathe::project {

namespace {

// The project's own sections, declared like any command's options.
struct ProjectSection {
  std::string name, output_dir;
};
struct GoalSection {
  std::string task, users, domain;
  double min_pass_rate = -1, max_forgetting = -1;
};
// base_model: the path of a model, or how to build a small one. The build keys are the flags of
// `lathe tokenizer train` and `lathe init-model`, which lathe run calls with them.
struct BaseModelSection {
  std::string path;
  std::vector<std::string> inputs;
  int vocab_size = 0, min_frequency = 0;
  std::string special_tokens, chat_template;
  std::string arch;
  int hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0,
      head_dim = 0, model_vocab_size = 0, max_position_embeddings = 0;
  double rope_theta = 0, rms_norm_eps = 0, initializer_range = 0;
  bool tie_word_embeddings = false;
  int seed = 0;
};
struct ExportSection {
  std::vector<std::string> formats{"peft"};
};
struct EvalSection {
  std::string suite, holdout;
};

const OptionTable<ProjectSection>& project_table() {
  static const OptionTable<ProjectSection> t = [] {
    OptionTable<ProjectSection> t("project");
    t.add("name", &ProjectSection::name, "Shown in lathe run and the reports (default: the directory name)");
    t.add("output_dir", &ProjectSection::output_dir, "Where stage outputs go, relative to the project file (default: out)");
    return t;
  }();
  return t;
}

const OptionTable<GoalSection>& goal_table() {
  static const OptionTable<GoalSection> t = [] {
    OptionTable<GoalSection> t("project");
    t.add("task", &GoalSection::task, "What the model takes over");
    t.add("users", &GoalSection::users, "For whom");
    t.add("domain", &GoalSection::domain, "In which domain");
    const auto& ev = eval::eval_options_table();
    t.add_like(*ev.find("min_pass_rate"), "gates.min_pass_rate", [](GoalSection& g) -> auto& { return g.min_pass_rate; });
    t.add_like(*ev.find("max_forgetting"), "gates.max_forgetting", [](GoalSection& g) -> auto& { return g.max_forgetting; });
    return t;
  }();
  return t;
}

const OptionTable<BaseModelSection>& base_table() {
  using B = BaseModelSection;
  static const OptionTable<B> t = [] {
    OptionTable<B> t("project");
    t.add("path", &B::path, "A Hugging Face model directory or .gguf file");
    t.add("build.tokenizer.inputs", &B::inputs, "Text files or globs the tokenizer is trained on").with_flag("--input");
    t.add("build.tokenizer.vocab_size", &B::vocab_size, "Total vocabulary").min(257).with_flag("--vocab-size");
    t.add("build.tokenizer.min_frequency", &B::min_frequency, "Never merge a pair seen fewer times")
        .min(1)
        .with_flag("--min-frequency");
    t.add("build.tokenizer.special_tokens", &B::special_tokens, "Comma-separated special tokens")
        .with_flag("--special-tokens");
    t.add("build.tokenizer.chat_template", &B::chat_template, "Built-in chat template").with_flag("--chat-template");
    t.add("build.model.arch", &B::arch, "Architecture").one_of({"llama", "mistral", "qwen2", "qwen3"}).with_flag("--arch");
    auto size = [&](const char* key, int B::*m) { t.add(std::string("build.model.") + key, m, key).min(1).with_flag(option_flag_of(key)); };
    size("hidden_size", &B::hidden_size);
    size("intermediate_size", &B::intermediate_size);
    size("num_hidden_layers", &B::num_hidden_layers);
    size("num_attention_heads", &B::num_attention_heads);
    size("num_key_value_heads", &B::num_key_value_heads);
    size("head_dim", &B::head_dim);
    size("vocab_size", &B::model_vocab_size);
    size("max_position_embeddings", &B::max_position_embeddings);
    auto positive = [&](const char* key, double B::*m) {
      t.add(std::string("build.model.") + key, m, key).above(0).with_flag(option_flag_of(key));
    };
    positive("rope_theta", &B::rope_theta);
    positive("rms_norm_eps", &B::rms_norm_eps);
    positive("initializer_range", &B::initializer_range);
    t.add("build.model.tie_word_embeddings", &B::tie_word_embeddings, "Share the embedding matrix with lm_head")
        .with_flag("--tie-word-embeddings");
    t.add("build.model.seed", &B::seed, "Random seed").min(0).with_flag("--seed");
    return t;
  }();
  return t;
}

const OptionTable<ExportSection>& export_table() {
  static const OptionTable<ExportSection> t = [] {
    OptionTable<ExportSection> t("project");
    t.add("formats", &ExportSection::formats, "One lathe export run per format")
        .one_of({"peft", "merged", "gguf", "gguf-lora"})
        .no_flag();
    return t;
  }();
  return t;
}

const OptionTable<EvalSection>& eval_section_table() {
  static const OptionTable<EvalSection> t = [] {
    OptionTable<EvalSection> t("project");
    t.add("suite", &EvalSection::suite, "A suite file instead of an inline suite");
    t.add_like(*eval::eval_options_table().find("holdout"), "holdout", [](EvalSection& e) -> auto& { return e.holdout; });
    return t;
  }();
  return t;
}

struct Ctx {
  const ProjectConfig& cfg;
  std::string at(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return fmt::format("{}:{}:{}", cfg.path, m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0);
  }
  YamlOptionSource source(const std::string& section) const { return {"project", cfg.path, true, section, cfg.dir, {}}; }
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// An option's error as project.yaml words it: "FILE:LINE:COL: section.key: problem".
[[noreturn]] void reword(const OptionError& e, const std::string& section) {
  if (e.names_key) fail("project", "{}: {}", e.where, e.problem);
  fail("project", "{}: {}.{}: {}", e.where, section, e.key, e.problem);
}

// Reads `n` against `options`, skipping the sub-sections in `skip` (checked by the caller), and
// converts every value (type, range, choices); returns the settings.
OptionSettings read_section(const Ctx& c, const YAML::Node& n, const std::string& section,
                            std::vector<const Option*> options, const std::vector<std::string>& skip = {}) {
  OptionSettings settings;
  try {
    YamlOptionSource src = c.source(section);
    src.skip = skip;
    settings = options_from_yaml(n, options, src);
    for (const auto& s : settings) {
      try {
        option_convert(*s.option, s.value);
      } catch (const OptionProblem& p) {
        throw OptionError("project", s.value.where, s.option->key, p.message, false, OptionSource::File);
      }
    }
  } catch (const OptionError& e) {
    reword(e, section);
  }
  return settings;
}

// data: and base_model.build.data: the data layer's table.
void check_data(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (n.IsMap()) {
    if (n["output"]) fail("project", "{}: {}.output: set by lathe run (OUTPUT_DIR/data); remove it", c.at(n["output"]), path);
    if (n["format"] && n["format"].IsMap() && n["format"]["model"])
      fail("project", "{}: {}.format.model: set by lathe run (the base model's tokenizer formats the data); remove it",
           c.at(n["format"]["model"]), path);
  }
  const auto& t = data::data_options_table();
  data::DataConfig d;
  try {
    t.apply(d, options_from_yaml(n, all_options(t), c.source(path)));
  } catch (const OptionError& e) {
    reword(e, path);
  }
  try {
    data::finish_data_config(d, path);
  } catch (const Error& e) {
    std::string msg = e.what();
    const size_t br = msg.find("] ");
    fail("project", "{}: {}", c.at(n), br == std::string::npos ? msg : msg.substr(br + 2));
  }
}

// train: and base_model.build.train: the train layer's table and validate_train_options.
void check_train(const Ctx& c, const YAML::Node& n, const std::string& path, bool for_base) {
  const auto& t = train_options_table();
  TrainOptions o;
  if (n.IsMap())
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
      const bool by_run = k == "model" || k == "output" || k == "config" || (for_base && (k == "data" || k == "method")) ||
                          (!for_base && k == "data" && c.cfg.has("data"));
      if (by_run)
        fail("project", "{}: {}.{}: set by lathe run (base_model, the prepared data, OUTPUT_DIR/{}); remove it",
             c.at(it->first), path, k, for_base ? "base" : "train");
    }
  try {
    t.apply(o, options_from_yaml(n, all_options(t), c.source(path)));
  } catch (const OptionError& e) {
    reword(e, path);
  }
  // Placeholders for what lathe run fills in, so only the file's own values are judged.
  for (std::string* s : {&o.model, &o.data, &o.output})
    if (s->empty()) *s = "(set by lathe run)";
  try {
    validate_train_options(o);
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

// align: a preference round after `train` (docs/project.md). Its keys are `lathe train`'s, read
// through the same table and validate_train_options, plus `data` (a file or a list of files) and
// `feedback` (a server's --data-dir); `method` must be a preference method.
void check_align(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) fail("project", "{}: {}: expected a mapping of keys (method, data, beta, ...)", c.at(n), path);
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
    if (k == "model" || k == "output" || k == "config" || k == "init_adapter" || k == "finetuning_type")
      fail("project", "{}: {}.{}: set by lathe run (the train stage's adapter or model, OUTPUT_DIR/align); remove it",
           c.at(it->first), path, k);
  }
  if (!n["method"])
    fail("project", "{}: {}.method: required (dpo, kto or orpo)", c.at(n), path);
  const YAML::Node& data = n["data"];
  const YAML::Node& feedback = n["feedback"];
  if (!data && !feedback)
    fail("project", "{}: {}: needs data (a preference JSONL file or a list of them) or feedback (a lathe serve "
                    "--data-dir)", c.at(n), path);
  if (data) {
    if (!data.IsScalar() && !data.IsSequence())
      fail("project", "{}: {}.data: must be a file or a list of files", c.at(data), path);
    std::vector<YAML::Node> files;
    if (data.IsScalar()) files.push_back(data);
    else
      for (const auto& x : data) files.push_back(x);
    if (files.empty()) fail("project", "{}: {}.data: the list is empty", c.at(data), path);
    for (const auto& f : files) {
      if (!f.IsScalar() || f.Scalar().empty())
        fail("project", "{}: {}.data: each entry must be a file name", c.at(f), path);
      const std::string file = c.cfg.resolve(f.Scalar());
      if (!fs::is_regular_file(file)) fail("project", "{}: {}.data: no such file {}", c.at(f), path, file);
    }
  }
  if (feedback) {
    if (!feedback.IsScalar() || feedback.Scalar().empty())
      fail("project", "{}: {}.feedback: must be a directory (a lathe serve --data-dir)", c.at(feedback), path);
  }
  const auto& t = train_options_table();
  TrainOptions o;
  try {
    YamlOptionSource src = c.source(path);
    src.skip = {"data", "feedback"};
    t.apply(o, options_from_yaml(n, all_options(t), src));
  } catch (const OptionError& e) {
    reword(e, path);
  }
  if (!is_preference_method(o.method))
    fail("project", "{}: {}.method: must be dpo, kto or orpo (got '{}'); supervised training belongs in train:",
         c.at(n["method"]), path, o.method);
  // What the round continues: a LoRA/QLoRA adapter, or full weights.
  const YAML::Node& tr = c.cfg.root["train"];
  const std::string train_method = tr && tr.IsMap() && tr["method"] ? tr["method"].Scalar() : "lora";
  if (train_method == "prefix" || train_method == "ia3" || train_method == "prompt_tuning" || train_method == "p_tuning")
    fail("project", "{}: {}: train.method is {}; preference methods continue a LoRA or QLoRA adapter or full "
                    "weights", c.at(n), path, train_method);
  o.finetuning_type = train_method == "full" ? "full" : "";
  for (std::string* s : {&o.model, &o.data, &o.output})
    if (s->empty()) *s = "(set by lathe run)";
  try {
    validate_train_options(o);
  } catch (const lathe::Error& e) {
    const std::string msg = e.what();  // "[train] --beta: must be > 0 (got -1)"
    const size_t d = msg.find("] --"), colon = d == std::string::npos ? d : msg.find(": ", d);
    if (colon != std::string::npos) {
      std::string k = msg.substr(d + 4, colon - d - 4);
      std::replace(k.begin(), k.end(), '-', '_');
      fail("project", "{}: {}.{}: {}", c.at(n[k] ? n[k] : n), path, k, msg.substr(colon + 2));
    }
    fail("project", "{}: {}: {}", c.at(n), path, msg);
  }
}

// A message from the eval layer's suite parser names a dotted key path that starts with `path`;
// this finds that key in project.yaml.
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
    for (auto it = at.begin(); it != at.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key)
        fail("project", "{}: {} (in '{}')", c.at(it->first), msg.substr(u), at_path);
  }
  if (msg.find("bad conversion") != std::string::npos) msg = "wrong type for this key";
  fail("project", "{}: {}: {}", c.at(at), at_path, msg);
}

// eval: either `suite: FILE` (plus holdout) or a suite written inline; the eval layer's parser is
// the declaration of the suite's keys.
void check_eval(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) read_section(c, n, path, all_options(eval_section_table()));  // reports the shape
  for (const char* k : {"suite", "holdout"}) {
    if (!n[k]) continue;
    try {
      OptionValue v;
      v.source = OptionSource::File;
      v.where = c.at(n[k]);
      if (n[k].IsScalar()) v.is_text = true, v.quoted = n[k].Tag() == "!", v.text = n[k].Scalar();
      else v.json = yaml_to_json(n[k]);
      option_convert(*eval_section_table().find(k), v);
    } catch (const OptionProblem& p) {
      fail("project", "{}: {}.{}: {}", c.at(n[k]), path, k, p.message);
    }
  }
  if (n["suite"]) {
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

// compare: NAME -> the train keys that differ from the train: section (docs/project.md). Each entry is
// judged as the train section with its keys on top, so a bad value is reported where it is written.
void check_compare(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap())
    fail("project", "{}: {}: expected a mapping of variant names to train keys (e.g. dora: {{use_dora: true}})", c.at(n),
         path);
  static const std::vector<std::string> reserved = {"base", "prompt", "tuned", "rag", "full"};
  static const std::vector<std::string> methods = {"lora", "qlora", "ia3", "prompt_tuning", "p_tuning", "prefix"};
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
    bool ok = !name.empty() && name.size() <= 64;
    for (char ch : name) ok = ok && (std::isalnum((unsigned char)ch) || ch == '_' || ch == '-' || ch == '.');
    if (!ok || std::find(reserved.begin(), reserved.end(), name) != reserved.end())
      fail("project", "{}: {}: '{}' cannot name a variant (letters, digits, _ - . up to 64; not base, prompt, tuned, "
                      "rag or full: the report's own variants)", c.at(it->first), path, name);
    const std::string at = path + "." + name;
    const YAML::Node e = it->second;  // a copy: it->second belongs to the iterator's temporary
    if (!e.IsMap() && !e.IsNull()) fail("project", "{}: {}: expected a mapping of train keys", c.at(e), at);
    YAML::Node merged = c.cfg.root["train"] && c.cfg.root["train"].IsMap() ? YAML::Clone(c.cfg.root["train"]) : YAML::Node(YAML::NodeType::Map);
    if (e.IsMap())
      for (auto k = e.begin(); k != e.end(); ++k) {
        const std::string key = k->first.IsScalar() ? k->first.Scalar() : "";
        if (key == "init_adapter" || key == "resume_from_checkpoint")
          fail("project", "{}: {}.{}: a compared method trains from the base, fresh; remove it", c.at(k->first), at, key);
        if (key == "method" && (!k->second.IsScalar() ||
                                std::find(methods.begin(), methods.end(), k->second.Scalar()) == methods.end()))
          fail("project", "{}: {}.method: a compared method is an adapter on the base: {} (got '{}')", c.at(k->second),
               at, join(methods), k->second.IsScalar() ? k->second.Scalar() : "?");
        merged[key] = k->second;
      }
    const std::string m = merged["method"] ? merged["method"].Scalar() : "lora";
    if (std::find(methods.begin(), methods.end(), m) == methods.end())
      fail("project", "{}: {}: the train section's method '{}' is not an adapter; set method ({}) in the entry",
           c.at(it->first), at, m, join(methods));
    check_train(c, merged, at, false);
  }
}

std::vector<const Option*> serve_section_options() {
  std::vector<const Option*> v;
  // lathe run does not serve: the model and adapters are named when serving; keys stay out of the file.
  for (const auto& o : serve::serve_options_table().options())
    if (o.key != "model" && o.key != "adapter" && o.key != "api_key" && o.key != "admin_key") v.push_back(&o);
  return v;
}

void check_section(const Ctx& c, const std::string& k, const YAML::Node& n) {
  if (k == "project") read_section(c, n, k, all_options(project_table()));
  else if (k == "goal") read_section(c, n, k, all_options(goal_table()));
  else if (k == "base_model") {
    read_section(c, n, k, all_options(base_table()), {"build.data", "build.train"});
    const YAML::Node& b = n;
    if (b.IsMap() && b["build"] && b["build"].IsMap()) {
      if (b["build"]["data"]) check_data(c, b["build"]["data"], "base_model.build.data");
      if (b["build"]["train"]) check_train(c, b["build"]["train"], "base_model.build.train", true);
    }
  } else if (k == "data") check_data(c, n, k);
  else if (k == "train") check_train(c, n, k, false);
  else if (k == "align") check_align(c, n, k);
  else if (k == "compare") check_compare(c, n, k);
  else if (k == "eval") check_eval(c, n, k);
  else if (k == "export") read_section(c, n, k, export_section_options());
  else if (k == "serve") read_section(c, n, k, serve_section_options());
  else if (k == "retrieval") read_section(c, n, k, all_options(retrieval::retrieval_section_table()));
  else if (k == "launcher") {
    read_section(c, n, k, all_options(launcher_options_table()));  // keys, types, ranges
    check_launcher_section(c.cfg, n);  // then what a table cannot say: np required, the hostfile exists
  }
}

}  // namespace

const OptionTableBase& base_model_options_table() { return base_table(); }

std::vector<const Option*> export_section_options() {
  std::vector<const Option*> v = all_options(export_table());
  for (const char* k : {"gguf_type", "name"}) v.push_back(export_options_table().find(k));
  return v;
}

void validate_project_schema(const ProjectConfig& cfg) {
  Ctx c{cfg};
  const YAML::Node& root = cfg.root;
  if (!root.IsMap()) fail("project", "{}: expected a mapping of sections (project, goal, base_model, data, ...)", cfg.path);
  const std::vector<std::string> names = {"project", "goal", "base_model", "data", "retrieval",
                                            "train", "align", "compare", "eval", "export", "serve", "launcher"};
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->first.IsScalar()) fail("project", "{}: section names must be plain names", c.at(it->first));
    const std::string k = it->first.Scalar();
    if (std::find(names.begin(), names.end(), k) == names.end()) {
      const std::string near = closest_key(k, names);
      fail("project", "{}: unknown section '{}' ({}expected one of: {})", c.at(it->first), k,
           near.empty() ? "" : fmt::format("did you mean '{}'? ", near), join(names));
    }
    if (it->second.IsNull()) continue;  // an empty section is an absent one
    check_section(c, k, it->second);
  }
  if (!cfg.has("base_model")) fail("project", "{}: section 'base_model' is required (path: or build:)", cfg.path);
  const YAML::Node b = root["base_model"];
  if (!b["path"] == !b["build"])
    fail("project", "{}: base_model needs exactly one of 'path' (an HF directory or .gguf) or 'build'", c.at(b));
  if (!cfg.has("train")) fail("project", "{}: section 'train' is required", cfg.path);
}

}  // namespace lathe::project
