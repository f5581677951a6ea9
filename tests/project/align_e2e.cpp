// The align stage end to end on a tiny model: a DPO round on the trained adapter runs after train,
// drops the preference record that repeats an evaluation prompt, is skipped when nothing changed and
// reruns (with the evaluation) when its data file or a key changes; the evaluation adds the variant
// tuned+dpo and lists what the round fixed and broke.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "project/project_test_util.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
using lathe::test::stages_with;
namespace fs = std::filesystem;
using nlohmann::json;

std::string project_yaml(double beta, double train_lr) {
  return "project:\n  name: tiny\n"
         "base_model:\n  path: base\n"
         "train:\n  method: lora\n  data: chat.jsonl\n  chat_template: chatml\n  lora_r: 4\n"
         "  lora_target_modules: all-linear\n  max_steps: 6\n  per_device_train_batch_size: 2\n"
         "  save_steps: 0\n  learning_rate: " + std::to_string(train_lr) + "\n"
         "align:\n  method: dpo\n  data: prefs.jsonl\n  beta: " + std::to_string(beta) + "\n"
         "  max_steps: 3\n  per_device_train_batch_size: 2\n  learning_rate: 0.01\n  save_steps: 0\n"
         "eval:\n  generation:\n    max_new_tokens: 6\n    template: chatml\n"
         "  cases:\n"
         "    - id: lily\n      prompt: Who is Lily?\n      tags: [people]\n      assert:\n        - type: contains\n          value: girl\n"
         "    - id: ball\n      prompt: Where is the red ball now?\n      tags: [things]\n      assert:\n        - type: contains\n          value: park\n"
         "export:\n  formats: [peft]\n";
}

// Preference pairs; line 2 asks the evaluation's own question and must not be trained on.
const char* kPrefs =
    R"({"prompt":"Tell me about Lily.","chosen":"Lily is a girl.","rejected":"Lily is a dog."})" "\n"
    R"({"prompt":"Who is Lily?","chosen":"Lily is a girl.","rejected":"Lily is a car."})" "\n"
    R"({"prompt":[{"role":"user","content":"Where do they play ball?"}],"chosen":[{"role":"assistant","content":"In the park."}],"rejected":[{"role":"assistant","content":"In the sea."}]})" "\n"
    R"({"chosen":[{"role":"user","content":"Is Lily happy?"},{"role":"assistant","content":"Yes, Lily is happy."}],"rejected":[{"role":"user","content":"Is Lily happy?"},{"role":"assistant","content":"No."}]})" "\n";

class Align : public ::testing::Test {
 protected:
  void SetUp() override {
    LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
    lathe::test::make_tiny_project_base(dir.path);
    lathe::write_file_atomic(dir / "prefs.jsonl", kPrefs);
  }
  lathe::test::TempDir dir;
};

