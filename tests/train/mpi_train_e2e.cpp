// Data-parallel `lathe train` under `mpirun -np 2` on loopback, against one process: two ranks with
// gradient_accumulation_steps A compute the micro-batches, dropout masks and scales of one process
// with 2A, so losses, metrics and the trained weights agree within fp32 summation order (the
// gradients are summed in another order); two runs with the same ranks agree bitwise; a run resumes
// under MPI bitwise; resuming with another number of ranks is refused; a killed rank ends the job
// with the rank named, never a hang. Skipped where mpirun or an MPI build is missing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/safetensors.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
using lathe::test::run_lathe_mpi;
namespace fs = std::filesystem;

#define REQUIRE_MPI() \
  if (!lathe::test::mpi_available()) GTEST_SKIP() << "mpirun or an MPI build of lathe is missing"

struct Fixture {
  lathe::test::TempDir dir;
  std::string base, data, pref;
  Fixture() {
    base = dir / "base";
    data = dir / "data.jsonl";
    pref = dir / "pref.jsonl";
    std::string out;
    EXPECT_EQ(run_lathe("init-model --arch qwen2 --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 "
                        "--num-attention-heads 4 --num-key-value-heads 2 --vocab-size 100 --tie-word-embeddings "
                        "--initializer-range 0.2 --seed 3 --output " + base, &out, true), 0) << out;
    lathe::Rng r(11);
    auto seq = [&](int n) {
      std::vector<int> ids;
      for (int t = 0; t < n; t++) ids.push_back(3 + int(r.next_u64() % 97));
      return ids;
    };
    std::ofstream f(data);
    for (int i = 0; i < 24; i++) {  // lengths differ, so the ranks' micro-batches carry different token counts
      std::vector<int> ids = seq(6 + int(r.next_u64() % 14)), labels = ids;
      for (int t = 0; t < 3; t++) labels[size_t(t)] = -100;
      f << nlohmann::json{{"input_ids", ids}, {"labels", labels}}.dump() << "\n";
    }
    std::ofstream p(pref);
    for (int i = 0; i < 16; i++)
      p << nlohmann::json{{"prompt_input_ids", seq(4 + i % 3)}, {"chosen_input_ids", seq(3 + i % 4)},
                          {"rejected_input_ids", seq(2 + i % 5)}}.dump() << "\n";
  }
};

std::vector<nlohmann::json> step_rows(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) rows.push_back(j);
    }
  return rows;
}

// Every metric of every step within rtol (tokens exactly); timing keys are skipped.
void expect_same_metrics(const std::string& a, const std::string& b, double rtol) {
  auto ra = step_rows(a), rb = step_rows(b);
  ASSERT_EQ(ra.size(), rb.size());
  ASSERT_FALSE(ra.empty());
  for (size_t i = 0; i < ra.size(); i++)
    for (auto& [k, v] : ra[i].items()) {
      if (k == "tokens_per_s" || k == "elapsed_s") continue;
      ASSERT_TRUE(rb[i].contains(k)) << k << " missing at step " << i + 1;
      if (k == "tokens" || k == "step") {
        EXPECT_EQ(v, rb[i][k]) << k;
        continue;
      }
      const double x = v.get<double>(), y = rb[i][k].get<double>();
      EXPECT_LE(std::fabs(x - y), rtol * std::max(std::fabs(x), 1e-3)) << k << " at step " << i + 1 << ": " << x
                                                                         << " vs " << y;
    }
}

// Every tensor of two saved models/adapters within rtol of the larger magnitude of the tensor.
void expect_same_weights(const std::string& a, const std::string& b, double rtol) {
  auto ca = lathe::SafetensorsCollection::open_dir(a), cb = lathe::SafetensorsCollection::open_dir(b);
  ASSERT_EQ(ca.names(), cb.names());
  for (const std::string& n : ca.names()) {
    lathe::Tensor x = ca.tensor(n), y = cb.tensor(n);
    ASSERT_EQ(x.numel(), y.numel()) << n;
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < x.numel(); i++) {
      scale = std::max(scale, double(std::fabs(x.f32()[i])));
      diff = std::max(diff, double(std::fabs(x.f32()[i] - y.f32()[i])));
    }
    EXPECT_LE(diff, rtol * std::max(scale, 1e-6)) << n;
  }
}

