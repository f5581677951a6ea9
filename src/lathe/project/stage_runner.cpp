#include "lathe/project/stage_runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/data/data_config.h"
#include "lathe/eval/eval_options.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/peft/export_options.h"
#include "lathe/project/align_stage.h"
#include "lathe/project/content_hash.h"
#include "lathe/project/project_schema.h"
#include "lathe/project/run_registry.h"
#include "lathe/retrieval/index_options.h"
#include "lathe/train/train_options.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace lathe::project {

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Base: return "base";
    case Stage::Prepare: return "prepare";
    case Stage::Index: return "index";
    case Stage::Train: return "train";
    case Stage::Align: return "align";
    case Stage::Eval: return "eval";
    case Stage::Export: return "export";
  }
  return "?";
}

bool stage_from_name(const std::string& n, Stage* out) {
  for (Stage s : {Stage::Base, Stage::Prepare, Stage::Index, Stage::Train, Stage::Align, Stage::Eval, Stage::Export})
    if (n == stage_name(s)) {
      *out = s;
      return true;
    }
  return false;
}

ProjectPaths project_paths(const ProjectConfig& c) {
  ProjectPaths p;
  p.state_dir = c.dir + "/.lathe";
  p.registry = p.state_dir + "/runs.sqlite";
  p.base_dir = c.output_dir + "/base";
  p.base_model = c.has("base_model") && c.root["base_model"]["build"] ? p.base_dir + "/model"
                                                                        : c.resolve(c.root["base_model"]["path"].as<std::string>());
  p.data = c.output_dir + "/data";
  p.index = c.output_dir + "/index";
  p.train = c.output_dir + "/train";
  p.align = c.output_dir + "/align";
  p.align_data = c.output_dir + "/align_data";
  p.eval = c.output_dir + "/eval";
  p.export_dir = c.output_dir + "/export";
  return p;
}

namespace {

using Args = std::vector<std::string>;

const char* section_of(Stage s) {
  switch (s) {
    case Stage::Base: return "base_model";
    case Stage::Prepare: return "data";
    case Stage::Index: return "retrieval";
    default: return stage_name(s);
  }
}

// The flag of `key` in `table`: stages are called with the flags their commands declare. The schema
// checked every key of project.yaml against these tables, so a key without a flag is a bug here.
std::string flag_of(const OptionTableBase& table, const std::string& key) {
  const Option* o = table.find(key);
  LATHE_CHECK(o && !o->flag.empty(), "no flag for '{}' in the {} options", key, table.component());
  return o->flag;
}

// A value as a command-line argument: strings as they are, numbers and bools as JSON writes them.
std::string arg_of(const ordered_json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Runs `args` in the project directory (so relative paths in stage configs mean what they mean in
// project.yaml), with the terminal as its output. Returns the exit status.
int spawn(const Args& args, const std::string& cwd) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) fail("project", "cannot start {}: fork failed", args[0]);
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: write(2), not stdio.
    auto say = [](const std::string& what, const std::string& path) {
      const std::string m = "lathe run: cannot " + what + " " + path + "\n";
      if (write(2, m.data(), m.size()) < 0) _exit(127);
    };
    if (chdir(cwd.c_str()) != 0) {
      say("enter the project directory", cwd);
      _exit(127);
    }
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    say("run", args[0]);
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) fail("project", "waiting for {} failed: {}", args[0], std::strerror(errno));
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

// Every string in a section that names an existing path (or a glob that matches), resolved: the
// inputs whose content the stage's fingerprint covers, whatever the section's schema calls them.
void collect_paths(const ProjectConfig& c, const ordered_json& j, std::vector<std::string>& out) {
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s.empty() || s.size() > 4096) return;
    const std::string r = c.resolve(s);
    if (s.find_first_of("*?[") != std::string::npos) {
      for (const std::string& m : expand_inputs({r}))
        if (fs::exists(m)) out.push_back(m);
    } else if (fs::exists(r)) {
      out.push_back(r);
    }
  } else if (j.is_structured()) {
    for (const auto& x : j) collect_paths(c, x, out);
  }
}

// The same section with relative paths made absolute, for configs written under .lathe/.
ordered_json absolutize(const ProjectConfig& c, const ordered_json& j) {
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s.empty() || fs::path(s).is_absolute()) return j;
    const std::string r = c.resolve(s);
    if (fs::exists(r) || (s.find_first_of("*?[") != std::string::npos && !expand_inputs({r}).empty() &&
                          fs::exists(expand_inputs({r})[0])))
      return r;
    return j;
  }
  if (j.is_object()) {
    ordered_json o = ordered_json::object();
    for (auto it = j.begin(); it != j.end(); ++it) o[it.key()] = absolutize(c, it.value());
    return o;
  }
  if (j.is_array()) {
    ordered_json a = ordered_json::array();
    for (const auto& x : j) a.push_back(absolutize(c, x));
    return a;
  }
  return j;
}

