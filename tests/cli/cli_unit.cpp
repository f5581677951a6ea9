// The lathe binary end to end: init-model -> inspect -> perplexity -> generate, and clear errors
// (exit code 1 and a message naming the file) for bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
using lathe::test::TempDir;

void write(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

TEST(Cli, InitModelInspectGenerate) {
  TempDir d;
  std::string out;
  ASSERT_EQ(run_lathe("init-model --arch qwen2 --hidden-size 32 --intermediate-size 48 --num-hidden-layers 2 "
                      "--num-attention-heads 4 --num-key-value-heads 2 --vocab-size 100 --tie-word-embeddings "
                      "--seed 7 --output " + d / "m", &out, true), 0) << out;
  ASSERT_TRUE(lathe::file_exists(d / "m/config.json"));
  ASSERT_TRUE(lathe::file_exists(d / "m/model.safetensors"));
  ASSERT_EQ(run_lathe("inspect " + d / "m", &out), 0) << out;
  EXPECT_NE(out.find("Qwen2ForCausalLM"), std::string::npos) << out;
  EXPECT_NE(out.find("model.layers.1.self_attn.q_proj.bias"), std::string::npos) << out;

  std::string a, b;
  ASSERT_EQ(run_lathe("generate --model " + d / "m" + " --prompt-ids 1,5,9 --max-new-tokens 6 --json", &a), 0);
  EXPECT_EQ(a.rfind("{\"ids\":[", 0), 0u) << a;
  // Same seed -> same model -> same greedy output; sampling with a seed is reproducible too.
  TempDir d2;
  ASSERT_EQ(run_lathe("init-model --arch qwen2 --hidden-size 32 --intermediate-size 48 --num-hidden-layers 2 "
                      "--num-attention-heads 4 --num-key-value-heads 2 --vocab-size 100 --tie-word-embeddings "
                      "--seed 7 --output " + d2 / "m", &out, true), 0);
  ASSERT_EQ(run_lathe("generate --model " + d2 / "m" + " --prompt-ids 1,5,9 --max-new-tokens 6 --json", &b), 0);
  EXPECT_EQ(a, b);
  std::string s1, s2;
  std::string sample = " --prompt-ids 1,5,9 --max-new-tokens 8 --temperature 1.5 --top-k 50 --top-p 0.95 --seed 3 --json";
  ASSERT_EQ(run_lathe("generate --model " + d / "m" + sample, &s1), 0);
  ASSERT_EQ(run_lathe("generate --model " + d / "m" + sample, &s2), 0);
  EXPECT_EQ(s1, s2);
}

TEST(Cli, PerplexityMatchesGoldenLogits) {
  // NLL computed here from the PyTorch golden logits must equal lathe's.
  std::string dir = lathe::test::source_path("tests/data/golden/llama");
  auto g = nlohmann::json::parse(lathe::read_file(dir + "/golden.json"));
  double nll = 0;
  int64_t count = 0;
  std::string lines;
  for (size_t b = 0; b < g["input_ids"].size(); b++) {
    auto ids = g["input_ids"][b].get<std::vector<int>>();
    lines += nlohmann::json{{"input_ids", ids}}.dump() + "\n";
    for (size_t t = 0; t + 1 < ids.size(); t++) {
      auto row = g["logits"][b][t].get<std::vector<double>>();
      double mx = *std::max_element(row.begin(), row.end()), sum = 0;
      for (double v : row) sum += std::exp(v - mx);
      nll += std::log(sum) + mx - row[ids[t + 1]];
      count++;
    }
  }
  TempDir d;
  write(d / "ids.jsonl", lines);
  std::string out;
  ASSERT_EQ(run_lathe("perplexity --model " + dir + " --ids-file " + d / "ids.jsonl" + " --json", &out), 0) << out;
  auto r = nlohmann::json::parse(out);
  EXPECT_EQ(r["tokens"].get<int64_t>(), count);
  EXPECT_NEAR(r["nll"].get<double>(), nll / count, 1e-4);
  EXPECT_NEAR(r["ppl"].get<double>(), std::exp(nll / count), 1e-3);

  // Windows: context 3 splits each sequence into independent windows, fewer predicted tokens.
  ASSERT_EQ(run_lathe("perplexity --model " + dir + " --ids-file " + d / "ids.jsonl" + " --context-length 3 --json",
                      &out), 0) << out;
  EXPECT_LT(nlohmann::json::parse(out)["tokens"].get<int64_t>(), count);
}

TEST(Cli, BadInputGivesClearErrors) {
  TempDir d;
  std::string out;
  std::string model = lathe::test::source_path("tests/data/golden/llama");
  write(d / "bad.jsonl", "{\"input_ids\":[1,2,3]}\n{not json\n");
  EXPECT_EQ(run_lathe("perplexity --model " + model + " --ids-file " + d / "bad.jsonl", &out, true), 1);
  EXPECT_NE(out.find("bad.jsonl:2"), std::string::npos) << out;

  write(d / "oov.jsonl", "{\"input_ids\":[1,2,99999]}\n");
  EXPECT_EQ(run_lathe("perplexity --model " + model + " --ids-file " + d / "oov.jsonl", &out, true), 1);
  EXPECT_NE(out.find("outside the vocabulary"), std::string::npos) << out;

  EXPECT_EQ(run_lathe("generate --model " + d / "nope" + " --prompt-ids 1", &out, true), 1);
  EXPECT_NE(out.find("nope"), std::string::npos) << out;

  std::filesystem::create_directories(d / "m");
  write(d / "m/config.json", "{\"architectures\":[\"GPTNeoXForCausalLM\"]}");
  EXPECT_EQ(run_lathe("inspect " + d / "m", &out, true), 1);
  EXPECT_NE(out.find("unsupported architecture 'GPTNeoXForCausalLM'"), std::string::npos) << out;

  EXPECT_EQ(run_lathe("generate --model " + model + " --prompt-ids 1,x", &out, true), 1);
  EXPECT_NE(out.find("'x' is not an integer"), std::string::npos) << out;
  EXPECT_EQ(run_lathe("no-such-command", &out, true), 2);
}

TEST(Cli, MissingTensorIsNamed) {
  // A model directory whose safetensors lacks a tensor the config requires.
  TempDir d;
  std::string out;
  ASSERT_EQ(run_lathe("init-model --arch llama --hidden-size 16 --intermediate-size 24 --num-hidden-layers 1 "
                      "--num-attention-heads 2 --vocab-size 40 --output " + d / "m", &out, true), 0) << out;
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "m/config.json"));
  cfg["num_hidden_layers"] = 2;
  write(d / "m/config.json", cfg.dump());
  EXPECT_EQ(run_lathe("inspect " + d / "m", &out, true), 1);
  EXPECT_NE(out.find("model.layers.1.input_layernorm.weight"), std::string::npos) << out;
}

}  // namespace
