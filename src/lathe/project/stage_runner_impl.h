// lathe run's stage runner, shared by the files that implement its stages (stage_runner.cpp: base,
// prepare, index, eval, export and the run loop; train_stages.cpp: train, compare, align). Internal to
// the project layer: nothing outside src/lathe/project includes it.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/core/options.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/project/content_hash.h"
#include "lathe/project/launcher.h"
#include "lathe/project/project_config.h"
#include "lathe/project/run_registry.h"
#include "lathe/project/stage_runner.h"
#include "lathe/train/train_options.h"
#include "lathe/eval/eval_options.h"

namespace lathe::project::detail {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;
using nlohmann::ordered_json;

// The section of project.yaml a stage's settings come from (for its failure message).
const char* section_of(Stage s);
// The flag of `key` in `table`: stages are called with the flags their commands declare.
std::string flag_of(const OptionTableBase& table, const std::string& key);
// A value as a command-line argument: strings as they are, numbers and bools as JSON writes them.
std::string arg_of(const ordered_json& v);
// Every string in a section that names an existing path (or a glob that matches), resolved.
void collect_paths(const ProjectConfig& c, const ordered_json& j, std::vector<std::string>& out);
// Relative paths in a section resolved against the project directory.
ordered_json absolutize(const ProjectConfig& c, const ordered_json& j);
// A generated stage config (atomic), with a header saying where it came from.
void write_yaml(const std::string& path, const ordered_json& j);

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
  // launcher: (launcher.h): the stages it names start as `mpirun -np N ... lathe ...`.
  Launcher launcher{};
  std::string mpirun{};  // the launcher program, resolved before the first stage runs
  std::string launched{};  // the last launched command line of the current stage, for its failure message

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

  // A stage's command, in the project directory: as one process, or under the launcher when the
  // launcher names `rule` (the stage whose setting decides: base's data step follows prepare's).
  // The one place launched command lines are made, so every stage starts its ranks the same way.
  int run_command(Stage rule, const Args& a) {
    if (!launcher.launches(stage_name(rule))) return run_process(a, cfg.dir);
    const Args full = launcher_argv(launcher, mpirun, a);
    launched = shell_join(full);
    std::fflush(stdout);  // after "== STAGE running", also when stdout is a pipe
    std::fprintf(stderr, "lathe run: %s stage under the launcher: %s\n", stage_name(rule), launched.c_str());
    return run_process(full, cfg.dir);
  }
  // The training stages' thread count: a launched stage's ranks take launcher.mpirun.threads_per_rank
  // (without it, lathe run --threads; without both, each rank takes its machine's cores / its ranks).
  void threads_flag(Stage s, Args& a) const {
    const int n = launcher.launches(stage_name(s)) && launcher.threads_per_rank > 0 ? launcher.threads_per_rank : o.threads;
    if (n > 0) train_flag(a, "threads", std::to_string(n));
  }
  // The number of ranks decides the global batch and the data order of a training stage, so it is part
  // of the fingerprint of a launched one (the hostfile, mpirun's arguments and the threads are not:
  // they do not change the result). Absent without a launcher, so older fingerprints stay valid.
  void launcher_part(Stage s, ordered_json& parts) const {
    if (launcher.launches(stage_name(s))) parts["launcher_np"] = launcher.np;
  }

  std::string fingerprint(Stage s) const {
    ordered_json parts = ordered_json::object();
    parts["stage"] = stage_name(s);
    std::vector<std::string> inputs;
    switch (s) {
      case Stage::Base:
        parts["build"] = cfg.section_json("base_model");
        collect_paths(cfg, parts["build"], inputs);
        launcher_part(s, parts);
        break;
      case Stage::Prepare:
        parts["data"] = cfg.section_json("data");
        collect_paths(cfg, parts["data"], inputs);
        // The tokenizer decides the token shards; the eval prompts decide decontamination.
        for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) parts[f] = hash_path(p.base_model + "/" + f);
        parts["eval_prompts"] = eval_prompts_hash();
        // Absent without a review file, so older fingerprints stay valid.
        if (fs::exists(p.data_review)) parts["review"] = hash_path(p.data_review);
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
        train_parts(cfg.section_json("train"), parts, inputs);
        break;
      case Stage::Compare:
        parts["compare"] = cfg.section_json("compare");
        collect_paths(cfg, parts["compare"], inputs);
        train_parts(cfg.section_json("train"), parts, inputs);
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
        launcher_part(s, parts);
        break;
      }
      case Stage::Eval:
        parts["eval"] = cfg.section_json("eval");
        parts["gates"] = {cfg.gates.min_pass_rate, cfg.gates.max_forgetting};
        collect_paths(cfg, parts["eval"], inputs);
        parts["adapter"] = hash_path(p.train);
        if (cfg.has("align")) parts["aligned"] = hash_path(p.align);
        if (cfg.has("compare")) parts["compared"] = hash_path(p.compare);
        parts["data"] = hash_path(p.data);
        parts["base"] = base_hash();
        if (cfg.has("retrieval")) {
          parts["retrieval"] = cfg.section_json("retrieval");
          parts["index"] = hash_path(p.index + "/index.sqlite");
        }
        if (fs::exists(p.eval_overrules)) parts["overrules"] = hash_path(p.eval_overrules);
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

  // What a training run's result depends on: its settings and their input files, the prepared data,
  // the base, the records retrieval augmented and the number of ranks (train, and each compare entry).
  void train_parts(const ordered_json& tr, ordered_json& parts, std::vector<std::string>& inputs) const {
    parts["train"] = tr;
    collect_paths(cfg, parts["train"], inputs);
    parts["data"] = hash_path(p.data);
    parts["base"] = base_hash();
    if (rag_training()) parts["rag_records"] = hash_path(rag_records());
    launcher_part(Stage::Train, parts);
  }

  // compare: entries in file order: variant name, output directory.
  std::vector<std::pair<std::string, std::string>> compare_variants() const {
    std::vector<std::pair<std::string, std::string>> v;
    const ordered_json c = cfg.has("compare") ? cfg.section_json("compare") : ordered_json();
    if (c.is_object())
      for (auto it = c.begin(); it != c.end(); ++it) v.emplace_back(it.key(), p.compare + "/" + it.key());
    return v;
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
      case Stage::Compare:
        for (const auto& v : compare_variants())
          if (!fs::exists(v.second + "/adapter_config.json")) return false;
        return true;
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
  void fresh_or_resume(const std::string& key, const std::string& fp, const std::string& dir, Args& a);
  int train_command(const ordered_json& tr, const std::string& output, const std::string& attempt_key,
                    const std::string& fp, const std::string& generated);
  int run_compare();
  int run_eval();
  int run_export();
};

}  // namespace lathe::project::detail
