// lathe run's training stages: train (the train: section), compare (other methods on the same data,
// docs/project.md "compare") and align (a preference round on the trained adapter).
#include "lathe/project/stage_runner_impl.h"

#include <cstdio>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/project/align_stage.h"

namespace lathe::project::detail {

int Runner::run_train() {
  // Keys, types and ranges were checked against the schema when project.yaml was loaded; relative
  // paths stay relative: the trainer runs in the project directory.
  ordered_json tr = cfg.section_json("train");
  if (!tr.is_object()) tr = ordered_json::object();
  method = tr.value("method", std::string("lora"));
  return train_command(tr, p.train, stage_name(Stage::Train), fingerprint(Stage::Train),
                       p.state_dir + "/stages/train.yaml");
}

// `lathe train` with the settings `tr` into `output` on the project's data: the train stage and each
// compare entry. `attempt_key` and `fp` decide whether an interrupted attempt resumes.
int Runner::train_command(const ordered_json& tr, const std::string& output, const std::string& attempt_key,
                          const std::string& fp, const std::string& generated) {
  Args a = lathe({"train"});
  train_flag(a, "model", rel(p.base_model));
  const bool prepared = has_dataset_manifest(p.data);
  if (rag_training()) train_flag(a, "data", rel(rag_records()));
  else if (prepared) train_flag(a, "data", rel(p.data));
  train_flag(a, "output", rel(output));
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
  threads_flag(Stage::Train, a);
  fresh_or_resume(attempt_key, fp, output, a);
  write_yaml(generated, tr);
  train_flag(a, "config", rel(generated));
  return run_command(Stage::Train, a);
}

// An earlier attempt with the same inputs that died mid-way resumes from its last checkpoint; with
// other inputs the old output goes first, so its checkpoints are never resumed into a different run.
void Runner::fresh_or_resume(Stage s, const std::string& dir, Args& a) {
  fresh_or_resume(stage_name(s), fingerprint(s), dir, a);
}

void Runner::fresh_or_resume(const std::string& key, const std::string& fp, const std::string& dir, Args& a) {
  if (state["attempts"].value(key, "") == fp && fs::exists(dir)) {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("checkpoint-", 0) == 0) {
        train_flag(a, "resume_from_checkpoint", "latest");
        std::fprintf(stderr, "lathe run: resuming the interrupted %s from its latest checkpoint\n",
                     (key.find('/') == std::string::npos ? key + " stage" : key).c_str());
        break;
      }
  } else if (fs::exists(dir)) {
    fs::remove_all(dir);
  }
  state["attempts"][key] = fp;
  save_state();
}

// compare: the train section's settings with each entry's keys on top (an entry names what differs:
// `dora: {use_dora: true}`, `ia3: {method: ia3, learning_rate: 1e-2}`), trained on the same data
// into OUTPUT_DIR/compare/NAME and evaluated as adapter variant NAME. Each entry has its own
// fingerprint: adding one trains only it; an entry removed from the file loses its directory.
int Runner::run_compare() {
  ordered_json tr = cfg.section_json("train");
  if (!tr.is_object()) tr = ordered_json::object();
  const auto variants = compare_variants();
  if (fs::exists(p.compare))
    for (const auto& e : fs::directory_iterator(p.compare)) {
      const std::string n = e.path().filename().string();
      bool listed = false;
      for (const auto& v : variants) listed = listed || v.first == n;
      if (!listed) fs::remove_all(e.path());
    }
  if (!state.contains("compare") || !state["compare"].is_object()) state["compare"] = ordered_json::object();
  const ordered_json c = cfg.section_json("compare");
  for (const auto& [name, dir] : variants) {
    ordered_json merged = tr;
    if (c[name].is_object()) merged.update(c[name]);
    ordered_json parts{{"stage", "compare"}, {"variant", name}};
    std::vector<std::string> inputs;
    train_parts(merged, parts, inputs);
    parts["inputs"] = hash_paths(inputs, cfg.dir);
    const std::string fp = hash_bytes(parts.dump());
    if (state["compare"].value(name, "") == fp && fs::exists(dir + "/adapter_config.json")) {
      std::printf("   compare  %s unchanged, skipped\n", name.c_str());
      continue;
    }
    state["compare"].erase(name);
    save_state();
    std::printf("   compare  %s: method %s%s\n", name.c_str(), merged.value("method", std::string("lora")).c_str(),
                merged.value("use_dora", false) ? " + DoRA" : "");
    std::fflush(stdout);
    if (int rc = train_command(merged, dir, "compare/" + name, fp, p.state_dir + "/stages/compare_" + name + ".yaml"))
      return rc;
    state["compare"][name] = fp;
    save_state();
  }
  return 0;
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
  const int rc = run_process(lathe({"feedback", "export", "--data-dir", rel(dir), "--format", m == "kto" ? "kto" : "dpo",
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
  threads_flag(Stage::Align, a);
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
  return run_command(Stage::Align, a);
}

}  // namespace lathe::project::detail
