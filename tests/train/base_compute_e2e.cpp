// `lathe train --base-compute` end to end: the resolved compute is printed and recorded (metrics.jsonl's
// last row, the checkpoint), a resume with another compute is refused naming both, and the values
// that cannot apply (full fine-tuning, an unknown name, a compute this build or CPU lacks) are errors
// naming the option. CTest sets LATHE_BASE_COMPUTE=f32 for the suite; the flags here override it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/kernels/cpu/base_compute.h"
#include "test_util.h"

namespace {

using lathe::BaseCompute;
using lathe::test::run_lathe;

struct Fixture {
  lathe::test::TempDir dir;
  std::string base, data;
  Fixture() {
    base = dir / "base";
    data = dir / "data.jsonl";
    std::string out;
    EXPECT_EQ(run_lathe("init-model --arch llama --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 "
                        "--num-attention-heads 4 --num-key-value-heads 2 --vocab-size 100 --tie-word-embeddings "
                        "--initializer-range 0.2 --seed 3 --output " + base, &out, true), 0) << out;
    lathe::Rng r(7);
    std::ofstream f(data);
    for (int i = 0; i < 4; i++) {
      std::vector<int> ids = {1};
      for (int t = 0; t < 15; t++) ids.push_back(3 + int(r.next_u64() % 97));
      f << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
    }
  }
  std::string args(const std::string& out, int steps) const {
    return "train --model " + base + " --data " + data + " --output " + out + " --method lora --lora-r 4 " +
           "--learning-rate 1e-3 --max-steps " + std::to_string(steps) + " --save-steps 1 --threads 1";
  }
};

nlohmann::json last_row(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last);
}

TEST(BaseComputeE2E, RecordedAndResumeChecked) {
  Fixture fx;
  for (BaseCompute c : {BaseCompute::BF16, BaseCompute::Int8}) {
    const std::string name = lathe::base_compute_name(c), o = fx.dir / ("out_" + name);
    std::string out;
    if (!lathe::base_compute_available(c)) {  // a build without oneDNN, or a CPU without the instructions
      EXPECT_NE(run_lathe(fx.args(o, 2) + " --base-compute " + name, &out, true), 0) << out;
      EXPECT_NE(out.find("--base-compute " + name + ": " + lathe::base_compute_unavailable_reason(c)),
                std::string::npos) << out;
      continue;
    }
    ASSERT_EQ(run_lathe(fx.args(o, 2) + " --base-compute " + name, &out, true), 0) << out;
    EXPECT_NE(out.find("base compute " + name), std::string::npos) << out;
    EXPECT_EQ(last_row(o + "/metrics.jsonl")["base_compute"], name);
    // Resuming with another compute would continue a different run: refused, naming both.
    ASSERT_NE(run_lathe(fx.args(o, 3) + " --base-compute f32 --resume-from-checkpoint latest", &out, true), 0) << out;
    EXPECT_NE(out.find("trained with --base-compute " + name + ", resumed with f32"), std::string::npos) << out;
    ASSERT_EQ(run_lathe(fx.args(o, 3) + " --base-compute " + name + " --resume-from-checkpoint latest", &out, true), 0)
        << out;
    EXPECT_EQ(last_row(o + "/metrics.jsonl")["base_compute"], name);
  }
}

TEST(BaseComputeE2E, AutoResolvesFromTheCpu) {
  Fixture fx;
  const std::string o = fx.dir / "out_auto";
  std::string out;
  ASSERT_EQ(run_lathe(fx.args(o, 1) + " --base-compute auto", &out, true), 0) << out;
  const std::string want = lathe::base_compute_name(lathe::base_compute_auto());
  EXPECT_NE(out.find("base compute " + want + " (auto)"), std::string::npos) << out;
  EXPECT_EQ(last_row(o + "/metrics.jsonl")["base_compute"], want);
}

TEST(BaseComputeE2E, ValuesThatCannotApplyAreErrors) {
  Fixture fx;
  std::string out;
  EXPECT_NE(run_lathe(fx.args(fx.dir / "o1", 1) + " --base-compute fp16", &out, true), 0);
  EXPECT_NE(out.find("--base-compute"), std::string::npos) << out;
  EXPECT_NE(out.find("'fp16' is not a base compute"), std::string::npos) << out;
  const std::string full = "train --model " + fx.base + " --data " + fx.data + " --output " + (fx.dir / "o2") +
                           " --method full --max-steps 1 --threads 1 --base-compute bf16";
  EXPECT_NE(run_lathe(full, &out, true), 0);
  EXPECT_NE(out.find("full fine-tuning trains the base weights"), std::string::npos) << out;
  // auto under full fine-tuning is f32, recorded so.
  const std::string o3 = fx.dir / "o3";
  ASSERT_EQ(run_lathe("train --model " + fx.base + " --data " + fx.data + " --output " + o3 +
                          " --method full --max-steps 1 --save-steps 0 --threads 1 --base-compute auto", &out, true), 0)
      << out;
  EXPECT_EQ(last_row(o3 + "/metrics.jsonl")["base_compute"], "f32");
}

}  // namespace