std::string lora_args(const Fixture& fx, int steps = 6) {
  return "train --model " + fx.base + " --data " + fx.data +
         " --method lora --lora-target-modules all-linear --lora-r 8 --lora-alpha 16 --lora-dropout 0.1"
         " --learning-rate 1e-2 --max-steps " + std::to_string(steps) +
         " --per-device-train-batch-size 2 --lr-scheduler-type cosine --warmup-steps 1 --threads 1";
}

TEST(MpiTrain, LoraMatchesOneProcessAndRepeatsBitwise) {
  REQUIRE_MPI();
  Fixture fx;
  std::string out;
  ASSERT_EQ(run_lathe(lora_args(fx) + " --gradient-accumulation-steps 4 --save-steps 0 --output " + fx.dir / "one",
                      &out, true), 0) << out;
  ASSERT_EQ(run_lathe_mpi(2, lora_args(fx) + " --gradient-accumulation-steps 2 --save-steps 0 --output " +
                                 fx.dir / "two", &out, true), 0) << out;
  EXPECT_NE(out.find("data parallel over 2 ranks"), std::string::npos) << out;
  EXPECT_NE(out.find("MiB of gradients a step"), std::string::npos) << out;
  expect_same_metrics(fx.dir / "one/metrics.jsonl", fx.dir / "two/metrics.jsonl", 1e-5);
  expect_same_weights(fx.dir / "one", fx.dir / "two", 1e-5);
  // Only rank 0 writes: one metrics row per step, not two.
  EXPECT_EQ(step_rows(fx.dir / "two/metrics.jsonl").size(), 6u);
  // The same ranks and threads again: the same bits.
  ASSERT_EQ(run_lathe_mpi(2, lora_args(fx) + " --gradient-accumulation-steps 2 --save-steps 0 --output " +
                                 fx.dir / "again", &out, true), 0) << out;
  EXPECT_EQ(lathe::read_file(fx.dir / "two/adapter_model.safetensors"),
            lathe::read_file(fx.dir / "again/adapter_model.safetensors"));
  expect_same_metrics(fx.dir / "two/metrics.jsonl", fx.dir / "again/metrics.jsonl", 0.0);
}

TEST(MpiTrain, FullFineTuningMatchesOneProcess) {
  REQUIRE_MPI();
  Fixture fx;
  const std::string args = "train --model " + fx.base + " --data " + fx.data +
                           " --method full --learning-rate 1e-3 --max-steps 3 --per-device-train-batch-size 2"
                           " --save-steps 0 --threads 1 --output ";
  std::string out;
  ASSERT_EQ(run_lathe(args + fx.dir / "one" + " --gradient-accumulation-steps 2", &out, true), 0) << out;
  ASSERT_EQ(run_lathe_mpi(2, args + fx.dir / "two" + " --gradient-accumulation-steps 1", &out, true), 0) << out;
  // Every bucket of the full model's gradients but the embeddings' started during the backward.
  EXPECT_NE(out.find("overlapped the backward"), std::string::npos) << out;
  expect_same_metrics(fx.dir / "one/metrics.jsonl", fx.dir / "two/metrics.jsonl", 1e-5);
  expect_same_weights(fx.dir / "one", fx.dir / "two", 1e-5);
}

TEST(MpiTrain, DpoMatchesOneProcess) {
  REQUIRE_MPI();
  Fixture fx;
  const std::string args = "train --model " + fx.base + " --data " + fx.pref +
                           " --method dpo --beta 0.2 --lora-target-modules all-linear --lora-r 8 --lora-alpha 16"
                           " --learning-rate 1e-2 --max-steps 3 --per-device-train-batch-size 2 --save-steps 0"
                           " --threads 1 --output ";
  std::string out;
  ASSERT_EQ(run_lathe(args + fx.dir / "one" + " --gradient-accumulation-steps 2", &out, true), 0) << out;
  ASSERT_EQ(run_lathe_mpi(2, args + fx.dir / "two" + " --gradient-accumulation-steps 1", &out, true), 0) << out;
  // rewards/* and logps/* are means over both ranks' examples, gathered by rank 0.
  expect_same_metrics(fx.dir / "one/metrics.jsonl", fx.dir / "two/metrics.jsonl", 1e-5);
  EXPECT_TRUE(step_rows(fx.dir / "two/metrics.jsonl").back().contains("rewards/accuracies"));
  expect_same_weights(fx.dir / "one", fx.dir / "two", 1e-5);
}

