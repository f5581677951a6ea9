// project.yaml's launcher: end to end on a tiny model. With `launcher: {mpirun: {np: 2}}` the train and
// align stages run as `mpirun -np 2 lathe train ...`: the trainer reports two ranks, and the losses of
// every step equal (fp32 summation order aside) those of the same project run as one process with
// gradient_accumulation_steps doubled — the equivalence docs/distributed.md states (LoRA dropout on:
// micro-batch k keeps its mask on whichever rank runs it). The number of ranks is part of the stages'
// fingerprint, mpirun's other settings are not; a missing mpirun is reported before any stage runs,
// and a stage that fails under the launcher names the command.
// Skipped when mpirun is absent or lathe was built without MPI.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "project/project_test_util.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
using lathe::test::stages_with;
namespace fs = std::filesystem;
using nlohmann::json;

// `ga`: gradient_accumulation_steps of both training sections; `launcher`: a launcher section or "".
std::string project_yaml(int ga, const std::string& launcher, const std::string& train_data = "chat.jsonl") {
  const std::string g = std::to_string(ga);
  return "project:\n  name: tiny\n"
         "base_model:\n  path: base\n"
         "train:\n  method: lora\n  data: " + train_data + "\n  chat_template: chatml\n  lora_r: 4\n"
         "  lora_target_modules: all-linear\n  lora_dropout: 0.1\n  max_steps: 3\n  per_device_train_batch_size: 1\n"
         "  gradient_accumulation_steps: " + g + "\n  save_steps: 0\n  learning_rate: 0.02\n"
         "align:\n  method: dpo\n  data: prefs.jsonl\n  max_steps: 2\n  per_device_train_batch_size: 1\n"
         "  gradient_accumulation_steps: " + g + "\n  learning_rate: 0.01\n  save_steps: 0\n" + launcher;
}

// The launcher the tests use: --oversubscribe so that two ranks start on a one-core machine too, no
// single-copy shared memory (containers without ptrace rights refuse it; test_util.h's mpirun_prefix).
std::string mpirun_section(int np, const std::string& extra = "") {
  return "launcher:\n  mpirun:\n    np: " + std::to_string(np) +
         "\n    args: [--oversubscribe, --mca, btl_vader_single_copy_mechanism, none]\n" + extra;
}

// The training loss of every step of a metrics.jsonl, in step order.
std::vector<double> step_losses(const std::string& file) {
  std::vector<double> v;
  std::istringstream in(lathe::read_file(file));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    if (j.contains("loss") && j.contains("step")) v.push_back(j["loss"].get<double>());
  }
  return v;
}

class Launcher : public ::testing::Test {
 protected:
  void SetUp() override {
    LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
    if (!lathe::test::mpi_available()) GTEST_SKIP() << "no mpirun, or lathe built without MPI (skipping)";
    std::string out;
    ASSERT_EQ(run_lathe("init-model --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 --seed 5 "
                        "--initializer-range 0.2 --tokenizer " + lathe::test::fixture_path("models/stories260K-hf") +
                        " --output " + base.path + "/base", &out, true), 0) << out;
    const std::string chat =
        R"({"question":"Who is Lily?","answer":"Lily is a girl."})" "\n"
        R"({"question":"Where is the ball?","answer":"The ball is in the park."})" "\n"
        R"({"question":"What does Tom like?","answer":"Tom likes the red ball."})" "\n"
        R"({"question":"Is Lily happy?","answer":"Yes, Lily is happy."})" "\n"
        R"({"question":"Who plays in the park?","answer":"Lily and Tom play in the park."})" "\n";
    const std::string prefs =
        R"({"prompt":"Tell me about Lily.","chosen":"Lily is a girl.","rejected":"Lily is a dog."})" "\n"
        R"({"prompt":"Where do they play?","chosen":"In the park.","rejected":"In the sea."})" "\n"
        R"({"prompt":"What is red?","chosen":"The ball is red.","rejected":"The sky is red."})" "\n"
        R"({"prompt":"Is Tom happy?","chosen":"Yes, Tom is happy.","rejected":"No."})" "\n";
    for (const lathe::test::TempDir* d : {&a, &b}) {
      fs::create_directory_symlink(base.path + "/base", *d / "base");
      lathe::write_file_atomic(*d / "chat.jsonl", chat);
      lathe::write_file_atomic(*d / "prefs.jsonl", prefs);
    }
  }
  lathe::test::TempDir base, a, b;  // the base model; the launched project; the one-process project
};

