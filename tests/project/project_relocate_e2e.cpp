// A project's results must not depend on where it lives: the prepare stage run in two directories
// writes the same bytes (record ids, the split, the manifest, the token shards), and a project moved
// to another directory keeps its fingerprints, so its unchanged stages are not run again. And a run
// killed in the middle of a stage leaves that stage recorded as not done, so the next run redoes it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include <yaml-cpp/yaml.h>

#include "lathe/core/file_io.h"
#include "lathe/project/scaffold.h"
#include "project/project_test_util.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using lathe::test::run_lathe;
using lathe::test::stages_with;

void write_project(const std::string& dir, int max_steps) {
  fs::create_directories(dir + "/data");
  fs::create_directories(dir + "/tests");
  std::string qa;
  for (int i = 0; i < 40; i++)
    qa += "{\"question\":\"Where is toy number " + std::to_string(i) + "?\",\"answer\":\"Toy " + std::to_string(i) +
          " is in box " + std::to_string(i % 7) + ".\"}\n";
  lathe::write_file_atomic(dir + "/data/qa.jsonl", qa);
  lathe::write_file_atomic(dir + "/tests/prompts.jsonl", "{\"prompt\":\"Where is toy number 3?\"}\n");
  lathe::write_file_atomic(
      dir + "/project.yaml",
      "project:\n  name: relocate\n"
      "base_model:\n  path: " + lathe::test::fixture_path("models/stories260K-hf") + "\n"
      "data:\n  inputs: [data/]\n  dedup:\n    eval_prompts: [tests/prompts.jsonl]\n"
      "  format:\n    chat_template: chatml\n    max_seq_length: 64\n  split:\n    ratios: [0.8, 0.2, 0.0]\n    seed: 3\n"
      "train:\n  method: lora\n  chat_template: chatml\n  max_steps: " + std::to_string(max_steps) +
      "\n  save_steps: 0\n  per_device_train_batch_size: 2\n");
}

std::map<std::string, std::string> files_under(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = lathe::read_file(e.path().string());
  return out;
}

nlohmann::json stages_state(const std::string& dir) {
  return nlohmann::json::parse(lathe::read_file(dir + "/.lathe/state.json"))["stages"];
}

TEST(ProjectRelocate, PrepareWritesTheSameBytesAnywhereAndMovingKeepsFingerprints) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  lathe::test::TempDir a, b;
  const std::string pa = a / "p", pb = b / "elsewhere/deeper/p";
  write_project(pa, 2);
  write_project(pb, 2);
  std::string out;
  ASSERT_EQ(run_lathe("run --threads 1 --until prepare --config " + pa, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "prepare") << out;
  ASSERT_EQ(run_lathe("run --threads 1 --until prepare --config " + pb, &out, true), 0) << out;

  const auto fa = files_under(pa + "/out/data"), fb = files_under(pb + "/out/data");
  ASSERT_FALSE(fa.empty());
  ASSERT_TRUE(fa.count("records.jsonl") || fa.count("train.jsonl") || fa.size() > 2);
  for (const auto& [name, bytes] : fa) {
    ASSERT_TRUE(fb.count(name)) << name;
    EXPECT_TRUE(bytes == fb.at(name)) << name << " differs between the two project directories";
    EXPECT_EQ(bytes.find(a.path), std::string::npos) << name << " names the project's absolute location";
  }
  EXPECT_EQ(fa.size(), fb.size());
  EXPECT_EQ(stages_state(pa)["prepare"]["fingerprint"], stages_state(pb)["prepare"]["fingerprint"]);

  // Moved (renamed) with its outputs and state: nothing to redo.
  lathe::test::TempDir c;
  const std::string pc = c / "moved";
  fs::rename(pa, pc);
  ASSERT_EQ(run_lathe("run --threads 1 --until prepare --config " + pc, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "") << out;
  EXPECT_EQ(stages_with(out, "unchanged"), "prepare") << out;
}

// The bundled example with its base model made tiny: base (tokenizer, init, pre-training) and
// prepare, in two directories, give the same bytes.
TEST(ProjectRelocate, ExamplePrepareIsTheSameInTwoDirectories) {
  lathe::test::TempDir a, b;
  std::string out;
  std::map<std::string, std::string> data[2];
  int i = 0;
  for (const std::string& dir : {a / "acme", b / "x/y/acme"}) {
    const std::string file = lathe::project::init_project(dir, "acme-policy-qa");
    YAML::Node p = YAML::LoadFile(file);
    YAML::Node m = p["base_model"]["build"]["model"];
    p["base_model"]["build"]["tokenizer"]["vocab_size"] = 300;
    m["hidden_size"] = 16;
    m["intermediate_size"] = 32;
    m["num_hidden_layers"] = 1;
    m["num_attention_heads"] = 2;
    m["num_key_value_heads"] = 1;
    p["base_model"]["build"]["train"].remove("num_train_epochs");
    p["base_model"]["build"]["train"]["max_steps"] = 2;
    YAML::Emitter e;
    e << p;
    lathe::write_file_atomic(file, std::string(e.c_str()) + "\n");
    ASSERT_EQ(run_lathe("run --threads 1 --until prepare --config " + file, &out, true), 0) << out;
    EXPECT_EQ(stages_with(out, "running"), "base,prepare") << out;
    data[i++] = files_under(dir + "/out/data");
  }
  ASSERT_GT(data[0].size(), 2u);
  for (const auto& [name, bytes] : data[0]) {
    ASSERT_TRUE(data[1].count(name)) << name;
    EXPECT_TRUE(bytes == data[1].at(name)) << name << " differs between the two project directories";
  }
}

TEST(ProjectRelocate, KilledStageIsNotRecordedAsDone) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  lathe::test::TempDir d;
  const std::string p = d / "p";
  write_project(p, 300);  // long enough to be still running when killed below
  std::string out;
  ASSERT_EQ(run_lathe("run --threads 1 --config " + p, &out, true), 0) << out;
  ASSERT_TRUE(stages_state(p).contains("train"));
  // A forced rerun of train with the same settings (it rewrites metrics.jsonl), killed with the
  // stage it started as soon as it has begun.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execl(LATHE_BINARY, LATHE_BINARY, "run", "--threads", "1", "--from", "train", "--until", "train", "--force", "--config",
          p.c_str(), (char*)nullptr);
    _exit(127);
  }
  setpgid(pid, pid);
  const auto t0 = std::chrono::steady_clock::now();
  bool started = false;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    try {
      if (!stages_state(p).contains("train")) {
        started = true;
        break;
      }
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the trainer start writing
  kill(-pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(started) << "the stage was never marked as running";
  EXPECT_FALSE(stages_state(p).contains("train")) << "a killed stage is recorded as done";
  // The next run (same settings) redoes the stage instead of trusting its half-written output.
  ASSERT_EQ(run_lathe("run --threads 1 --until train --config " + p, &out, true), 0) << out;
  EXPECT_EQ(stages_with(out, "running"), "train") << out;
  EXPECT_TRUE(stages_state(p).contains("train"));
  EXPECT_GT(fs::file_size(p + "/out/train/metrics.jsonl"), 0u);
}

}  // namespace
