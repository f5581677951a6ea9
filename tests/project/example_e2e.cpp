// The bundled example (examples/acme-policy-qa), shrunk to seconds, through every stage of `lathe run`:
// base build (tokenizer + init + pre-training), prepare (with its planted personal data and duplicates),
// LoRA training, the DPO round on the reviewers' corrections (feedback/corrections.jsonl), eval with the
// gate and the round's fixed/broken cases, export (PEFT, merged, GGUF). The project file is the example's own
// with only sizes and step counts turned down, so a broken example or stage fails here, not in front of
// a new user. Then: a second run skips everything, and a failing gate stops before export.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "lathe/core/file_io.h"
#include "lathe/project/scaffold.h"
#include "project/project_test_util.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
using lathe::test::stages_with;
using nlohmann::json;
namespace fs = std::filesystem;

// The example's project.yaml with the model, the corpus passes and the step counts made tiny.
void shrink(const std::string& file, double min_pass_rate) {
  YAML::Node p = YAML::LoadFile(file);
  YAML::Node b = p["base_model"]["build"];
  ASSERT_TRUE(b) << "the example builds its own base model; this test expects base_model.build";
  b["tokenizer"]["vocab_size"] = 400;
  YAML::Node m = b["model"];
  m["hidden_size"] = 32;
  m["intermediate_size"] = 64;
  m["num_hidden_layers"] = 1;
  m["num_attention_heads"] = 2;
  m["num_key_value_heads"] = 1;
  b["train"].remove("num_train_epochs");
  b["train"]["max_steps"] = 4;
  p["train"].remove("num_train_epochs");
  p["train"]["max_steps"] = 6;
  p["train"]["lora_r"] = 4;
  p["train"]["save_steps"] = 3;
  ASSERT_TRUE(p["align"]) << "the example's second round: an align section";
  p["align"].remove("num_train_epochs");
  p["align"]["max_steps"] = 2;
  p["goal"]["gates"]["min_pass_rate"] = min_pass_rate;
  YAML::Emitter e;
  e << p;
  lathe::write_file_atomic(file, std::string(e.c_str()) + "\n");
}

json load_json(const std::string& path) { return json::parse(lathe::read_file(path)); }

