// The compare stage end to end on a tiny model: the train section's settings with each entry's keys on
// top (DoRA, IA3, prompt tuning) are trained on the same data and evaluated as adapter variants; the
// report lists what each method cost to train (trainable parameters counted in the saved adapters,
// tokens/s, peak RSS) next to its pass rate; adding an entry trains only that entry, removing one
// deletes its directory; bad entries are refused with their line.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
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

std::string project_yaml(const std::string& compare) {
  return "project:\n  name: tiny\n"
         "base_model:\n  path: base\n"
         "train:\n  method: lora\n  data: chat.jsonl\n  chat_template: chatml\n  lora_r: 4\n"
         "  lora_target_modules: all-linear\n  max_steps: 4\n  per_device_train_batch_size: 2\n"
         "  save_steps: 0\n  learning_rate: 0.02\n"
         "compare:\n" + compare +
         "eval:\n  generation:\n    max_new_tokens: 4\n    template: chatml\n"
         "  cases:\n"
         "    - id: lily\n      prompt: Who is Lily?\n      assert:\n        - type: contains\n          value: girl\n"
         "export:\n  formats: [peft]\n";
}

const char* kThree =
    "  dora: {use_dora: true}\n"
    "  ia3: {method: ia3, learning_rate: 0.05}\n"
    "  pt: {method: prompt_tuning, num_virtual_tokens: 4, learning_rate: 0.05}\n";

// Elements of every tensor in a safetensors file, from its JSON header.
int64_t safetensors_elements(const std::string& path) {
  const std::string b = lathe::read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  int64_t total = 0;
  const json header = json::parse(b.substr(8, n));  // named: items() of a temporary would dangle
  for (auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    int64_t e = 1;
    for (auto& d : t["shape"]) e *= d.get<int64_t>();
    total += e;
  }
  return total;
}

class Compare : public ::testing::Test {
 protected:
  void SetUp() override {
    LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
    lathe::test::make_tiny_project_base(dir.path);
  }
  lathe::test::TempDir dir;
};