void write_yaml(const std::string& path, const ordered_json& j) {
  YAML::Emitter e;
  e << json_to_yaml(j);
  fs::create_directories(fs::path(path).parent_path());
  write_file_atomic(path, std::string("# generated by lathe run from project.yaml; edit project.yaml instead\n") +
                              e.c_str() + "\n");
}

struct Runner {
  const ProjectConfig& cfg;
  const RunOptions& o;
  ProjectPaths p;
  std::string exe;
  ordered_json state;
  RunRegistry& reg;
  int64_t run_id;
  std::string method = "lora";
  // align.feedback exported once per lathe run (its content is part of the align fingerprint).
  mutable std::string feedback_records = "";

  std::string state_path() const { return p.state_dir + "/state.json"; }
  // retrieval.train: the train stage reads the index stage's augmented records.
  bool rag_training() const {
    return cfg.has("retrieval") && cfg.root["retrieval"]["train"] && cfg.root["retrieval"]["train"].as<bool>();
  }
  std::string rag_records() const { return p.index + "/train_rag.jsonl"; }
  void save_state() { write_file_atomic(state_path(), state.dump(2) + "\n"); }

  // Paths handed to stages are relative to the project directory (their working directory), so
  // nothing a stage writes — record ids, manifests, resolved configs — depends on where the
  // project lives.
  std::string rel(const std::string& path) const { return relative_to(path, cfg.dir); }

  Args lathe(std::initializer_list<std::string> a) const {
    Args v{exe};
    v.insert(v.end(), a);
    return v;
  }

  // What lathe run decides (paths, threads, resuming) goes to a stage as flags, which win over the
  // generated config file and the environment (core/options.h precedence).
  static void train_flag(Args& a, const std::string& key, const std::string& value) {
    a.push_back(flag_of(train_options_table(), key));
    a.push_back(value);
  }
  static void eval_flag(Args& a, const std::string& key, const std::string& value) {
    a.push_back(flag_of(eval::eval_options_table(), key));
    a.push_back(value);
  }

  // Fingerprint parts shared by several stages.
  std::string base_hash() const { return hash_path(p.base_model); }

