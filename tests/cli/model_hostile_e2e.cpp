// End-to-end regressions for the security review's model items: the lathe binary run on hostile
// model files and lengths exits with a normal error (status 1, not a signal such as SIGFPE or an
// abort) whose message names the offending key, and huge generation lengths are clamped.
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/formats/gguf.h"
#include "lathe/formats/gguf_write.h"
#include "gguf_rewrite.h"
#include "test_util.h"

namespace lathe {
namespace {

constexpr const char* kGguf = "models/gguf/stories260K.gguf";
constexpr const char* kHf = "models/stories260K-hf";

using test::gguf_with;

// The stories HF directory with config.json edited by `edit`.
std::string hf_with(const test::TempDir& dir, const std::function<void(nlohmann::json&)>& edit) {
  std::string src = test::fixture_path(kHf);
  std::string out = dir / "model";
  std::filesystem::create_directories(out);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(src + "/" + f, out + "/" + f);
  nlohmann::json j = nlohmann::json::parse(read_file(src + "/config.json"));
  edit(j);
  write_file_atomic(out + "/config.json", j.dump());
  return out;
}

TEST(ModelHostileE2E, HeadCountZeroGgufIsANormalErrorInEveryCommand) {
  LATHE_REQUIRE_FIXTURE(kGguf);
  test::TempDir dir;
  GgufValue zero;
  zero.type = GgufType::U32;
  zero.scalar = uint64_t(0);
  std::string g = gguf_with(dir, "llama.attention.head_count", zero);
  std::ofstream(dir / "ids.jsonl") << "{\"input_ids\":[1,2,3]}\n";
  for (std::string cmd : {"inspect " + g, "generate --model " + g + " --prompt-ids 1",
                          "perplexity --model " + g + " --ids-file " + (dir / "ids.jsonl")}) {
    std::string out;
    int rc = test::run_lathe(cmd, &out, true);
    EXPECT_EQ(rc, 1) << cmd << " (-1 = killed by a signal; SIGFPE before the fix)\n" << out;
    EXPECT_NE(out.find("llama.attention.head_count must be positive"), std::string::npos) << cmd << "\n" << out;
  }
}

TEST(ModelHostileE2E, NanEpsGgufIsRefusedNotAPerplexityOfNan) {
  LATHE_REQUIRE_FIXTURE(kGguf);
  test::TempDir dir;
  GgufValue nan;
  nan.type = GgufType::F32;
  nan.scalar = std::numeric_limits<double>::quiet_NaN();
  std::string g = gguf_with(dir, "llama.attention.layer_norm_rms_epsilon", nan);
  std::ofstream(dir / "ids.jsonl") << "{\"input_ids\":[1,2,3]}\n";
  std::string out;
  EXPECT_EQ(test::run_lathe("perplexity --model " + g + " --ids-file " + (dir / "ids.jsonl"), &out, true), 1) << out;
  EXPECT_NE(out.find("llama.attention.layer_norm_rms_epsilon"), std::string::npos) << out;
}

TEST(ModelHostileE2E, TruncatingConfigIntegersAreRefused) {
  LATHE_REQUIRE_FIXTURE(kHf);
  test::TempDir dir;
  std::string m = hf_with(dir, [](nlohmann::json& j) { j["hidden_size"] = 4294967360ull; });
  std::string out;
  EXPECT_EQ(test::run_lathe("inspect " + m, &out, true), 1) << out;  // used to load as 64 and run
  EXPECT_NE(out.find("hidden_size = 4294967360 is outside the supported range"), std::string::npos) << out;
  test::TempDir dir2;
  m = hf_with(dir2, [](nlohmann::json& j) { j["num_hidden_layers"] = 1e9; });
  EXPECT_EQ(test::run_lathe("inspect " + m, &out, true), 1) << out;  // used to be a bare std::bad_alloc
  EXPECT_NE(out.find("num_hidden_layers must be an integer"), std::string::npos) << out;
}

TEST(ModelHostileE2E, HugeMaxNewTokensIsClampedToTheContext) {
  LATHE_REQUIRE_FIXTURE(kHf);
  std::string out;
  int rc = test::run_lathe("generate --model " + test::fixture_path(kHf) +
                               " --prompt-ids 1 --max-new-tokens 1000000000 --stop-ids 0 --json 2>&1",
                           &out);
  ASSERT_EQ(rc, 0) << out;  // used to abort allocating 128 GB
  EXPECT_NE(out.find("warning: max_new_tokens 1000000000 clamped to 511"), std::string::npos) << out;
  nlohmann::json j = nlohmann::json::parse(out.substr(out.find("{\"ids\"")));
  // Stops at 511 new tokens (context 512 - 1 prompt token), unless id 0 came first.
  EXPECT_LE(j["ids"].size(), 511u);
  if (j["ids"].back() != 0) EXPECT_EQ(j["ids"].size(), 511u);
}

TEST(ModelHostileE2E, PerplexityIdsAndWindowAreChecked) {
  LATHE_REQUIRE_FIXTURE(kHf);
  test::TempDir dir;
  std::ofstream(dir / "ids.jsonl") << "{\"input_ids\":[1,5000000000,3]}\n";
  std::string out;
  std::string model = test::fixture_path(kHf);
  EXPECT_EQ(test::run_lathe("perplexity --model " + model + " --ids-file " + (dir / "ids.jsonl"), &out, true), 1);
  EXPECT_NE(out.find("input_ids[1] = 5000000000 is outside the vocabulary"), std::string::npos) << out;
  std::ofstream(dir / "ok.jsonl") << "{\"input_ids\":[1,2,3]}\n";
  EXPECT_EQ(test::run_lathe("perplexity --model " + model + " --ids-file " + (dir / "ok.jsonl") +
                                " --context-length 100000000",
                            &out, true),
            1);
  EXPECT_NE(out.find("--context-length 100000000 is longer than the model's context 512"), std::string::npos) << out;
}

}  // namespace
}  // namespace lathe
