// `lathe train --method dpo|kto|orpo` end to end on tiny models the test creates: each method learns
// to prefer the chosen answers of chat-template records, the reference policy equals the policy at
// step 1 (rewards exactly 0, with a fresh adapter and with --init-adapter), a SIGKILLed DPO run resumes
// bitwise, full fine-tuning and QLoRA train, and bad preference records are errors naming the line.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;
namespace fs = std::filesystem;

std::vector<nlohmann::json> rows_of(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

// Steps' rows only (eval rows have no "loss").
std::vector<nlohmann::json> steps_of(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (auto& r : rows_of(path))
    if (r.contains("loss")) out.push_back(r);
  return out;
}

struct PrefFixture {
  lathe::test::TempDir dir;
  std::string base, pairs, unpaired;
  bool ok = false;
  PrefFixture() {
    if (!lathe::file_exists(lathe::test::fixture_path("models/stories260K-hf/tokenizer.json"))) return;
    base = dir / "base";
    std::string out;
    EXPECT_EQ(run_lathe("init-model --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 --seed 5 "
                        "--initializer-range 0.2 --tokenizer " + lathe::test::fixture_path("models/stories260K-hf") +
                        " --output " + base, &out, true), 0) << out;
    pairs = dir / "pairs.jsonl";
    std::ofstream f(pairs);
    // String prompts and answers, message lists, and TRL's implicit prompt.
    f << R"({"prompt":"Who is Lily?","chosen":"Lily is a girl.","rejected":"Lily is a big red truck."})" "\n"
      << R"({"prompt":[{"role":"user","content":"Where is the ball?"}],"chosen":[{"role":"assistant","content":"The ball is in the park."}],"rejected":[{"role":"assistant","content":"No."}]})" "\n"
      << R"({"chosen":[{"role":"user","content":"Name the cat."},{"role":"assistant","content":"The cat is Tom."}],"rejected":[{"role":"user","content":"Name the cat."},{"role":"assistant","content":"The dog ran away."}]})" "\n"
      << R"({"prompt":"What did Tim eat?","chosen":"Tim ate a red apple.","rejected":"Tim ate the moon."})" "\n";
    f.close();
    unpaired = dir / "kto.jsonl";
    std::ofstream k(unpaired);
    k << R"({"prompt":"Who is Lily?","completion":"Lily is a girl.","label":true})" "\n"
      << R"({"prompt":"Who is Lily?","completion":"Lily is a big red truck.","label":false})" "\n"
      << R"({"prompt":"What did Tim eat?","completion":"Tim ate a red apple.","label":true})" "\n"
      << R"({"prompt":"What did Tim eat?","completion":"Tim ate the moon.","label":false})" "\n";
    k.close();
    ok = true;
  }
  std::string common() const {
    return " --model " + base + " --chat-template chatml --lora-target-modules all-linear --lora-r 8 --lora-alpha 16"
           " --threads 1 --lr-scheduler-type constant";
  }
};

#define REQUIRE_PREF_FIXTURE(fx) \
  if (!(fx).ok) GTEST_SKIP() << "fixture models/stories260K-hf absent"

TEST(Preference, EachMethodLearnsToPreferTheChosenAnswers) {
  PrefFixture fx;
  REQUIRE_PREF_FIXTURE(fx);
  struct Case { const char* method; const char* extra; const char* data_kind; };
  for (Case c : {Case{"dpo", "", "pairs"}, Case{"dpo", " --loss-type ipo", "pairs"}, Case{"orpo", " --beta 0.5", "pairs"},
                 Case{"kto", "", "unpaired"}, Case{"kto", "", "pairs"}}) {
    const std::string data = std::string(c.data_kind) == "pairs" ? fx.pairs : fx.unpaired;
    const std::string out_dir = fx.dir / (std::string(c.method) + c.data_kind + (c.extra[0] ? "x" : ""));
    std::string out;
    ASSERT_EQ(run_lathe("train --method " + std::string(c.method) + c.extra + " --data " + data + " --output " +
                            out_dir + fx.common() + " --learning-rate 1e-2 --max-steps 30 --per-device-train-batch-size 4",
                        &out, true), 0) << c.method << "\n" << out;
    auto rows = steps_of(out_dir + "/metrics.jsonl");
    ASSERT_EQ(rows.size(), 30u) << c.method;
    const auto& first = rows.front();
    const auto& last = rows.back();
    for (const char* key : {"rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"})
      ASSERT_TRUE(last.contains(key)) << c.method << " " << key << ": " << last.dump();
    if (std::string(c.method) != "orpo") {
      // Fresh adapter (B = 0): the policy equals the reference at step 1, so every reward is 0.
      EXPECT_EQ(first["rewards/chosen"].get<double>(), 0.0) << c.method;
      EXPECT_EQ(first["rewards/margins"].get<double>(), 0.0) << c.method;
    }
    EXPECT_GT(last["rewards/margins"].get<double>(), first["rewards/margins"].get<double>() + 0.05)
        << c.method << c.extra << " first " << first.dump() << "\nlast " << last.dump();
    EXPECT_LT(last["loss"].get<double>(), first["loss"].get<double>()) << c.method << c.extra;
    if (std::string(c.method) == "kto") EXPECT_TRUE(last.contains("kl")) << last.dump();
    if (std::string(c.method) == "orpo") EXPECT_TRUE(last.contains("nll_loss")) << last.dump();
    if (std::string(c.method) != "kto") EXPECT_EQ(last["rewards/accuracies"].get<double>(), 1.0) << last.dump();
    EXPECT_TRUE(lathe::file_exists(out_dir + "/adapter_model.safetensors"));
  }
}

TEST(Preference, InitAdapterIsTheFrozenReference) {
  PrefFixture fx;
  REQUIRE_PREF_FIXTURE(fx);
  std::string out;
  // Round 1: SFT on the chosen answers. Round 2: DPO continuing that adapter; its reference is base +
  // the SFT adapter, so the step-1 rewards are exactly 0 although the adapter is far from the base.
  std::ofstream sft(fx.dir / "sft.jsonl");
  sft << R"({"prompt":"Who is Lily?","completion":"Lily is a girl."})" "\n"
      << R"({"prompt":"What did Tim eat?","completion":"Tim ate a red apple."})" "\n";
  sft.close();
  ASSERT_EQ(run_lathe("train --data " + fx.dir / "sft.jsonl" + " --output " + fx.dir / "sft" + fx.common() +
                          " --learning-rate 2e-2 --max-steps 20 --per-device-train-batch-size 2", &out, true), 0) << out;
  ASSERT_EQ(run_lathe("train --method dpo --init-adapter " + fx.dir / "sft" + " --data " + fx.pairs + " --output " +
                          fx.dir / "dpo" + fx.common() + " --learning-rate 1e-2 --max-steps 5 --eval-data " + fx.pairs +
                          " --per-device-train-batch-size 2", &out, true), 0) << out;
  EXPECT_NE(out.find("trains lora with dpo"), std::string::npos) << out;
  auto rows = steps_of(fx.dir / "dpo/metrics.jsonl");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0]["rewards/chosen"].get<double>(), 0.0) << rows[0].dump();
  EXPECT_EQ(rows[0]["rewards/rejected"].get<double>(), 0.0) << rows[0].dump();
  // The SFT adapter already prefers its own answers: the policy's logps are far above a fresh one's.
  EXPECT_NE(rows[0]["logps/chosen"].get<double>(), 0.0);
  bool eval_row = false;
  for (auto& r : rows_of(fx.dir / "dpo/metrics.jsonl"))
    if (r.contains("eval_loss")) eval_row = r.contains("eval_rewards/accuracies") && r.contains("eval_rewards/margins");
  EXPECT_TRUE(eval_row) << "an eval row with eval_rewards/*";
  auto cfg = nlohmann::json::parse(lathe::read_file(fx.dir / "dpo/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
}

TEST(Preference, SigkillThenResumeIsBitwiseIdentical) {
  PrefFixture fx;
  REQUIRE_PREF_FIXTURE(fx);
  const std::string args = " --method dpo --data " + fx.pairs + fx.common() +
                           " --lora-dropout 0.1 --learning-rate 5e-3 --max-steps 120 --per-device-train-batch-size 2"
                           " --gradient-accumulation-steps 2";
  std::string out;
  ASSERT_EQ(run_lathe("train --output " + fx.dir / "straight" + args + " --save-steps 0", &out, true), 0) << out;
  const std::string a2 = args + " --save-steps 10";
  ASSERT_EQ(run_lathe("train --output " + fx.dir / "straight2" + a2, &out, true), 0) << out;
  std::string killed = fx.dir / "killed";
  ASSERT_TRUE(lathe::test::run_lathe_killed_when("train --output " + killed + a2, killed + "/checkpoint-20"))
      << "the run finished before it could be killed; make it longer";
  ASSERT_EQ(run_lathe("train --output " + killed + a2 + " --resume-from-checkpoint latest", &out, true), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  auto strip = [](std::vector<nlohmann::json> rows) {
    for (auto& r : rows)
      for (const char* k : {"tokens_per_s", "elapsed_s"}) r.erase(k);
    return rows;
  };
  EXPECT_EQ(strip(steps_of(killed + "/metrics.jsonl")), strip(steps_of(fx.dir / "straight2/metrics.jsonl")));
  EXPECT_EQ(lathe::read_file(killed + "/adapter_model.safetensors"),
            lathe::read_file(fx.dir / "straight2/adapter_model.safetensors"));
  // Checkpointing changes nothing either.
  EXPECT_EQ(lathe::read_file(fx.dir / "straight/adapter_model.safetensors"),
            lathe::read_file(fx.dir / "straight2/adapter_model.safetensors"));
}

TEST(Preference, FullFineTuningAndQlora) {
  PrefFixture fx;
  REQUIRE_PREF_FIXTURE(fx);
  std::string out;
  ASSERT_EQ(run_lathe("train --method dpo --finetuning-type full --data " + fx.pairs + " --output " + fx.dir / "full" +
                          fx.common() + " --learning-rate 1e-3 --max-steps 8 --per-device-train-batch-size 4",
                      &out, true), 0) << out;
  EXPECT_NE(out.find("trains full with dpo"), std::string::npos) << out;
  auto rows = steps_of(fx.dir / "full/metrics.jsonl");
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rows[0]["rewards/margins"].get<double>(), 0.0);  // the frozen copy equals the start
  EXPECT_GT(rows.back()["rewards/margins"].get<double>(), 0.0);
  EXPECT_TRUE(lathe::file_exists(fx.dir / "full/config.json"));
  // QLoRA: the adapter records the NF4 base; a DPO round from it trains QLoRA again (inferred).
  ASSERT_NE(run_lathe("train --method qlora --data " + fx.pairs + " --output " + fx.dir / "q" + fx.common() +
                          " --max-steps 1 --per-device-train-batch-size 4", &out, true), 0) << "SFT on pairs must fail\n" << out;
  std::ofstream sft(fx.dir / "sft.jsonl");
  sft << R"({"prompt":"Who is Lily?","completion":"Lily is a girl."})" "\n";
  sft.close();
  ASSERT_EQ(run_lathe("train --method qlora --data " + fx.dir / "sft.jsonl" + " --output " + fx.dir / "q" + fx.common() +
                          " --max-steps 2", &out, true), 0) << out;
  ASSERT_EQ(run_lathe("train --method orpo --init-adapter " + fx.dir / "q" + " --data " + fx.pairs + " --output " +
                          fx.dir / "q2" + fx.common() + " --max-steps 3 --per-device-train-batch-size 2", &out, true), 0)
      << out;
  EXPECT_NE(out.find("trains qlora with orpo"), std::string::npos) << out;
  auto cfg = nlohmann::json::parse(lathe::read_file(fx.dir / "q2/adapter_config.json"));
  EXPECT_EQ(cfg.value("lathe_base_quantization", ""), "nf4");
}

TEST(Preference, BadRecordsNameTheLine) {
  PrefFixture fx;
  REQUIRE_PREF_FIXTURE(fx);
  struct Case { std::string line, want; };
  for (const Case& c : {Case{R"({"prompt":"a","chosen":"b"})", "has no \"rejected\""},
                        Case{R"({"prompt":"a","completion":"b","label":true})", "needs --method kto"},
                        Case{R"({"prompt":"a","chosen":"b","rejected":3})", "\"rejected\" must be a string"},
                        Case{R"({"messages":[{"role":"user","content":"a"}]})", "not a preference record"},
                        Case{R"({"prompt_input_ids":[1,2],"chosen_input_ids":[3],"rejected_input_ids":[-4]})",
                             "not a token id"}}) {
    std::ofstream f(fx.dir / "bad.jsonl");
    f << R"({"prompt":"Who is Lily?","chosen":"Lily is a girl.","rejected":"No."})" "\n" << c.line << "\n";
    f.close();
    std::string out;
    EXPECT_NE(run_lathe("train --method dpo --data " + fx.dir / "bad.jsonl" + " --output " + fx.dir / "bad" + fx.common() +
                            " --max-steps 1", &out, true), 0) << c.line;
    EXPECT_NE(out.find("bad.jsonl:2"), std::string::npos) << out;
    EXPECT_NE(out.find(c.want), std::string::npos) << c.want << "\n" << out;
  }
  std::string out;
  EXPECT_NE(run_lathe("train --method lora --finetuning-type full --data " + fx.pairs + " --output " + fx.dir / "x" +
                          fx.common(), &out, true), 0);
  EXPECT_NE(out.find("--finetuning-type"), std::string::npos) << out;
  EXPECT_NE(run_lathe("train --method kto --loss-type ipo --data " + fx.pairs + " --output " + fx.dir / "x" + fx.common(),
                      &out, true), 0);
  EXPECT_NE(out.find("--loss-type"), std::string::npos) << out;
}

}  // namespace