  std::string fingerprint(Stage s) const {
    ordered_json parts = ordered_json::object();
    parts["stage"] = stage_name(s);
    std::vector<std::string> inputs;
    switch (s) {
      case Stage::Base:
        parts["build"] = cfg.section_json("base_model");
        collect_paths(cfg, parts["build"], inputs);
        break;
      case Stage::Prepare:
        parts["data"] = cfg.section_json("data");
        collect_paths(cfg, parts["data"], inputs);
        // The tokenizer decides the token shards; the eval prompts decide decontamination.
        for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) parts[f] = hash_path(p.base_model + "/" + f);
        parts["eval_prompts"] = eval_prompts_hash();
        break;
      case Stage::Index:
        parts["retrieval"] = cfg.section_json("retrieval");
        collect_paths(cfg, parts["retrieval"], inputs);
        parts["tokenizer.json"] = hash_path(p.base_model + "/tokenizer.json");  // counts the passages' tokens
        if (rag_training()) {  // the records augmented into train_rag.jsonl
          parts["data"] = hash_path(p.data);
          parts["train_data"] = cfg.section_json("train").value("data", ordered_json());
          collect_paths(cfg, parts["train_data"], inputs);
        }
        break;
      case Stage::Train:
        parts["train"] = cfg.section_json("train");
        collect_paths(cfg, parts["train"], inputs);
        parts["data"] = hash_path(p.data);
        parts["base"] = base_hash();
        if (rag_training()) parts["rag_records"] = hash_path(rag_records());
        break;
      case Stage::Align: {
        ordered_json al = cfg.section_json("align");
        parts["align"] = al;
        al.erase("feedback");  // a server's data directory: its export is the input, not its files
        collect_paths(cfg, al, inputs);
        if (!feedback_export().empty()) parts["feedback"] = hash_path(feedback_export());
        parts["adapter"] = hash_path(p.train);
        parts["base"] = base_hash();
        parts["train_method"] = method;
        parts["chat"] = {cfg.section_json("train").value("chat_template", ordered_json()),
                         cfg.section_json("train").value("system_prompt", ordered_json())};
        // The eval prompts and data.dedup decide which records the contamination check drops.
        parts["eval_prompts"] = eval_prompts_hash();
        parts["dedup"] = cfg.section_json("data").is_object() ? cfg.section_json("data").value("dedup", ordered_json())
                                                               : ordered_json();
        break;
      }
      case Stage::Eval:
        parts["eval"] = cfg.section_json("eval");
        parts["gates"] = {cfg.gates.min_pass_rate, cfg.gates.max_forgetting};
        collect_paths(cfg, parts["eval"], inputs);
        parts["adapter"] = hash_path(p.train);
        if (cfg.has("align")) parts["aligned"] = hash_path(p.align);
        parts["data"] = hash_path(p.data);
        parts["base"] = base_hash();
        if (cfg.has("retrieval")) {
          parts["retrieval"] = cfg.section_json("retrieval");
          parts["index"] = hash_path(p.index + "/index.sqlite");
        }
        break;
      case Stage::Export:
        parts["export"] = cfg.section_json("export");
        parts["adapter"] = hash_path(p.train);
        parts["base"] = base_hash();
        break;
    }
    parts["inputs"] = hash_paths(inputs, cfg.dir);
    return hash_bytes(parts.dump());
  }

  std::string eval_prompts_hash() const {
    if (!cfg.has("eval")) return "";
    std::vector<std::string> in;
    collect_paths(cfg, cfg.section_json("eval"), in);
    return hash_paths(in, cfg.dir);
  }

  bool outputs_exist(Stage s) const {
    switch (s) {
      case Stage::Base: return fs::exists(p.base_model + "/config.json");
      case Stage::Prepare: return has_dataset_manifest(p.data);
      case Stage::Index: return fs::exists(p.index + "/index.sqlite") && (!rag_training() || fs::exists(rag_records()));
      case Stage::Train: return fs::exists(p.train + "/adapter_config.json") || fs::exists(p.train + "/config.json");
      case Stage::Align: return fs::exists(p.align + "/adapter_config.json") || fs::exists(p.align + "/config.json");
      case Stage::Eval: return fs::exists(p.eval + "/report.json");
      case Stage::Export: return fs::exists(p.export_dir);
    }
    return false;
  }

  int prepare_data(ordered_json data, const std::string& name, const std::string& model, const std::string& output);
  int run_base();
  int run_prepare();
  int run_index();
  int run_train();
  int run_align();
  std::string feedback_export() const;
  void fresh_or_resume(Stage s, const std::string& dir, Args& a);
  int run_eval();
  int run_export();
};

int Runner::run_base() {
  YAML::Node b = cfg.root["base_model"]["build"];
  const std::string tok_dir = p.base_dir + "/tokenizer", init_dir = p.base_dir + "/init";
  // 1. A byte-level BPE tokenizer trained on the project's own text.
  const OptionTableBase& bt = base_model_options_table();
  Args tok = lathe({"tokenizer", "train", "--output", rel(tok_dir)});
  ordered_json tj = yaml_to_json(b["tokenizer"]);
  if (!tj.is_object()) fail("project", "{}: base_model.build.tokenizer must be a mapping", cfg.where(b));
  for (auto it = tj.begin(); it != tj.end(); ++it) {
    const std::string flag = flag_of(bt, "build.tokenizer." + it.key());
    if (it.key() == "inputs") {
      std::vector<std::string> files;
      for (const auto& x : it.value()) files.push_back(cfg.resolve(arg_of(x)));
      for (const std::string& f : expand_inputs(files)) {
        tok.push_back(flag);
        tok.push_back(rel(f));
      }
    } else {
      tok.push_back(flag);
      tok.push_back(arg_of(it.value()));
    }
  }
  if (int rc = spawn(tok, cfg.dir)) return rc;
  // 2. A randomly initialised model of the stated shape carrying that tokenizer.
  Args init = lathe({"init-model", "--tokenizer", rel(tok_dir), "--output", rel(init_dir)});
  ordered_json mj = yaml_to_json(b["model"]);
  if (!mj.is_object()) fail("project", "{}: base_model.build.model must be a mapping", cfg.where(b));
  for (auto it = mj.begin(); it != mj.end(); ++it) {
    const std::string flag = flag_of(bt, "build.model." + it.key());
    if (it.value().is_boolean()) {
      if (it.value().get<bool>()) init.push_back(flag);  // init-model's switches have no --no- form
    } else {
      init.push_back(flag);
      init.push_back(arg_of(it.value()));
    }
  }
  if (int rc = spawn(init, cfg.dir)) return rc;
  // 3. The pre-training text through the data pipeline, 4. full training from scratch.
  if (int rc = prepare_data(yaml_to_json(b["data"]), "base_data", init_dir, p.base_dir + "/data")) return rc;
  // Trained into a side directory and moved into place when done: an interrupted run never leaves a
  // half-written base model (or an emptied metrics.jsonl) where the next run would find it.
  const std::string partial = p.base_model + ".partial";
  fs::remove_all(partial);
  ordered_json tr = yaml_to_json(b["train"]);
  if (!tr.is_object()) tr = ordered_json::object();
  const std::string tgen = p.state_dir + "/stages/base_train.yaml";
  write_yaml(tgen, tr);
  Args ta = lathe({"train"});
  train_flag(ta, "config", rel(tgen));
  train_flag(ta, "method", "full");
  train_flag(ta, "model", rel(init_dir));
  train_flag(ta, "data", rel(p.base_dir + "/data"));
  train_flag(ta, "output", rel(partial));
  if (o.threads > 0) train_flag(ta, "threads", std::to_string(o.threads));
  if (int rc = spawn(ta, cfg.dir)) return rc;
  fs::remove_all(p.base_model);
  fs::rename(partial, p.base_model);
  return 0;
}