TEST(MpiTrain, ResumesUnderMpiAndRefusesAnotherRankCount) {
  REQUIRE_MPI();
  Fixture fx;
  const std::string args = lora_args(fx) + " --gradient-accumulation-steps 1 --save-steps 2 --output ";
  std::string out;
  ASSERT_EQ(run_lathe_mpi(2, args + fx.dir / "full", &out, true), 0) << out;
  // An interrupted run: only checkpoint-4 survived. Every rank reads it; the rest of the run is the same.
  fs::create_directories(fx.dir / "cut");
  fs::copy(fx.dir / "full/checkpoint-4", fx.dir / "cut/checkpoint-4", fs::copy_options::recursive);
  ASSERT_EQ(run_lathe_mpi(2, args + fx.dir / "cut" + " --resume-from-checkpoint latest", &out, true), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(lathe::read_file(fx.dir / "full/adapter_model.safetensors"),
            lathe::read_file(fx.dir / "cut/adapter_model.safetensors"));
  auto full = step_rows(fx.dir / "full/metrics.jsonl"), cut = step_rows(fx.dir / "cut/metrics.jsonl");
  ASSERT_EQ(cut.size(), 2u);
  EXPECT_EQ(cut[0]["loss"], full[4]["loss"]);
  EXPECT_EQ(cut[1]["loss"], full[5]["loss"]);
  // One process cannot continue a two-rank run: its global batch and data order differ.
  EXPECT_NE(run_lathe(args + fx.dir / "full" + " --resume-from-checkpoint " + fx.dir / "full/checkpoint-4", &out, true),
            0);
  EXPECT_NE(out.find("2 rank(s)"), std::string::npos) << out;
}

// The pid of the lathe process of MPI rank `rank` whose parent is `parent` (0 when not found yet).
pid_t rank_pid(pid_t parent, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream st(e.path() / "stat");
    std::string pid, comm, state;
    pid_t ppid = 0;
    if (!(st >> pid >> comm >> state >> ppid) || ppid != parent) continue;
    std::ifstream env(e.path() / "environ", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    for (size_t at = 0; at < all.size();) {
      const size_t end = all.find('\0', at);
      if (all.compare(at, (end == std::string::npos ? all.size() : end) - at, want) == 0) return pid_t(std::stol(name));
      if (end == std::string::npos) break;
      at = end + 1;
    }
  }
  return 0;
}

TEST(MpiTrain, AKilledRankEndsTheJobNamingIt) {
  REQUIRE_MPI();
  Fixture fx;
  const std::string log = fx.dir / "mpirun.log", metrics = fx.dir / "run/metrics.jsonl";
  pid_t mpirun = fork();
  if (mpirun == 0) {
    std::string cmd = "exec " + lathe::test::mpirun_prefix(2) + LATHE_BINARY + " " + lora_args(fx, 100000000) +
                      " --save-steps 0 --output " + fx.dir / "run" + " >" + log + " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
    _exit(127);
  }
  // Training has started when rank 0 wrote its first step.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  pid_t victim = 0;
  while (std::chrono::steady_clock::now() < deadline &&
         (!fs::exists(metrics) || fs::file_size(metrics) == 0 || !(victim = rank_pid(mpirun, 1))))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(victim, 0) << "rank 1 not found; log: " << lathe::read_file(log);
  kill(victim, SIGKILL);
  // The job must end by itself (rank 0 would otherwise wait in its allreduce forever).
  int status = 0;
  pid_t done = 0;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && (done = waitpid(mpirun, &status, WNOHANG)) == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (done == 0) {
    kill(mpirun, SIGKILL);
    waitpid(mpirun, &status, 0);
    FAIL() << "the job hung after rank 1 was killed";
  }
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const std::string text = lathe::read_file(log);
  EXPECT_NE(text.find("rank 1"), std::string::npos) << text;
}

}  // namespace
