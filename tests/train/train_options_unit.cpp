// TrainOptions: one declaration drives flags, YAML and JSON; defaults < YAML < explicit flags.
#include <fstream>

#include "lathe/cli/cli_options.h"
#include "lathe/core/error.h"
#include "lathe/train/train_options.h"
#include "test_util.h"

namespace lathe {
namespace {

// Parses `args` (no program name) the way `lathe train` would.
TrainOptions parse(const std::string& args) {
  CLI::App app("lathe train");
  cli::CliOptions flags(app, train_options_table());
  app.parse(args, false);
  return resolve_train_options(flags.overrides());
}

const std::string kRequired = "--model m --data d.jsonl --output out";

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

using ::lathe::test::error_of;

TEST(TrainOptions, DefaultsMatchHF) {
  TrainOptions o = parse(kRequired);
  EXPECT_EQ(o.method, "lora");
  EXPECT_EQ(o.learning_rate, 2e-4);
  EXPECT_EQ(o.lr_scheduler_type, "linear");
  EXPECT_EQ(o.max_steps, -1);
  EXPECT_EQ(o.max_grad_norm, 1.0);
  EXPECT_EQ(o.adam_epsilon, 1e-8);
  EXPECT_EQ(o.seed, 42);
  EXPECT_TRUE(o.shuffle);
  EXPECT_EQ(o.lora_r, 8);
  EXPECT_EQ(o.lora_alpha, 16);
  EXPECT_EQ(o.lora_target_modules, "q_proj,v_proj");
  EXPECT_EQ(o.save_steps, 500);
  EXPECT_EQ(o.num_virtual_tokens, 20);
  EXPECT_EQ(train_option_flag("per_device_train_batch_size"), "--per-device-train-batch-size");
}

TEST(TrainOptions, FlagsBoolsAndNoShuffle) {
  TrainOptions o = parse(kRequired + " --learning-rate 1e-3 --no-shuffle --gradient-checkpointing --lora-r 16"
                                     " --lr-scheduler-type cosine --method prefix --prefix-projection");
  EXPECT_EQ(o.learning_rate, 1e-3);
  EXPECT_FALSE(o.shuffle);
  EXPECT_TRUE(o.gradient_checkpointing);
  EXPECT_TRUE(o.prefix_projection);
  EXPECT_EQ(o.lora_r, 16);
  EXPECT_EQ(o.lr_scheduler_type, "cosine");
  EXPECT_EQ(o.method, "prefix");
  EXPECT_THROW(parse(kRequired + " --lora-r abc"), CLI::ParseError);
}

TEST(TrainOptions, YamlUnderExplicitFlags) {
  test::TempDir dir;
  write(dir / "c.yaml",
        "model: /models/base\n"
        "data: train.jsonl\n"
        "output: out\n"
        "learning_rate: 5.0e-5\n"
        "warmup_ratio: 0.03\n"
        "lora_r: 32\n"
        "shuffle: false\n"
        "lora_target_modules: [q_proj, k_proj, v_proj]\n"
        "eval_data: null\n");
  TrainOptions o = parse("--config " + (dir / "c.yaml") + " --lora-r 4 --model /models/other");
  EXPECT_EQ(o.model, "/models/other");  // flag beats YAML
  EXPECT_EQ(o.lora_r, 4);               // flag beats YAML
  EXPECT_EQ(o.data, "train.jsonl");     // YAML beats default
  EXPECT_EQ(o.learning_rate, 5e-5);
  EXPECT_EQ(o.warmup_ratio, 0.03);
  EXPECT_FALSE(o.shuffle);
  EXPECT_EQ(o.lora_target_modules, "q_proj,k_proj,v_proj");
  EXPECT_EQ(o.lora_alpha, 16);  // untouched default
  // An explicit flag equal to the default still beats the YAML.
  EXPECT_EQ(parse("--config " + (dir / "c.yaml") + " --learning-rate 2e-4").learning_rate, 2e-4);
  EXPECT_TRUE(parse("--config " + (dir / "c.yaml") + " --shuffle").shuffle);
}

TEST(TrainOptions, YamlErrorsNameFileLineAndKey) {
  test::TempDir dir;
  const std::string f = dir / "c.yaml";
  write(f, "model: m\nlearnin_rate: 1e-4\n");
  std::string e = error_of([&] { parse(kRequired + " --config " + f); });
  EXPECT_NE(e.find(f + ":2: unknown key 'learnin_rate'"), std::string::npos) << e;
  write(f, "learning-rate: 1e-4\n");
  e = error_of([&] { parse(kRequired + " --config " + f); });
  EXPECT_NE(e.find("did you mean 'learning_rate'"), std::string::npos) << e;
  write(f, "lora_r: 1.5\n");
  e = error_of([&] { parse(kRequired + " --config " + f); });
  EXPECT_NE(e.find(f + ":1: key 'lora_r' must be an integer"), std::string::npos) << e;
  write(f, "shuffle: maybe\n");
  e = error_of([&] { parse(kRequired + " --config " + f); });
  EXPECT_NE(e.find("key 'shuffle' must be true or false"), std::string::npos) << e;
  write(f, "learning_rate: [1, 2]\n");
  e = error_of([&] { parse(kRequired + " --config " + f); });
  EXPECT_NE(e.find("key 'learning_rate' must be a number"), std::string::npos) << e;
  e = error_of([&] { parse(kRequired + " --config " + (dir / "missing.yaml")); });
  EXPECT_NE(e.find("missing.yaml: cannot read"), std::string::npos) << e;
}

TEST(TrainOptions, Validation) {
  EXPECT_NE(error_of([] { parse("--data d --output o"); }).find("--model: required"), std::string::npos);
  EXPECT_NE(error_of([] { parse(kRequired + " --method dora"); }).find("--method: unknown method 'dora'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse(kRequired + " --lr-scheduler-type foo"); }).find("valid: constant"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse(kRequired + " --learning-rate -1"); }).find("--learning-rate: must be > 0"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse(kRequired + " --eval-steps 10"); }).find("--eval-steps: needs --eval-data"),
            std::string::npos);
}

TEST(TrainOptions, JsonRoundTrip) {
  TrainOptions o = parse(kRequired + " --no-shuffle --warmup-ratio 0.1 --lora-target-modules all-linear");
  nlohmann::json j = train_options_to_json(o);
  EXPECT_EQ(j.size(), train_option_keys().size());
  EXPECT_EQ(j["shuffle"], false);
  EXPECT_EQ(j["lora_target_modules"], "all-linear");
  TrainOptions back = train_options_from_json(j);
  EXPECT_EQ(train_options_to_json(back), j);
  j["bogus"] = 1;
  EXPECT_NE(error_of([&] { train_options_from_json(j); }).find("'bogus'"), std::string::npos);
  std::string text = train_options_to_string(o);
  EXPECT_EQ(text.rfind("model: m\n", 0), 0u) << text;
  EXPECT_NE(text.find("\nlearning_rate: 0.0002\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace lathe