// `lathe data prepare` with the section's paths passed as flags relative to the project directory:
// in the generated config they would be resolved against .lathe/stages/ (so they had to be made
// absolute, and record ids and the manifest then carried the project's location).
int Runner::prepare_data(ordered_json data, const std::string& name, const std::string& model,
                         const std::string& output) {
  if (!data.is_object()) data = ordered_json::object();
  const auto& dt = data::data_options_table();
  Args a = lathe({"data", "prepare", flag_of(dt, "format.model"), rel(model), flag_of(dt, "output"), rel(output)});
  auto take = [&](ordered_json& obj, const std::string& key) {
    const std::string leaf = key.substr(key.rfind('.') + 1);
    if (!obj.is_object() || !obj.contains(leaf)) return;
    const ordered_json v = obj[leaf];
    obj.erase(leaf);
    for (const auto& x : v.is_array() ? v : ordered_json::array({v})) {
      a.push_back(flag_of(dt, key));
      a.push_back(rel(cfg.resolve(arg_of(x))));
    }
  };
  take(data, "inputs");
  if (data.contains("dedup")) take(data["dedup"], "dedup.eval_prompts");
  const std::string gen = p.state_dir + "/stages/" + name + ".yaml";
  ordered_json dj = ordered_json::object();
  dj["data"] = data;
  write_yaml(gen, dj);
  a.insert(a.begin() + 3, {"--config", rel(gen)});
  return spawn(a, cfg.dir);
}

int Runner::run_prepare() { return prepare_data(cfg.section_json("data"), "prepare", p.base_model, p.data); }

// `lathe index build` over the section's inputs with the base model's tokenizer (passages are
// measured in the tokens the model will read), then, with retrieval.train, `lathe index augment` of
// the prepared train split into index/train_rag.jsonl for the train stage.
int Runner::run_index() {
  ordered_json r = cfg.section_json("retrieval");
  const auto& bt = retrieval::index_build_options_table();
  Args a = lathe({"index", "build", flag_of(bt, "output"), rel(p.index), flag_of(bt, "model"), rel(p.base_model),
                  "--no-progress"});
  for (const char* k : {"chunk_tokens", "overlap", "encoder", "query_prefix", "passage_prefix", "pooling", "analyzer"})
    if (r.contains(k)) {
      a.push_back(flag_of(bt, k));
      a.push_back(std::string(k) == "encoder" ? rel(cfg.resolve(arg_of(r[k]))) : arg_of(r[k]));
    }
  const ordered_json inputs = r.value("inputs", ordered_json::array());
  for (const auto& x : inputs.is_array() ? inputs : ordered_json::array({inputs})) {
    a.push_back(flag_of(bt, "inputs"));
    a.push_back(rel(cfg.resolve(arg_of(x))));
  }
  if (int rc = spawn(a, cfg.dir)) return rc;
  if (!rag_training()) return 0;
  // The records training would read: the prepared data, else train.data.
  std::string records = p.data;
  if (!has_dataset_manifest(p.data)) {
    const YAML::Node td = cfg.has("train") ? cfg.root["train"]["data"] : YAML::Node();
    if (!td || !td.IsScalar())
      fail("project", "{}: retrieval.train needs training records (a data: section or train.data)",
           cfg.where(cfg.root["retrieval"]["train"]));
    records = cfg.resolve(td.as<std::string>());
  }
  const auto& at = retrieval::index_augment_options_table();
  Args g = lathe({"index", "augment", flag_of(at, "index"), rel(p.index), flag_of(at, "data"), rel(records),
                  flag_of(at, "output"), rel(rag_records())});
  for (const char* k : {"k", "distractor_fraction"})
    if (r.contains(k)) {
      g.push_back(flag_of(at, k));
      g.push_back(arg_of(r[k]));
    }
  if (r.contains("keep_plain")) g.push_back(r["keep_plain"].get<bool>() ? "--keep-plain" : "--no-keep-plain");
  if (r.contains("rag_template")) {
    g.push_back(flag_of(at, "rag_template"));
    g.push_back(rel(cfg.resolve(arg_of(r["rag_template"]))));
  }
  return spawn(g, cfg.dir);
}

