// `lathe train` end to end on tiny models the test creates: LoRA memorises a small dataset, a
// SIGKILLed run resumes to bitwise-identical losses and weights, adapters apply without merging
// exactly as merged, prefix tuning and full fine-tuning train and serve, NaN stops the run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
namespace fs = std::filesystem;

struct Fixture {
  lathe::test::TempDir dir;
  std::string base, data;
  Fixture() {
    base = dir / "base";
    data = dir / "data.jsonl";
    std::string out;
    EXPECT_EQ(run_lathe("init-model --arch qwen2 --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 "
                        "--num-attention-heads 4 --num-key-value-heads 2 --vocab-size 100 --tie-word-embeddings "
                        "--initializer-range 0.2 --seed 3 --output " + base, &out, true), 0) << out;
    lathe::Rng r(7);
    std::ofstream f(data);
    for (int i = 0; i < 8; i++) {
      std::vector<int> ids = {1};
      for (int t = 0; t < 15; t++) ids.push_back(3 + int(r.next_u64() % 97));
      std::vector<int> labels = ids;
      for (int t = 0; t < 4; t++) labels[t] = -100;  // a "prompt" that carries no loss
      f << nlohmann::json{{"input_ids", ids}, {"labels", labels}}.dump() << "\n";
    }
  }
};