TEST_F(Compare, MethodsTrainOnTheSameDataAndTheReportComparesThem) {
  lathe::write_file_atomic(dir / "project.yaml", project_yaml(kThree));
  const std::string run = "run --threads 1 --config " + dir.path;
  std::string out;
  int rc = run_lathe(run, &out, true);
  ASSERT_TRUE(rc == 0 || rc == 3) << out;
  EXPECT_EQ(stages_with(out, "running"), "train,compare,eval,export") << out;

  // Each entry is the train section with its keys on top.
  json dora = json::parse(lathe::read_file(dir / "out/compare/dora/adapter_config.json"));
  EXPECT_EQ(dora["peft_type"], "LORA");
  EXPECT_EQ(dora["use_dora"], true);
  EXPECT_EQ(dora["r"], 4);
  EXPECT_EQ(json::parse(lathe::read_file(dir / "out/compare/ia3/adapter_config.json"))["peft_type"], "IA3");
  json pt = json::parse(lathe::read_file(dir / "out/compare/pt/adapter_config.json"));
  EXPECT_EQ(pt["peft_type"], "PROMPT_TUNING");
  EXPECT_EQ(pt["num_virtual_tokens"], 4);
  const std::string gen = lathe::read_file(dir / ".lathe/stages/compare_ia3.yaml");
  EXPECT_NE(gen.find("method: ia3"), std::string::npos) << gen;
  EXPECT_NE(gen.find("chat_template: chatml"), std::string::npos) << "inherited from train: " << gen;

  // The evaluation: one adapter variant per entry, and the cost of each next to its pass rate.
  json rep = json::parse(lathe::read_file(dir / "out/eval/report.json"));
  std::vector<std::string> names;
  for (auto& v : rep["variants"]) names.push_back(v["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"base", "tuned", "dora", "ia3", "pt"}));
  ASSERT_EQ(rep["training_cost"].size(), 4u) << rep["training_cost"].dump();
  std::map<std::string, json> cost;
  for (auto& m : rep["training_cost"]) cost[m["variant"]] = m;
  EXPECT_EQ(cost["tuned"]["method"], "lora");
  EXPECT_EQ(cost["dora"]["method"], "lora + DoRA");
  EXPECT_EQ(cost["ia3"]["method"], "ia3");
  EXPECT_EQ(cost["pt"]["method"], "prompt_tuning");
  // Trainable parameters are what the saved adapter holds.
  for (auto [variant, d] : std::vector<std::pair<std::string, std::string>>{
           {"tuned", "out/train"}, {"dora", "out/compare/dora"}, {"ia3", "out/compare/ia3"}, {"pt", "out/compare/pt"}})
    EXPECT_EQ(cost[variant]["trainable_params"].get<int64_t>(), safetensors_elements(dir / (d + "/adapter_model.safetensors")))
        << variant;
  EXPECT_GT(cost["dora"]["trainable_params"].get<int64_t>(), cost["tuned"]["trainable_params"].get<int64_t>());
  EXPECT_LT(cost["ia3"]["trainable_params"].get<int64_t>(), cost["tuned"]["trainable_params"].get<int64_t>());
  for (auto& [variant, m] : cost) {
    EXPECT_GT(m["train_tokens_per_second"].get<double>(), 0) << variant;
    EXPECT_GT(m["peak_rss_mib"].get<double>(), 1) << variant;
    EXPECT_GT(m["all_params"].get<int64_t>(), m["trainable_params"].get<int64_t>()) << variant;
    EXPECT_TRUE(m.contains("pass_rate")) << variant;
  }
  const std::string html = lathe::read_file(dir / "out/eval/report.html");
  EXPECT_NE(html.find("Training cost by method"), std::string::npos);
  EXPECT_NE(html.find("lora + DoRA"), std::string::npos);

  // Nothing changed: nothing runs.
  ASSERT_EQ(run_lathe(run, &out, true), rc) << out;
  EXPECT_EQ(stages_with(out, "running"), "") << out;

  // One more entry: only it trains, then the evaluation; the main adapter and export stay.
  lathe::write_file_atomic(dir / "project.yaml",
                           project_yaml(std::string(kThree) + "  r8: {lora_r: 8}\n"));
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "compare,eval") << out;
  for (const char* n : {"dora", "ia3", "pt"})
    EXPECT_NE(out.find(std::string("compare  ") + n + " unchanged, skipped"), std::string::npos) << n << "\n" << out;
  EXPECT_EQ(json::parse(lathe::read_file(dir / "out/compare/r8/adapter_config.json"))["r"], 8);

  // An entry removed: its directory goes and the report no longer lists it.
  lathe::write_file_atomic(dir / "project.yaml", project_yaml("  ia3: {method: ia3, learning_rate: 0.05}\n"));
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "compare,eval") << out;
  EXPECT_FALSE(fs::exists(dir / "out/compare/dora"));
  EXPECT_TRUE(fs::exists(dir / "out/compare/ia3/adapter_config.json"));
  rep = json::parse(lathe::read_file(dir / "out/eval/report.json"));
  EXPECT_EQ(rep["variants"].size(), 3u) << rep["variants"].dump().substr(0, 400);

  // A train key the entry overrides changes only the main adapter; one it inherits retrains both.
  std::string y = project_yaml("  ia3: {method: ia3, learning_rate: 0.05}\n");
  y.replace(y.find("learning_rate: 0.02"), 19, "learning_rate: 0.03");
  lathe::write_file_atomic(dir / "project.yaml", y);
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "train,compare,eval,export") << out;
  EXPECT_NE(out.find("compare  ia3 unchanged"), std::string::npos) << out;
  y.replace(y.find("max_steps: 4"), 12, "max_steps: 3");
  lathe::write_file_atomic(dir / "project.yaml", y);
  run_lathe(run, &out, true);
  EXPECT_EQ(stages_with(out, "running"), "train,compare,eval,export") << out;
  EXPECT_EQ(out.find("compare  ia3 unchanged"), std::string::npos) << out;
  EXPECT_EQ(json::parse(lathe::read_file(dir / "out/compare/ia3/adapter_config.json"))["peft_type"], "IA3");
}

TEST_F(Compare, BadEntriesNameTheirLine) {
  // The run's output for a project whose compare: section is `entries`; it must fail.
  auto refused = [&](const std::string& entries) {
    lathe::write_file_atomic(dir / "project.yaml", project_yaml(entries));
    std::string out;
    EXPECT_NE(run_lathe("run --threads 1 --config " + dir.path, &out, true), 0) << out;
    return out;
  };
  // project.yaml's compare: starts at line 15; its first entry is line 16.
  std::string out = refused("  ft: {method: full}\n");
  EXPECT_NE(out.find("project.yaml:16:"), std::string::npos) << out;
  EXPECT_NE(out.find("compare.ft.method: a compared method is an adapter"), std::string::npos) << out;
  out = refused("  tuned: {use_dora: true}\n");
  EXPECT_NE(out.find("'tuned' cannot name a variant"), std::string::npos) << out;
  out = refused("  x: {lora_rr: 8}\n");
  EXPECT_NE(out.find("lora_rr"), std::string::npos) << out;
  EXPECT_NE(out.find("lora_r"), std::string::npos) << out;
  out = refused("  x: {lora_r: 0}\n");
  EXPECT_NE(out.find("compare.x.lora_r"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir / "out/train"));  // refused before any stage ran
}

}  // namespace