int Runner::run_train() {
  // Keys, types and ranges were checked against the schema when project.yaml was loaded; relative
  // paths stay relative: the trainer runs in the project directory.
  ordered_json tr = cfg.section_json("train");
  if (!tr.is_object()) tr = ordered_json::object();
  method = tr.value("method", std::string("lora"));
  Args a = lathe({"train"});
  train_flag(a, "model", rel(p.base_model));
  const bool prepared = has_dataset_manifest(p.data);
  if (rag_training()) train_flag(a, "data", rel(rag_records()));
  else if (prepared) train_flag(a, "data", rel(p.data));
  train_flag(a, "output", rel(p.train));
  // The validation split, when the data has one, is the trainer's eval set.
  if (prepared) {
    DatasetManifest m;
    try {
      m = read_dataset_manifest(p.data);
    } catch (const std::exception& e) {
      fail("project", "{}: the prepared data's manifest is unreadable ({}); rerun with --from prepare --force",
           dataset_manifest_path(p.data), e.what());
    }
    const DatasetSplit* validation = m.split("validation");
    if (validation && validation->sequences > 0 && !tr.contains("eval_data")) train_flag(a, "eval_data", rel(p.data));
  }
  if (o.threads > 0) train_flag(a, "threads", std::to_string(o.threads));
  fresh_or_resume(Stage::Train, p.train, a);
  const std::string gen = p.state_dir + "/stages/train.yaml";
  write_yaml(gen, tr);
  train_flag(a, "config", rel(gen));
  return spawn(a, cfg.dir);
}

// An earlier attempt with the same inputs that died mid-way resumes from its last checkpoint; with
// other inputs the old output goes first, so its checkpoints are never resumed into a different run.
void Runner::fresh_or_resume(Stage s, const std::string& dir, Args& a) {
  const std::string fp = fingerprint(s);
  if (state["attempts"].value(stage_name(s), "") == fp && fs::exists(dir)) {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("checkpoint-", 0) == 0) {
        train_flag(a, "resume_from_checkpoint", "latest");
        std::fprintf(stderr, "lathe run: resuming the interrupted %s stage from its latest checkpoint\n", stage_name(s));
        break;
      }
  } else if (fs::exists(dir)) {
    fs::remove_all(dir);
  }
  state["attempts"][stage_name(s)] = fp;
  save_state();
}

// align.feedback: `lathe feedback export` of the server's data directory in the format the method
// reads (dpo pairs for dpo and orpo, kto's rated completions for kto), once per lathe run. "" when
// the section has no feedback key.
std::string Runner::feedback_export() const {
  if (!cfg.has("align") || !cfg.root["align"]["feedback"]) return "";
  if (!feedback_records.empty()) return feedback_records;
  const YAML::Node& fb = cfg.root["align"]["feedback"];
  const std::string dir = cfg.resolve(fb.Scalar()), out = p.state_dir + "/stages/align_feedback.jsonl";
  const std::string m = cfg.root["align"]["method"].Scalar();
  fs::create_directories(fs::path(out).parent_path());
  const int rc = spawn(lathe({"feedback", "export", "--data-dir", rel(dir), "--format", m == "kto" ? "kto" : "dpo",
                              "--output", rel(out)}),
                       cfg.dir);
  if (rc != 0) fail("project", "{}: align.feedback: lathe feedback export of {} failed (exit {})", cfg.where(fb), dir, rc);
  feedback_records = out;
  return out;
}