std::vector<nlohmann::json> metrics(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::vector<double> losses(const std::string& path) {
  std::vector<double> out;
  for (auto& r : metrics(path))
    if (r.contains("loss")) out.push_back(r["loss"]);
  return out;
}

TEST(Train, LoraMemorisesSmallDataset) {
  Fixture fx;
  std::string out;
  ASSERT_EQ(run_lathe("train --model " + fx.base + " --data " + fx.data + " --output " + fx.dir / "lora" +
                          " --method lora --lora-target-modules all-linear --lora-r 16 --lora-alpha 32 "
                          "--learning-rate 2e-2 --max-steps 120 --per-device-train-batch-size 8 --save-steps 0 "
                          "--lr-scheduler-type constant --threads 1", &out, true), 0) << out;
  auto l = losses(fx.dir / "lora/metrics.jsonl");
  ASSERT_EQ(l.size(), 120u);
  EXPECT_GT(l.front(), 4.0);  // ~ln(100) at the start
  EXPECT_LT(l.back(), 0.3) << "LoRA should memorise 8 sequences (first loss " << l.front() << ")";
  EXPECT_TRUE(lathe::file_exists(fx.dir / "lora/adapter_config.json"));
  auto cfg = nlohmann::json::parse(lathe::read_file(fx.dir / "lora/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 16);
  EXPECT_EQ(cfg["target_modules"].size(), 7u);
}

TEST(Train, SigkillThenResumeIsBitwiseIdentical) {
  Fixture fx;
  const std::string args = " --model " + fx.base + " --data " + fx.data +
                           " --method lora --lora-target-modules all-linear --lora-dropout 0.1 --learning-rate 1e-2"
                           " --max-steps 400 --per-device-train-batch-size 3 --gradient-accumulation-steps 2"
                           " --save-steps 25 --threads 1";
  std::string out;
  ASSERT_EQ(run_lathe("train --output " + fx.dir / "straight" + args, &out, true), 0) << out;

  // The same run, killed with SIGKILL once a checkpoint exists, then resumed from the latest one.
  std::string killed = fx.dir / "killed";
  ASSERT_TRUE(lathe::test::run_lathe_killed_when("train --output " + killed + args, killed + "/checkpoint-50"))
      << "the run finished before it could be killed; make it longer";
  ASSERT_FALSE(fs::exists(killed + "/adapter_model.safetensors"));
  ASSERT_EQ(run_lathe("train --output " + killed + args + " --resume-from-checkpoint latest", &out, true), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(losses(killed + "/metrics.jsonl"), losses(fx.dir / "straight/metrics.jsonl"));
  EXPECT_EQ(lathe::read_file(killed + "/adapter_model.safetensors"),
            lathe::read_file(fx.dir / "straight/adapter_model.safetensors"));
}

TEST(Train, AdapterAppliedEqualsMergedAndPrefixServes) {
  Fixture fx;
  std::string out;
  ASSERT_EQ(run_lathe("train --model " + fx.base + " --data " + fx.data + " --output " + fx.dir / "lora" +
                          " --lora-target-modules q_proj,v_proj,down_proj --learning-rate 2e-2 --max-steps 30"
                          " --per-device-train-batch-size 8 --save-steps 0 --threads 1", &out, true), 0) << out;
  ASSERT_EQ(run_lathe("export --model " + fx.base + " --adapter " + fx.dir / "lora" + " --format merged --output " +
                          fx.dir / "merged", &out, true), 0) << out;
  std::string a, b, base;
  const std::string gen = " --prompt-ids 1,5,9,13 --max-new-tokens 12 --json --threads 1";
  ASSERT_EQ(run_lathe("generate --model " + fx.base + " --adapter " + fx.dir / "lora" + gen, &a), 0);
  ASSERT_EQ(run_lathe("generate --model " + fx.dir / "merged" + gen, &b), 0);
  ASSERT_EQ(run_lathe("generate --model " + fx.base + gen, &base), 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, base);
  std::string pa, pb;
  ASSERT_EQ(run_lathe("perplexity --model " + fx.base + " --adapter " + fx.dir / "lora --ids-file " + fx.data +
                          " --json --threads 1", &pa), 0) << pa;
  ASSERT_EQ(run_lathe("perplexity --model " + fx.dir / "merged --ids-file " + fx.data + " --json --threads 1", &pb), 0);
  LATHE_EXPECT_CLOSE(nlohmann::json::parse(pa)["nll"].get<double>(), nlohmann::json::parse(pb)["nll"].get<double>(), 1e-6, 1e-4);

  for (const char* proj : {"", " --prefix-projection --encoder-hidden-size 32"}) {
    std::string dir = fx.dir / (std::string("prefix") + (*proj ? "_proj" : ""));
    ASSERT_EQ(run_lathe("train --model " + fx.base + " --data " + fx.data + " --output " + dir +
                            " --method prefix --num-virtual-tokens 4 --learning-rate 3e-2 --max-steps 40"
                            " --per-device-train-batch-size 8 --save-steps 0 --threads 1" + proj, &out, true), 0) << out;
    auto l = losses(dir + "/metrics.jsonl");
    EXPECT_LT(l.back(), l.front() - 0.5) << "prefix tuning should lower the loss";
    auto cfg = nlohmann::json::parse(lathe::read_file(dir + "/adapter_config.json"));
    EXPECT_EQ(cfg["peft_type"], "PREFIX_TUNING");
    EXPECT_EQ(cfg["token_dim"], 32);  // head_dim 16 x 2 kv heads
    std::string pp, pbase;
    ASSERT_EQ(run_lathe("perplexity --model " + fx.base + " --adapter " + dir + " --ids-file " + fx.data +
                            " --json --threads 1", &pp), 0) << pp;
    ASSERT_EQ(run_lathe("perplexity --model " + fx.base + " --ids-file " + fx.data + " --json --threads 1", &pbase), 0);
    // Scoring through the saved (post-MLP) prefix keeps what training learned.
    EXPECT_LT(nlohmann::json::parse(pp)["nll"].get<double>(), nlohmann::json::parse(pbase)["nll"].get<double>() - 0.5);
    ASSERT_EQ(run_lathe("generate --model " + fx.base + " --adapter " + dir + gen, &out), 0) << out;
  }
}

TEST(Train, FullFineTuningWritesAModel) {
  Fixture fx;
  std::string out;
  ASSERT_EQ(run_lathe("train --model " + fx.base + " --data " + fx.data + " --output " + fx.dir / "full" +
                          " --method full --learning-rate 3e-3 --weight-decay 0.1 --max-steps 40 "
                          "--per-device-train-batch-size 8 --save-steps 0 --gradient-checkpointing --threads 1",
                      &out, true), 0) << out;
  auto l = losses(fx.dir / "full/metrics.jsonl");
  EXPECT_LT(l.back(), l.front() - 1.0);
  std::string pp;
  ASSERT_EQ(run_lathe("perplexity --model " + fx.dir / "full --ids-file " + fx.data + " --json --threads 1", &pp), 0)
      << pp;
  EXPECT_LT(nlohmann::json::parse(pp)["nll"].get<double>(), 4.0);
}

TEST(Train, QloraTrainsOnA4BitBaseAndMerges) {
  Fixture fx;
  std::string out;
  ASSERT_EQ(run_lathe("train --model " + fx.base + " --data " + fx.data + " --output " + fx.dir / "qlora" +
                          " --method qlora --lora-target-modules all-linear --lora-r 16 --lora-alpha 32"
                          " --learning-rate 2e-2 --max-steps 60 --per-device-train-batch-size 8 --save-steps 0"
                          " --lr-scheduler-type constant --threads 1", &out, true), 0) << out;
  auto l = losses(fx.dir / "qlora/metrics.jsonl");
  EXPECT_LT(l.back(), l.front() - 2.0);
  auto cfg = nlohmann::json::parse(lathe::read_file(fx.dir / "qlora/adapter_config.json"));
  EXPECT_EQ(cfg["lathe_base_quantization"], "nf4");
  // The adapter applied over the NF4 base equals the merge onto the NF4-dequantized base.
  ASSERT_EQ(run_lathe("export --model " + fx.base + " --adapter " + fx.dir / "qlora --format merged --output " +
                          fx.dir / "qmerged", &out, true), 0) << out;
  std::string pa, pb;
  ASSERT_EQ(run_lathe("perplexity --model " + fx.base + " --adapter " + fx.dir / "qlora --ids-file " + fx.data +
                          " --json --threads 1", &pa), 0) << pa;
  ASSERT_EQ(run_lathe("perplexity --model " + fx.dir / "qmerged --ids-file " + fx.data + " --json --threads 1", &pb), 0);
  LATHE_EXPECT_CLOSE(nlohmann::json::parse(pa)["nll"].get<double>(), nlohmann::json::parse(pb)["nll"].get<double>(), 1e-5, 1e-3);
}

TEST(Train, NonFiniteLossStopsTheRun) {
  Fixture fx;
  std::string out;
  int rc = run_lathe("train --model " + fx.base + " --data " + fx.data + " --output " + fx.dir / "nan" +
                         " --method full --learning-rate 1e30 --max-grad-norm 0 --lr-scheduler-type constant"
                         " --max-steps 20 --per-device-train-batch-size 8 --save-steps 0 --threads 1", &out, true);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("not finite"), std::string::npos) << out;
}

TEST(Train, BadDataNamesFileAndLine) {
  Fixture fx;
  std::ofstream(fx.dir / "bad.jsonl") << "{\"input_ids\":[1,2,3]}\n{\"input_ids\":[1,2],\"labels\":[1]}\n";
  std::string out;
  EXPECT_EQ(run_lathe("train --model " + fx.base + " --data " + fx.dir / "bad.jsonl" + " --output " + fx.dir / "x" +
                          " --max-steps 1 --threads 1", &out, true), 1);
  EXPECT_NE(out.find("bad.jsonl:2"), std::string::npos) << out;
}

}  // namespace

namespace {

// Conversational records straight from JSONL: rendered with a chat template, loss on the answers
// only; the model memorises the answers, and a record with a truncated answer is counted.
TEST(Train, ChatRecordsTrainWithTemplateMasks) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  lathe::test::TempDir dir;
  std::string out;
  ASSERT_EQ(run_lathe("init-model --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 --seed 5 --initializer-range 0.2 "
                      "--tokenizer " + lathe::test::fixture_path("models/stories260K-hf") + " --output " +
                      dir / "base", &out, true), 0) << out;
  std::ofstream f(dir / "chat.jsonl");
  f << R"({"messages":[{"role":"user","content":"Who is Lily?"},{"role":"assistant","content":"Lily is a girl."}]})" "\n"
    << R"({"question":"Where is the ball?","answer":"The ball is in the park."})" "\n"
    << R"({"instruction":"Name the cat.","input":"","output":"The cat is Tom."})" "\n"
    << R"({"prompt":"What did Tim eat?","completion":"Tim ate a red apple."})" "\n";
  f.close();
  ASSERT_EQ(run_lathe("train --model " + dir / "base" + " --data " + dir / "chat.jsonl" + " --output " + dir / "out" +
                          " --chat-template chatml --method lora --lora-target-modules all-linear --lora-r 16 "
                          "--lora-alpha 32 --learning-rate 3e-2 --max-steps 60 --per-device-train-batch-size 4 "
                          "--save-steps 0 --lr-scheduler-type constant --threads 1", &out, true), 0) << out;
  EXPECT_NE(out.find("4 examples"), std::string::npos) << out;
  auto l = losses(dir / "out/metrics.jsonl");
  ASSERT_EQ(l.size(), 60u);
  EXPECT_LT(l.back(), 0.25 * l.front()) << "first " << l.front() << " last " << l.back();
  // The tokens counted per step are the whole rendered conversations; the loss only the answers.
  auto rows = metrics(dir / "out/metrics.jsonl");
  EXPECT_GT(rows[0]["tokens"].get<int64_t>(), 40);

  // max_seq_length that cuts every answer off: counted and warned, never silent.
  ASSERT_EQ(run_lathe("train --model " + dir / "base" + " --data " + dir / "chat.jsonl" + " --output " +
                          dir / "cut" + " --chat-template chatml --max-seq-length 6 --max-steps 1 --save-steps 0 "
                          "--threads 1", &out, true), 0) << out;
  EXPECT_NE(out.find("4 of 4 examples were longer than max_seq_length=6"), std::string::npos) << out;
  EXPECT_NE(out.find("have no token that carries loss"), std::string::npos) << out;
}

}  // namespace
