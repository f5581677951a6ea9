// `lathe run` end to end on a tiny model: every stage runs once, a second run skips them all, and a
// changed key reruns exactly the stages downstream of it; the registry lists and compares the runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/project/project_config.h"
#include "lathe/project/scaffold.h"
#include "project/project_test_util.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
using lathe::test::stages_with;
namespace fs = std::filesystem;

std::string project_yaml(double lr, int max_new_tokens) {
  return "project:\n  name: tiny\n"
         "goal:\n  task: answer questions about the toy story world\n"
         "base_model:\n  path: base\n"
         "train:\n  method: lora\n  data: chat.jsonl\n  chat_template: chatml\n  lora_r: 8\n"
         "  lora_target_modules: all-linear\n  max_steps: 12\n  per_device_train_batch_size: 4\n"
         "  save_steps: 0\n  learning_rate: " + std::to_string(lr) + "\n"
         "eval:\n  generation:\n    max_new_tokens: " + std::to_string(max_new_tokens) + "\n    template: chatml\n"
         "  cases:\n"
         "    - id: lily\n      prompt: Who is Lily?\n      assert:\n        - type: contains\n          value: girl\n"
         "export:\n  formats: [peft]\n";
}

// The tiny base model (stories260K's tokenizer, random weights) and two chat records.
void make_base_and_data(const lathe::test::TempDir& dir) {
  std::string out;
  ASSERT_EQ(run_lathe("init-model --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 --seed 5 "
                      "--initializer-range 0.2 --tokenizer " + lathe::test::fixture_path("models/stories260K-hf") +
                      " --output " + dir / "base", &out, true), 0) << out;
  std::ofstream f(dir / "chat.jsonl");
  f << R"({"question":"Who is Lily?","answer":"Lily is a girl."})" "\n"
    << R"({"question":"Where is the ball?","answer":"The ball is in the park."})" "\n";
}

TEST(Project, RunSkipsUnchangedStagesAndRerunsDownstream) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  lathe::test::TempDir dir;
  std::string out;
  ASSERT_NO_FATAL_FAILURE(make_base_and_data(dir));
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(0.02, 6));
  const std::string run = "run --threads 1 --config " + dir.path;

  int rc = run_lathe(run, &out, true);
  ASSERT_TRUE(rc == 0 || rc == 3) << out;  // the gate is off, but a tiny model may fail its case either way
  EXPECT_EQ(stages_with(out, "running"), "train,eval,export") << out;
  EXPECT_TRUE(fs::exists(dir / "out/train/adapter_config.json"));
  EXPECT_TRUE(fs::exists(dir / "out/eval/report.json"));
  EXPECT_TRUE(fs::exists(dir / "out/eval/report.html"));
  EXPECT_TRUE(fs::exists(dir / "out/export/peft/adapter_model.safetensors"));

  ASSERT_EQ(run_lathe(run, &out, true), rc) << out;
  EXPECT_EQ(stages_with(out, "running"), "") << out;
  EXPECT_EQ(stages_with(out, "unchanged"), "train,eval,export") << out;

  // An eval setting changes only the evaluation.
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(0.02, 7));
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "eval") << out;

  // A training setting reruns training and everything that reads the adapter.
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(0.03, 7));
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "train,eval,export") << out;

  // --from/--until select stages; --force ignores the fingerprints.
  run_lathe(run + " --from eval --until eval --force", &out, true);
  EXPECT_EQ(stages_with(out, "running"), "eval") << out;

  ASSERT_EQ(run_lathe("runs --json --config " + dir.path, &out), 0) << out;
  auto runs = nlohmann::json::parse(out);
  ASSERT_EQ(runs.size(), 5u);
  EXPECT_EQ(runs[0]["stages"].size(), 1u);
  // Every run that evaluated records the eval report's pass rates (an unreadable report used to be
  // swallowed, leaving the registry without metrics).
  for (const auto& r : runs) {
    ASSERT_TRUE(r["metrics"].is_object()) << r.dump();
    bool has_rate = false;
    for (const auto& [name, v] : r["metrics"].items()) has_rate |= v.is_object() && v.contains("pass_rate");
    EXPECT_TRUE(has_rate) << r["metrics"].dump();
  }
  ASSERT_EQ(run_lathe("runs --compare 1 4 --config " + dir.path, &out), 0) << out;
  EXPECT_EQ(out.find("pass rates: -"), std::string::npos) << out;
  EXPECT_NE(out.find("train.learning_rate: 0.02 -> 0.03"), std::string::npos) << out;
  EXPECT_NE(out.find("eval.generation.max_new_tokens: 6 -> 7"), std::string::npos) << out;
}