// A preference round (dpo | kto | orpo) that continues the train stage's adapter — the reference
// policy is that adapter, frozen — or, after full fine-tuning, its model. The records of align.data
// and of the exported feedback are gathered into OUTPUT_DIR/align_data/records.jsonl first, without
// those that repeat an evaluation prompt (align_stage.h).
int Runner::run_align() {
  ordered_json al = cfg.section_json("align");
  const std::string m = al["method"].get<std::string>();
  std::vector<std::string> files, names;
  if (al.contains("data"))
    for (const auto& x : al["data"].is_array() ? al["data"] : ordered_json::array({al["data"]})) {
      files.push_back(cfg.resolve(arg_of(x)));
      names.push_back(rel(files.back()));
    }
  if (!feedback_export().empty()) {
    files.push_back(feedback_export());
    names.push_back(rel(cfg.resolve(cfg.root["align"]["feedback"].Scalar())) + " (exported)");
  }
  const ContaminationPolicy policy = project_contamination_policy(cfg);
  const std::string records = p.align_data + "/records.jsonl";
  const AlignDataSummary sum = gather_align_data(files, names, m, project_eval_prompts(cfg), policy, records);
  report_align_data(sum, policy, p.align_data + "/report.json");
  if (sum.kept == 0) fail("project", "{}: align: no preference records to train on", cfg.where(cfg.root["align"]));

  Args a = lathe({"train"});
  if (method == "full") {
    train_flag(a, "model", rel(p.train));
    train_flag(a, "finetuning_type", "full");
  } else {
    train_flag(a, "model", rel(p.base_model));
    train_flag(a, "init_adapter", rel(p.train));
  }
  train_flag(a, "data", rel(records));
  train_flag(a, "output", rel(p.align));
  if (o.threads > 0) train_flag(a, "threads", std::to_string(o.threads));
  fresh_or_resume(Stage::Align, p.align, a);
  // The round sees prompts as SFT did: the train section's chat template and system prompt, unless
  // the align section sets its own.
  const ordered_json tr = cfg.section_json("train");
  for (const char* k : {"chat_template", "system_prompt"})
    if (!al.contains(k) && tr.is_object() && tr.contains(k)) al[k] = tr[k];
  al.erase("data");
  al.erase("feedback");
  const std::string gen = p.state_dir + "/stages/align.yaml";
  write_yaml(gen, absolutize(cfg, al));
  train_flag(a, "config", rel(gen));
  return spawn(a, cfg.dir);
}

int Runner::run_eval() {
  ordered_json ev = absolutize(cfg, cfg.section_json("eval"));
  const std::string gen = p.state_dir + "/stages/eval.yaml";
  ordered_json suite = ev;
  std::string holdout;
  if (suite.contains("holdout")) {
    holdout = suite["holdout"].get<std::string>();
    suite.erase("holdout");
  }
  // `suite: FILE` points at a whole suite file (docs/eval.md) instead of writing it inline.
  std::string tests = gen;
  if (suite.contains("suite")) {
    if (suite.size() != 1)
      fail("project", "{}: eval.suite names a suite file; the other suite keys belong in that file (holdout may stay)",
           cfg.where(cfg.root["eval"]["suite"]));
    tests = suite["suite"].get<std::string>();
  } else {
    write_yaml(gen, suite);
  }
  Args a = lathe({"eval"});
  eval_flag(a, "model", rel(p.base_model));
  eval_flag(a, "tests", rel(tests));
  eval_flag(a, "output", rel(p.eval));
  if (method != "full") eval_flag(a, "adapter", "tuned=" + rel(p.train));
  // The preference round, named after its parent: the report lists what it fixed and broke (docs/eval.md).
  const std::string aligned = cfg.has("align") ? "tuned+" + cfg.root["align"]["method"].Scalar() : "";
  if (!aligned.empty() && method != "full") {
    if (!outputs_exist(Stage::Align))
      fail("project", "{}: align: {} has no adapter yet; run the align stage first (lathe run --from align)",
           cfg.where(cfg.root["align"]), p.align);
    eval_flag(a, "adapter", aligned + "=" + rel(p.align));
  }
  if (has_dataset_manifest(p.data)) eval_flag(a, "eval_data", rel(p.data));
  if (!holdout.empty()) eval_flag(a, "holdout", holdout);
  if (cfg.has("retrieval")) {
    const ordered_json r = absolutize(cfg, cfg.section_json("retrieval"));
    eval_flag(a, "retrieval", rel(p.index));
    if (r.contains("k")) eval_flag(a, "retrieval_k", arg_of(r["k"]));
    if (r.contains("rag_template")) eval_flag(a, "rag_template", arg_of(r["rag_template"]));
  }
  if (fs::exists(p.train + "/metrics.jsonl"))
    eval_flag(a, "train_metrics", (method == "full" ? "full=" : "tuned=") + rel(p.train) + "/metrics.jsonl");
  if (!aligned.empty() && method != "full" && fs::exists(p.align + "/metrics.jsonl"))
    eval_flag(a, "train_metrics", aligned + "=" + rel(p.align) + "/metrics.jsonl");
  if (cfg.gates.min_pass_rate >= 0) eval_flag(a, "min_pass_rate", fmt::format("{}", cfg.gates.min_pass_rate));
  if (cfg.gates.max_forgetting >= 0) eval_flag(a, "max_forgetting", fmt::format("{}", cfg.gates.max_forgetting));
  return spawn(a, cfg.dir);
}