TEST_F(Launcher, TwoRanksEqualOneProcessWithDoubleAccumulation) {
  lathe::write_file_atomic(a / "project.yaml", project_yaml(1, mpirun_section(2)));
  lathe::write_file_atomic(b / "project.yaml", project_yaml(2, ""));
  std::string out, ref;
  ASSERT_EQ(run_lathe("run --threads 1 --config " + a.path, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "train,align") << out;
  // Both training stages ran as two ranks, started by the launcher with the stage's own command.
  EXPECT_NE(out.find("lathe run: train stage under the launcher: "), std::string::npos) << out;
  EXPECT_NE(out.find("lathe run: align stage under the launcher: "), std::string::npos) << out;
  EXPECT_NE(out.find(" -np 2 --bind-to none --oversubscribe "), std::string::npos) << out;
  size_t ranks = 0;
  for (size_t at = 0; (at = out.find("data parallel over 2 ranks", at)) != std::string::npos; at++) ranks++;
  EXPECT_EQ(ranks, 4u) << "one line from each rank of each training stage\n" << out;
  EXPECT_NE(out.find("lathe train: rank 1/2: data parallel over 2 ranks"), std::string::npos) << out;
  EXPECT_NE(out.find("lathe train: data parallel: 2 ranks, "), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(a / "out/train/adapter_config.json"));
  EXPECT_TRUE(fs::exists(a / "out/align/adapter_config.json"));

  ASSERT_EQ(run_lathe("run --threads 1 --config " + b.path, &ref, true), 0) << ref;
  EXPECT_EQ(ref.find("under the launcher"), std::string::npos) << ref;
  EXPECT_EQ(ref.find("data parallel over"), std::string::npos) << ref;
  for (const char* stage : {"train", "align"}) {
    const std::vector<double> got = step_losses(a / ("out/" + std::string(stage) + "/metrics.jsonl"));
    const std::vector<double> want = step_losses(b / ("out/" + std::string(stage) + "/metrics.jsonl"));
    ASSERT_EQ(got.size(), want.size()) << stage;
    ASSERT_EQ(got.size(), std::string(stage) == "train" ? 3u : 2u) << stage;
    for (size_t i = 0; i < got.size(); i++)
      LATHE_EXPECT_CLOSE(got[i], want[i], 1e-5, 0) << stage << " step " << i + 1;
  }

  // np is part of the training stages' fingerprint; mpirun's other settings are not.
  ASSERT_EQ(run_lathe("run --threads 1 --config " + a.path, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "unchanged"), "train,align") << out;
  lathe::write_file_atomic(a / "project.yaml",
                           project_yaml(1, mpirun_section(2, "    threads_per_rank: 1\n  stages: [train, align]\n")));
  ASSERT_EQ(run_lathe("run --threads 1 --config " + a.path, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "unchanged"), "train,align") << out;
  // One rank is another global batch: both stages run again (launched with -np 1).
  lathe::write_file_atomic(a / "project.yaml", project_yaml(1, mpirun_section(1)));
  ASSERT_EQ(run_lathe("run --threads 1 --config " + a.path, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "train,align") << out;
  EXPECT_NE(out.find(" -np 1 "), std::string::npos) << out;
  // Only the align stage launched: train is one process again, with its old (launcher-free) fingerprint.
  lathe::write_file_atomic(a / "project.yaml", project_yaml(1, mpirun_section(2, "  stages: [align]\n")));
  ASSERT_EQ(run_lathe("run --threads 1 --config " + a.path, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "train,align") << out;
  EXPECT_EQ(out.find("lathe run: train stage under the launcher"), std::string::npos) << out;
  EXPECT_NE(out.find("lathe run: align stage under the launcher"), std::string::npos) << out;
}

TEST_F(Launcher, MissingMpirunIsReportedBeforeAnyStage) {
  lathe::write_file_atomic(a / "project.yaml",
                           project_yaml(1, mpirun_section(2, "    executable: no-such-mpirun\n")));
  std::string out;
  EXPECT_NE(run_lathe("run --threads 1 --config " + a.path, &out, true), 0) << out;
  EXPECT_NE(out.find("launcher.mpirun: 'no-such-mpirun' is not on PATH"), std::string::npos) << out;
  EXPECT_EQ(stages_with(out, "running"), "") << out;
  // The default, mpirun, with a PATH that has none.
  lathe::write_file_atomic(a / "project.yaml", project_yaml(1, mpirun_section(2)));
  const std::string cmd = "PATH=" + a.path + " " + std::string(LATHE_BINARY) + " run --config " + a.path + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  out.clear();
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  EXPECT_NE(pclose(f), 0) << out;
  EXPECT_NE(out.find("project.yaml:26:3: launcher.mpirun: 'mpirun' is not on PATH"), std::string::npos) << out;
  EXPECT_EQ(stages_with(out, "running"), "") << out;
}

TEST_F(Launcher, FailingRanksFailTheStageNamingTheCommand) {
  // A record the trainer cannot read: every rank stops with its error and the job ends.
  lathe::write_file_atomic(a / "bad.jsonl", "{\"neither\":\"question nor messages\"}\n");
  lathe::write_file_atomic(a / "project.yaml", project_yaml(1, mpirun_section(2), "bad.jsonl"));
  std::string out;
  const int rc = run_lathe("run --threads 1 --config " + a.path, &out, true);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "train") << out;
  EXPECT_NE(out.find("lathe train: rank "), std::string::npos) << out;
  EXPECT_NE(out.find("lathe run: stage train failed (exit "), std::string::npos) << out;
  EXPECT_NE(out.find("lathe run: the stage ran under the launcher (" + a.path + "/project.yaml:26:3, section "
                     "'launcher'): "), std::string::npos) << out;
  EXPECT_NE(out.find(" -np 2 "), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(a / "out/train/adapter_config.json"));
}

}  // namespace