TEST(Project, TemplateLoadsAndErrorsNameTheLine) {
  lathe::test::TempDir dir;
  std::string file = lathe::project::init_project(dir / "p", "");
  lathe::project::ProjectConfig c = lathe::project::load_project(file);
  EXPECT_EQ(c.name, "my-domain-expert");
  EXPECT_DOUBLE_EQ(c.gates.min_pass_rate, 0.7);
  EXPECT_THROW(lathe::project::init_project(dir / "p", ""), lathe::Error);  // never overwrites

  lathe::write_file_atomic(dir / "bad.yaml", "base_model:\n  path: m\ntrain:\n  method: lora\ntrian:\n  x: 1\n");
  try {
    lathe::project::load_project(dir / "bad.yaml");
    FAIL() << "expected an error";
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml:5:1: unknown section 'trian' (did you mean 'train'?"), std::string::npos) << e.what();
  }
  lathe::write_file_atomic(dir / "gate.yaml", "goal:\n  gates:\n    min_pass_rate: high\nbase_model:\n  path: m\ntrain: {}\n");
  EXPECT_THROW(lathe::project::load_project(dir / "gate.yaml"), lathe::Error);
}

}  // namespace

// A retrieval: section adds the index stage: built once, skipped when nothing changed, rebuilt (with
// the evaluation after it) when a document changes; the evaluation gets the rag variants. With
// retrieval.train the index stage writes augmented records and training reads them.
TEST(Project, RetrievalSectionAddsTheIndexStage) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  lathe::test::TempDir dir;
  std::string out;
  ASSERT_NO_FATAL_FAILURE(make_base_and_data(dir));
  fs::create_directories(dir / "docs");
  lathe::write_file_atomic(dir / "docs/lily.md", "# Lily\n\nLily is a girl who has a red ball.\n");
  lathe::write_file_atomic(dir / "docs/park.md", "# Park\n\nThe ball is in the park near the tree.\n");
  auto yaml = [](bool rag_train) {
    return project_yaml(0.02, 6) + "retrieval:\n  inputs: [docs/]\n  chunk_tokens: 64\n  overlap: 8\n  k: 2\n" +
           (rag_train ? "  train: true\n  distractor_fraction: 0.5\n" : "");
  };
  lathe::write_file_atomic(dir / "project.yaml", yaml(false));
  const std::string run = "run --threads 1 --config " + dir.path;
  int rc = run_lathe(run, &out, true);
  ASSERT_TRUE(rc == 0 || rc == 3) << out;
  EXPECT_EQ(stages_with(out, "running"), "index,train,eval,export") << out;
  EXPECT_TRUE(fs::exists(dir / "out/index/index.sqlite"));
  auto report = nlohmann::json::parse(lathe::read_file(dir / "out/eval/report.json"));
  std::vector<std::string> names;
  for (auto& v : report["variants"]) names.push_back(v["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"base", "rag", "tuned", "tuned+rag"}));
  EXPECT_EQ(report["retrieval"]["k"], 2);
  EXPECT_EQ(report["cases"][0]["retrieval"]["passages"][0]["source"], "docs/lily.md:1");

  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "") << out;
  // A changed document rebuilds the index and re-evaluates; the adapter does not read it.
  lathe::write_file_atomic(dir / "docs/park.md", "# Park\n\nThe ball is under the bench in the park.\n");
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "index,eval") << out;

  // Training with retrieval: the index stage augments train.data, training reads the result.
  lathe::write_file_atomic(dir / "project.yaml", yaml(true));
  rc = run_lathe(run, &out, true);
  ASSERT_TRUE(rc == 0 || rc == 3) << out;
  EXPECT_EQ(stages_with(out, "running"), "index,train,eval,export") << out;
  const std::string aug = lathe::read_file(dir / "out/index/train_rag.jsonl");
  EXPECT_NE(aug.find("Answer the question using the passages below."), std::string::npos) << aug;
  EXPECT_NE(aug.find("Who is Lily?"), std::string::npos);
  EXPECT_NE(lathe::read_file(dir / ".lathe/stages/train.yaml").find("chat_template"), std::string::npos);
  EXPECT_NE(out.find("out/index/train_rag.jsonl"), std::string::npos) << out;
}