int Runner::run_export() {
  ordered_json ex = cfg.section_json("export");
  std::vector<std::string> formats = {"peft"};
  if (ex.is_object() && ex.contains("formats")) formats = ex["formats"].get<std::vector<std::string>>();
  for (const std::string& f : formats) {
    // GGUF formats are single files; they get the name llama.cpp users expect to pass to -m / --lora.
    const std::string dest = f == "gguf"        ? p.export_dir + "/" + cfg.name + ".gguf"
                             : f == "gguf-lora" ? p.export_dir + "/" + cfg.name + "-lora.gguf"
                                                : p.export_dir + "/" + f;
    const auto& et = export_options_table();
    Args a = lathe({"export", flag_of(et, "model"), rel(p.base_model), flag_of(et, "format"), f, flag_of(et, "output"),
                    rel(dest)});
    if (method != "full") {
      a.push_back(flag_of(et, "adapter"));
      a.push_back(rel(p.train));
    }
    // The section's other keys are export_options_table's (project_schema.h), passed on as flags.
    if (ex.is_object())
      for (auto it = ex.begin(); it != ex.end(); ++it)
        if (it.key() != "formats") {
          a.push_back(flag_of(et, it.key()));
          a.push_back(arg_of(it.value()));
        }
    if (int rc = spawn(a, cfg.dir)) return rc;
  }
  return 0;
}

}  // namespace

const OptionTable<RunCommandOptions>& run_options_table() {
  using C = RunCommandOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("run");
    const std::vector<std::string> stages = {"base", "prepare", "index", "train", "align", "eval", "export"};
    t.add("config", &C::config, "The project file (default: ./project.yaml), or its directory");
    t.add("from", [](C& c) -> auto& { return c.run.from; }, "First stage to consider").one_of(stages);
    t.add("until", [](C& c) -> auto& { return c.run.until; }, "Last stage to run").one_of(stages);
    t.add("force", [](C& c) -> auto& { return c.run.force; }, "Run stages even when their inputs are unchanged");
    t.add("threads", [](C& c) -> auto& { return c.run.threads; }, "Threads for each stage (0 = all cores)").min(0);
    return t;
  }();
  return table;
}