TEST(Example, ShrunkenExampleThroughEveryStage) {
  lathe::test::TempDir dir;
  const std::string proj = dir / "acme";
  const std::string file = lathe::project::init_project(proj, "acme-policy-qa");
  shrink(file, 0.0);
  const std::string run = "run --threads 1 --config " + file;
  std::string out;

  ASSERT_EQ(run_lathe(run, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "base,prepare,index,train,align,compare,eval,export") << out;
  EXPECT_NE(out.find("gate passed"), std::string::npos) << out;
  // The corrections ask paraphrases of failing questions, never a test prompt: nothing is dropped.
  EXPECT_EQ(out.find("repeat an evaluation prompt"), std::string::npos) << out;
  EXPECT_NE(out.find("pass rates:   base "), std::string::npos) << out;

  // Base: a tokenizer trained on the project's text, and a pre-trained HF model directory.
  const std::string o = proj + "/out";
  EXPECT_TRUE(fs::exists(o + "/base/model/config.json"));
  EXPECT_TRUE(fs::exists(o + "/base/model/tokenizer.json"));

  // Prepare: the planted personal data and duplicates are found, and counts reconcile.
  json rep = load_json(o + "/data/report.json");
  const std::string r = rep.dump();
  EXPECT_TRUE(fs::exists(o + "/data/report.html"));
  EXPECT_TRUE(fs::exists(o + "/data/manifest.json"));
  std::string records;
  for (const char* split : {"train", "validation", "test"})
    if (fs::exists(o + "/data/" + split + ".records.jsonl")) records += lathe::read_file(o + "/data/" + split + ".records.jsonl");
  EXPECT_EQ(records.find("010-"), std::string::npos) << "a planted phone number survived redaction";
  EXPECT_NE(records.find("[PHONE]"), std::string::npos) << "no redaction placeholder in the records";
  int dup_drops = 0;
  for (const auto& st : rep["stages"]) {
    EXPECT_EQ(st["reconciles"], true) << st.dump();
    for (auto it = st["dropped"].begin(); it != st["dropped"].end(); ++it)
      if (it.key().find("duplicate") != std::string::npos) dup_drops += it.value().get<int>();
  }
  EXPECT_GE(dup_drops, 10) << r.substr(0, 2000);

  // Train: a PEFT adapter and per-step metrics.
  EXPECT_TRUE(fs::exists(o + "/train/adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(o + "/train/metrics.jsonl"));

  // Align: the DPO round on the corrections, continued from the tuned adapter.
  EXPECT_TRUE(fs::exists(o + "/align/adapter_model.safetensors"));
  json ad = load_json(o + "/align_data/report.json");
  EXPECT_GE(ad["kept"].get<int>(), 10) << ad.dump();
  EXPECT_EQ(ad["kept"], ad["records"]) << ad.dump();

  // Index: the policy documents, searchable.
  EXPECT_TRUE(fs::exists(o + "/index/index.sqlite"));

  // Eval: base, prompt baseline, retrieval, the tuned adapter and tuned + retrieval, the DPO round with
  // and without retrieval on every case, with perplexities, retrieval hits, the decision box, the
  // round's fixed/broken cases and the gate.
  json ev = load_json(o + "/eval/report.json");
  ASSERT_EQ(ev["variants"].size(), 13u) << ev["variants"].dump();
  std::vector<std::string> names;
  for (auto& v : ev["variants"]) names.push_back(v["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"base", "prompt", "rag", "tuned", "tuned+rag", "tuned+dpo", "tuned+dpo+rag",
                                             "dora", "dora+rag", "ia3", "ia3+rag", "prompt_tuning", "prompt_tuning+rag"}));
  // The methods of the compare: section side by side with their training cost; only tuned and its
  // round are gated (what export ships).
  std::vector<std::string> methods;
  for (auto& m : ev["training_cost"]) {
    methods.push_back(m["method"]);
    EXPECT_GT(m["trainable_params"].get<int64_t>(), 0) << m.dump();
    EXPECT_GT(m["peak_rss_mib"].get<double>(), 0) << m.dump();
    EXPECT_GT(m["train_tokens_per_second"].get<double>(), 0) << m.dump();
  }
  EXPECT_EQ(methods, (std::vector<std::string>{"lora", "dpo", "lora + DoRA", "ia3", "prompt_tuning"}));
  ASSERT_EQ(ev["decision"]["feedback_rounds"].size(), 2u) << ev["decision"].dump();
  EXPECT_EQ(ev["decision"]["feedback_rounds"][0]["parent"], "tuned");
  EXPECT_EQ(ev["decision"]["feedback_rounds"][1]["parent"], "tuned+rag");
  EXPECT_GT(ev["variants"][3]["cases"].get<int>(), 30);
  EXPECT_TRUE(ev["variants"][3]["validation"].contains("ppl"));
  EXPECT_TRUE(ev["variants"][3]["holdout"].contains("ppl"));
  // The questions are paraphrases of facts in docs/: retrieval finds most of them in its top k.
  EXPECT_GE(ev["retrieval"]["hit_at_k"].back().get<double>(), 0.8) << ev["retrieval"].dump();
  EXPECT_TRUE(ev["decision"].contains("overall")) << ev["decision"].dump();
  EXPECT_EQ(ev["gate"]["passed"], true);
  EXPECT_TRUE(fs::exists(o + "/eval/report.html"));

  // Export: every format the project asks for.
  EXPECT_TRUE(fs::exists(o + "/export/peft/adapter_config.json"));
  EXPECT_TRUE(fs::exists(o + "/export/merged/model.safetensors"));
  EXPECT_TRUE(fs::exists(o + "/export/acme-policy-qa.gguf"));

  // Nothing changed: nothing runs.
  ASSERT_EQ(run_lathe(run, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "") << out;
  EXPECT_EQ(stages_with(out, "unchanged"), "base,prepare,index,train,align,compare,eval,export") << out;

  // A gate this model cannot meet: eval reruns (its gate is part of its inputs), the run fails with
  // exit code 3 and nothing is exported.
  shrink(file, 0.99);
  ASSERT_EQ(run_lathe(run, &out, true), 3) << out;
  EXPECT_EQ(stages_with(out, "running"), "eval") << out;
  EXPECT_NE(out.find("GATE FAILED"), std::string::npos) << out;
  EXPECT_NE(out.find("export skipped"), std::string::npos) << out;

  // --until stops before eval: no verdict, whatever an older report said.
  ASSERT_EQ(run_lathe(run + " --until train", &out, true), 0) << out;
  EXPECT_NE(out.find("not evaluated"), std::string::npos) << out;
}

// `lathe init DIR` (no example): the commented template and its starter suite run as written once
// base_model points at a model and data/ holds records.
TEST(Example, TemplateProjectRunsAsWritten) {
  lathe::test::TempDir dir;
  const std::string proj = dir / "p";
  const std::string file = lathe::project::init_project(proj, "");
  {
    std::ofstream f(proj + "/data/qa.jsonl");
    for (int i = 0; i < 12; i++)
      f << "{\"question\":\"How many days of leave in year " << 2000 + i << "?\",\"answer\":\"Leave is 15 days.\"}\n"
        << "{\"question\":\"연차는 " << i + 1 << "년차에 며칠인가요?\",\"answer\":\"연차 휴가는 연 15일입니다.\"}\n";
  }
  std::string out;
  ASSERT_EQ(run_lathe("tokenizer train --input " + proj + "/data/qa.jsonl --vocab-size 300 --chat-template chatml --output " +
                          dir / "tok", &out, true), 0) << out;
  ASSERT_EQ(run_lathe("init-model --hidden-size 32 --intermediate-size 64 --num-hidden-layers 1 --num-attention-heads 2 "
                      "--num-key-value-heads 1 --seed 3 --tokenizer " + dir / "tok" + " --output " + dir / "model",
                      &out, true), 0) << out;
  YAML::Node p = YAML::LoadFile(file);
  p["base_model"]["path"] = dir / "model";
  p["train"]["num_train_epochs"] = 1;
  YAML::Emitter e;
  e << p;
  lathe::write_file_atomic(file, std::string(e.c_str()) + "\n");
  const int rc = run_lathe("run --threads 1 --config " + file, &out, true);
  EXPECT_TRUE(rc == 0 || rc == 3) << out;  // a 1-epoch toy model may fail the 0.7 gate; nothing may break
  EXPECT_EQ(stages_with(out, "running"), "prepare,train,eval" + std::string(rc == 0 ? ",export" : "")) << out;
  json ev = load_json(proj + "/out/eval/report.json");
  EXPECT_EQ(ev["variants"].size(), 3u);  // base, prompt (the starter suite's baseline), tuned
  EXPECT_EQ(ev["suite"]["cases"], 2);
}

}  // namespace