TEST_F(Align, RoundRunsAfterTrainIsCachedAndEvaluated) {
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(0.1, 0.02));
  const std::string run = "run --threads 1 --config " + dir.path;
  std::string out;
  int rc = run_lathe(run, &out, true);
  ASSERT_TRUE(rc == 0 || rc == 3) << out;  // no gate; a tiny model may fail its cases either way
  EXPECT_EQ(stages_with(out, "running"), "train,align,eval,export") << out;

  // The gathered records: the contaminated pair is gone, the others are byte for byte the file's.
  EXPECT_NE(out.find("prefs.jsonl:2: matches eval prompt \"Who is Lily?\""), std::string::npos) << out;
  EXPECT_NE(out.find("align: 3 of 4 record(s) from prefs.jsonl"), std::string::npos) << out;
  const std::string kept = lathe::read_file(dir / "out/align_data/records.jsonl");
  EXPECT_EQ(kept.find("\"Who is Lily?\""), std::string::npos) << kept;
  EXPECT_NE(kept.find("Tell me about Lily."), std::string::npos) << kept;
  json dr = json::parse(lathe::read_file(dir / "out/align_data/report.json"));
  EXPECT_EQ(dr["records"], 4);
  EXPECT_EQ(dr["kept"], 3);
  EXPECT_EQ(dr["contaminated"], 1);

  // The round: an adapter continued from out/train, with TRL's metrics, prompts rendered as in SFT.
  EXPECT_TRUE(fs::exists(dir / "out/align/adapter_config.json"));
  const std::string metrics = lathe::read_file(dir / "out/align/metrics.jsonl");
  EXPECT_NE(metrics.find("rewards/margins"), std::string::npos) << metrics;
  const std::string gen = lathe::read_file(dir / ".lathe/stages/align.yaml");
  EXPECT_NE(gen.find("chat_template: chatml"), std::string::npos) << gen;
  EXPECT_NE(gen.find("beta: 0.1"), std::string::npos) << gen;
  EXPECT_EQ(gen.find("prefs.jsonl"), std::string::npos) << "data goes by flag, gathered: " << gen;

  // The evaluation: tuned and tuned+dpo, and the round's fixed/broken lists against tuned.
  json rep = json::parse(lathe::read_file(dir / "out/eval/report.json"));
  std::vector<std::string> names;
  for (auto& v : rep["variants"]) names.push_back(v["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"base", "tuned", "tuned+dpo"}));
  ASSERT_EQ(rep["decision"]["feedback_rounds"].size(), 1u) << rep["decision"].dump();
  const json& round = rep["decision"]["feedback_rounds"][0];
  EXPECT_EQ(round["variant"], "tuned+dpo");
  EXPECT_EQ(round["parent"], "tuned");
  // Fixed/broken agree with the two variants' verdicts case by case.
  for (size_t i = 0; i < rep["cases"].size(); i++) {
    const json& c = rep["cases"][i];
    const bool was = c["results"]["tuned"]["pass"], now = c["results"]["tuned+dpo"]["pass"];
    auto has = [&](const char* k) {
      for (auto& id : round[k])
        if (id == c["id"]) return true;
      return false;
    };
    EXPECT_EQ(has("fixed"), !was && now) << c["id"];
    EXPECT_EQ(has("broken"), was && !now) << c["id"];
  }
  EXPECT_TRUE(rep["training_curves"].contains("tuned+dpo")) << rep["training_curves"].dump().substr(0, 300);
  EXPECT_NE(lathe::read_file(dir / "out/eval/report.html").find("a round on tuned"), std::string::npos);

  // Nothing changed: nothing runs.
  ASSERT_EQ(run_lathe(run, &out, true), rc) << out;
  EXPECT_EQ(stages_with(out, "running"), "") << out;
  EXPECT_EQ(stages_with(out, "unchanged"), "train,align,eval,export") << out;

  // New feedback in the data file: the round and the evaluation rerun, training and export do not.
  {
    std::ofstream f(dir / "prefs.jsonl", std::ios::app);
    f << R"({"prompt":"What colour is the ball?","chosen":"The ball is red.","rejected":"The ball is blue."})" "\n";
  }
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "align,eval") << out;
  EXPECT_NE(out.find("align: 4 of 5 record(s) from prefs.jsonl"), std::string::npos) << out;

  // A key of the round: the same.
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(0.2, 0.02));
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "align,eval") << out;

  // A new SFT adapter: everything after it.
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(0.2, 0.03));
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "train,align,eval,export") << out;

  // --from/--until know the stage.
  run_lathe(run + " --from align --until align --force", &out, true);
  EXPECT_EQ(stages_with(out, "running"), "align") << out;
}

TEST_F(Align, BadRecordsNameTheirLine) {
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(0.1, 0.02));
  const std::string run = "run --threads 1 --config " + dir.path;
  std::string out;
  // DPO needs pairs: a KTO-style rated completion is refused with its file and line, before training.
  lathe::write_file_atomic(dir / "prefs.jsonl",
                           std::string(kPrefs) + R"({"prompt":"Who is Tom?","completion":"A cat.","label":false})" "\n");
  EXPECT_NE(run_lathe(run, &out, true), 0) << out;
  EXPECT_NE(out.find("prefs.jsonl:5: align.data: an unpaired"), std::string::npos) << out;
  EXPECT_EQ(stages_with(out, "running"), "train,align") << out;
  EXPECT_FALSE(fs::exists(dir / "out/align/adapter_config.json"));

  lathe::write_file_atomic(dir / "prefs.jsonl", std::string(kPrefs) + R"({"question":"q","answer":"a"})" "\n");
  EXPECT_NE(run_lathe(run, &out, true), 0) << out;
  EXPECT_NE(out.find("prefs.jsonl:5: align.data: not a preference record (fields: answer, question)"),
            std::string::npos) << out;
}

}  // namespace