RunOutcome run_project(const ProjectConfig& cfg, const RunOptions& opts) {
  ProjectPaths p = project_paths(cfg);
  fs::create_directories(p.state_dir);
  RunRegistry reg(p.registry);
  RunOutcome out;
  out.run_id = reg.begin_run(cfg.json);
  Runner r{cfg, opts, p, opts.exe.empty() ? fs::read_symlink("/proc/self/exe").string() : opts.exe,
           ordered_json::object(), reg, out.run_id};
  if (fs::exists(r.state_path())) {
    try {
      r.state = read_ordered_json_file_bounded(r.state_path(), "project");
      if (!r.state.is_object()) throw std::runtime_error("not a JSON object");
    } catch (const std::exception& e) {
      // A damaged state file only costs reruns, but the user is told why everything runs again.
      std::fprintf(stderr, "lathe run: warning: %s is unreadable (%s); every stage runs again\n", r.state_path().c_str(),
                   e.what());
      r.state = ordered_json::object();
    }
  }
  if (!r.state.contains("stages")) r.state["stages"] = ordered_json::object();
  if (!r.state.contains("attempts")) r.state["attempts"] = ordered_json::object();
  if (cfg.has("train") && cfg.root["train"]["method"]) r.method = cfg.root["train"]["method"].as<std::string>();

  std::vector<Stage> stages;
  if (cfg.root["base_model"]["build"]) stages.push_back(Stage::Base);
  if (cfg.has("data")) stages.push_back(Stage::Prepare);
  if (cfg.has("retrieval")) stages.push_back(Stage::Index);
  stages.push_back(Stage::Train);
  if (cfg.has("align")) stages.push_back(Stage::Align);
  if (cfg.has("eval")) stages.push_back(Stage::Eval);
  if (cfg.has("export")) stages.push_back(Stage::Export);
  Stage from = stages.front(), until = stages.back();
  if (!opts.from.empty() && !stage_from_name(opts.from, &from)) fail("project", "--from: unknown stage '{}'", opts.from);
  if (!opts.until.empty() && !stage_from_name(opts.until, &until)) fail("project", "--until: unknown stage '{}'", opts.until);

  RunRecord rec;
  rec.verdict = "incomplete";
  bool gate_failed = false;
  bool evaluated = false;  // the eval stage ran or was skipped as unchanged in this run's range
  for (Stage s : stages) {
    if (s < from || s > until) continue;
    if (s == Stage::Export && gate_failed) {
      std::fprintf(stderr, "lathe run: export skipped: the evaluation gate failed\n");
      reg.add_stage(out.run_id, {stage_name(s), "skipped-gate", "", 0, 0});
      continue;
    }
    const std::string fp = r.fingerprint(s);
    const ordered_json& prev = r.state["stages"].contains(stage_name(s)) ? r.state["stages"][stage_name(s)] : ordered_json();
    const bool same = prev.is_object() && prev.value("fingerprint", "") == fp && r.outputs_exist(s);
    if (same && !opts.force) {
      const int prev_rc = prev.value("exit_code", 0);
      std::printf("== %-8s unchanged, skipped\n", stage_name(s));
      reg.add_stage(out.run_id, {stage_name(s), "skipped", fp, 0, prev_rc});
      if (s == Stage::Eval && prev_rc == 3) gate_failed = true;
      if (s == Stage::Eval) evaluated = true;
      continue;
    }
    // Not done until it finishes: a run killed mid-stage must not leave the old record claiming the
    // (now partly rewritten) outputs are current.
    r.state["stages"].erase(stage_name(s));
    r.save_state();
    std::printf("== %-8s running\n", stage_name(s));
    const auto t0 = std::chrono::steady_clock::now();
    int rc = 0;
    switch (s) {
      case Stage::Base: rc = r.run_base(); break;
      case Stage::Prepare: rc = r.run_prepare(); break;
      case Stage::Index: rc = r.run_index(); break;
      case Stage::Train: rc = r.run_train(); break;
      case Stage::Align: rc = r.run_align(); break;
      case Stage::Eval: rc = r.run_eval(); break;
      case Stage::Export: rc = r.run_export(); break;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool gate = s == Stage::Eval && rc == 3;
    reg.add_stage(out.run_id, {stage_name(s), rc == 0 ? "ran" : gate ? "gate-failed" : "failed", fp, secs, rc});
    std::printf("== %-8s %s in %.1f s\n", stage_name(s), rc == 0 ? "done" : gate ? "GATE FAILED" : "FAILED", secs);
    if (rc != 0 && !gate) {
      std::fprintf(stderr, "lathe run: stage %s failed (exit %d); its settings come from %s (section '%s')\n",
                   stage_name(s), rc, cfg.path.c_str(), section_of(s));
      out.exit_code = rc;
      reg.finish_run(out.run_id, rec);
      out.verdict = "incomplete";
      return out;
    }
    gate_failed = gate_failed || gate;
    if (s == Stage::Eval) evaluated = true;
    // Fingerprints are taken again after the run: a stage's own outputs never feed its fingerprint,
    // but the base stage creates the tokenizer that later fingerprints read.
    r.state["stages"][stage_name(s)] = {{"fingerprint", r.fingerprint(s)}, {"exit_code", rc}, {"finished_at", utc_now_iso()}};
    r.save_state();
  }
  rec.data_hash = hash_path(p.data);
  rec.base_hash = r.base_hash();
  rec.artifacts = {{"base_model", p.base_model}, {"data", p.data}, {"train", p.train}, {"eval", p.eval},
                   {"export", p.export_dir}};
  if (cfg.has("align")) rec.artifacts["align"] = p.align;
  if (fs::exists(p.eval + "/report.json")) {
    try {
      ordered_json rep = read_ordered_json_file_bounded(p.eval + "/report.json", "project");
      // One object keyed by variant name (plus the gate), whether the report has a summary or only
      // its list of variants; `lathe runs` reads pass rates from either shape.
      if (rep.contains("summary") && rep["summary"].is_object()) {
        rec.metrics = rep["summary"];
      } else {
        rec.metrics = ordered_json::object();
        for (const auto& v : rep.value("variants", ordered_json::array()))
          if (v.is_object()) rec.metrics[v.value("name", std::string("?"))] = v;
      }
      if (rep.contains("gate")) rec.metrics["gate"] = rep["gate"];
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lathe run: warning: %s/report.json is unreadable (%s); the run is recorded without metrics\n",
                   p.eval.c_str(), e.what());
    }
  }
  const bool has_gate = cfg.gates.min_pass_rate >= 0 || cfg.gates.max_forgetting >= 0;
  // A run that stopped before eval (--until train) has no verdict yet, whatever an older report says.
  if (cfg.has("eval") && !evaluated) rec.verdict = "incomplete";
  else rec.verdict = gate_failed ? "fail" : has_gate ? "pass" : "no-gate";
  reg.finish_run(out.run_id, rec);
  out.verdict = rec.verdict;
  out.exit_code = gate_failed ? 3 : 0;
  return out;
}

}  // namespace lathe::project
