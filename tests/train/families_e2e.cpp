// Every model family through the commands people run, on a tiny random model of each (init-model):
// inspect, perplexity, generate, train with LoRA (all of the family's projections), QLoRA, prefix
// tuning and full fine-tuning, and export to a PEFT directory and a merged model whose outputs equal
// the adapter applied without merging. The forward itself is checked against PyTorch in
// tests/model/model_golden.cpp and the gradients in tests/peft/train_graph_gradcheck.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <ostream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;

struct Family {
  const char* arch;
  const char* flags;            // family keys that make its features active at these sizes
  std::vector<std::string> modules;  // its PEFT target_modules under all-linear
};

const Family kFamilies[] = {
    {"gemma2", "--sliding-window 4", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
    {"gemma3", "--sliding-window 4 --sliding-window-pattern 2",
     {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
    {"phi3", "--partial-rotary-factor 0.5", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}},
    {"smollm3", "--no-rope-layer-interval 2",
     {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
    {"exaone", "", {"q_proj", "k_proj", "v_proj", "out_proj", "c_fc_0", "c_fc_1", "c_proj"}},
    {"exaone4", "--sliding-window 4 --sliding-window-pattern 2",
     {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
};

void PrintTo(const Family& f, std::ostream* os) { *os << f.arch; }

double nll_of(const std::string& json) { return nlohmann::json::parse(json)["nll"].get<double>(); }

std::vector<double> losses(const std::string& path) {
  std::vector<double> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) out.push_back(j["loss"]);
    }
  return out;
}

class Families : public ::testing::TestWithParam<Family> {};

TEST_P(Families, EveryCommand) {
  const Family& fam = GetParam();
  lathe::test::TempDir dir;
  const std::string base = dir / "base", data = dir / "data.jsonl";
  std::string out;
  ASSERT_EQ(run_lathe(std::string("init-model --arch ") + fam.arch + " " + fam.flags +
                          " --hidden-size 64 --intermediate-size 96 --num-hidden-layers 2 --num-attention-heads 4"
                          " --num-key-value-heads 2 --head-dim 16 --vocab-size 100 --initializer-range 0.2 --seed 3"
                          " --output " + base, &out, true), 0) << out;
  {
    lathe::Rng r(7);
    std::ofstream f(data);
    for (int i = 0; i < 8; i++) {
      std::vector<int> ids = {1};
      for (int t = 0; t < 15; t++) ids.push_back(3 + int(r.next_u64() % 97));
      std::vector<int> labels = ids;
      for (int t = 0; t < 4; t++) labels[t] = -100;
      f << nlohmann::json{{"input_ids", ids}, {"labels", labels}}.dump() << "\n";
    }
  }
  ASSERT_EQ(run_lathe("inspect " + base, &out, true), 0) << out;
  auto bcfg = nlohmann::json::parse(lathe::read_file(base + "/config.json"));
  EXPECT_NE(out.find(bcfg["architectures"][0].get<std::string>()), std::string::npos) << out;
  const std::string train = " --data " + data + " --per-device-train-batch-size 8 --save-steps 0 --threads 1"
                            " --lr-scheduler-type constant";
  const std::string ppl = " --ids-file " + data + " --json --threads 1";
  const std::string gen = " --prompt-ids 1,5,9,13 --max-new-tokens 8 --json --threads 1";
  std::string p_base;
  ASSERT_EQ(run_lathe("perplexity --model " + base + ppl, &p_base), 0) << p_base;
  ASSERT_EQ(run_lathe("generate --model " + base + gen, &out), 0) << out;

  // LoRA on every projection the family has, under its own module names.
  const std::string lora = dir / "lora";
  ASSERT_EQ(run_lathe("train --model " + base + " --output " + lora + train +
                          " --method lora --lora-target-modules all-linear --lora-r 8 --learning-rate 2e-2"
                          " --max-steps 30", &out, true), 0) << out;
  auto l = losses(lora + "/metrics.jsonl");
  ASSERT_EQ(l.size(), 30u);
  EXPECT_LT(l.back(), l.front() - 1.0) << fam.arch << ": LoRA should lower the loss";
  auto cfg = nlohmann::json::parse(lathe::read_file(lora + "/adapter_config.json"));
  EXPECT_EQ(cfg["target_modules"].get<std::vector<std::string>>(), fam.modules);
  // Applied without merging == merged into the weights.
  ASSERT_EQ(run_lathe("export --model " + base + " --adapter " + lora + " --format merged --output " + dir / "merged",
                      &out, true), 0) << out;
  std::string pa, pb, ga, gb;
  ASSERT_EQ(run_lathe("perplexity --model " + base + " --adapter " + lora + ppl, &pa), 0) << pa;
  ASSERT_EQ(run_lathe("perplexity --model " + dir / "merged" + ppl, &pb), 0) << pb;
  LATHE_EXPECT_CLOSE(nll_of(pa), nll_of(pb), 1e-6, 1e-4);
  EXPECT_LT(nll_of(pa), nll_of(p_base) - 0.5);
  ASSERT_EQ(run_lathe("generate --model " + base + " --adapter " + lora + gen, &ga), 0) << ga;
  ASSERT_EQ(run_lathe("generate --model " + dir / "merged" + gen, &gb), 0) << gb;
  EXPECT_EQ(ga, gb);
  // The merged directory is the family's own config.json again.
  auto mcfg = nlohmann::json::parse(lathe::read_file(dir / "merged/config.json"));
  EXPECT_EQ(mcfg["architectures"], bcfg["architectures"]);

  // QLoRA on the NF4 base of the same projections.
  ASSERT_EQ(run_lathe("train --model " + base + " --output " + dir / "qlora" + train +
                          " --method qlora --lora-target-modules all-linear --lora-r 8 --learning-rate 2e-2"
                          " --max-steps 30", &out, true), 0) << out;
  l = losses(dir / "qlora/metrics.jsonl");
  EXPECT_LT(l.back(), l.front() - 1.0) << fam.arch << ": QLoRA should lower the loss";

  // Prefix tuning trains, scores and generates.
  ASSERT_EQ(run_lathe("train --model " + base + " --output " + dir / "prefix" + train +
                          " --method prefix --num-virtual-tokens 4 --learning-rate 3e-2 --max-steps 30", &out, true), 0)
      << out;
  std::string pp;
  ASSERT_EQ(run_lathe("perplexity --model " + base + " --adapter " + dir / "prefix" + ppl, &pp), 0) << pp;
  EXPECT_LT(nll_of(pp), nll_of(p_base) - 0.3) << fam.arch << ": prefix tuning should lower the loss";
  ASSERT_EQ(run_lathe("generate --model " + base + " --adapter " + dir / "prefix" + gen, &out), 0) << out;

  // Full fine-tuning writes a model of the same family that loads and scores better.
  ASSERT_EQ(run_lathe("train --model " + base + " --output " + dir / "full" + train +
                          " --method full --learning-rate 3e-3 --max-steps 30 --gradient-checkpointing", &out, true), 0)
      << out;
  std::string pf;
  ASSERT_EQ(run_lathe("perplexity --model " + dir / "full" + ppl, &pf), 0) << pf;
  EXPECT_LT(nll_of(pf), nll_of(p_base) - 0.5) << fam.arch << ": full fine-tuning should lower the loss";
}

INSTANTIATE_TEST_SUITE_P(Archs, Families, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) { return std::string(info.param.arch); });

}  // namespace
