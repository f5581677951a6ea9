// The real stories260K model (llama2.c TinyStories): the GGUF and the HF directory give the same
// logits, and greedy decoding reproduces the llama2.c reference continuation.
// Skips when ../shared/fixtures is absent.
#include <gtest/gtest.h>

#include <cmath>

#include "lathe/core/file_io.h"
#include "lathe/model/forward.h"
#include "lathe/model/generate.h"
#include "test_util.h"

namespace {

const char* kHf = "models/stories260K-hf";
const char* kGguf = "models/gguf/stories260K.gguf";

std::vector<float> all_logits(const lathe::Model& m, const std::vector<int32_t>& ids) {
  const int T = int(ids.size()), V = m.config.vocab_size;
  lathe::Forward fwd(m, T);
  auto cache = lathe::KVCache::create(m.config, T);
  const float* h = fwd.hidden(ids.data(), T, &cache);
  std::vector<float> out(size_t(T) * V);
  fwd.logits(h, T, out.data());
  return out;
}

TEST(Stories260K, GgufAndHfGiveIdenticalLogits) {
  LATHE_REQUIRE_FIXTURE(kHf);
  LATHE_REQUIRE_FIXTURE(kGguf);
  auto hf = lathe::Model::load(lathe::test::fixture_path(kHf));
  auto gg = lathe::Model::load(lathe::test::fixture_path(kGguf));
  ASSERT_EQ(hf.config.vocab_size, gg.config.vocab_size);
  ASSERT_EQ(hf.config.head_dim, gg.config.head_dim);
  ASSERT_EQ(hf.config.num_key_value_heads, gg.config.num_key_value_heads);
  std::vector<int32_t> ids = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421};
  auto a = all_logits(hf, ids), b = all_logits(gg, ids);
  float worst = 0, scale = 1.0f;
  for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, std::fabs(a[i] - b[i]));
  for (float v : a) scale = std::max(scale, std::fabs(v));
  EXPECT_LE(worst, 1e-5f * scale) << "max |logit diff| between GGUF and HF at logit scale " << scale;
}

TEST(Stories260K, GreedyReproducesReference) {
  LATHE_REQUIRE_FIXTURE(kHf);
  auto g = nlohmann::json::parse(lathe::read_file(lathe::test::fixture_path(kHf) + "/golden_greedy.json"));
  auto prompt = g["prompt_ids_with_bos"].get<std::vector<int32_t>>();
  auto want = g["generated_ids_prompt_plus_40_greedy_steps"].get<std::vector<int32_t>>();
  for (const char* path : {kHf, kGguf}) {
    if (!lathe::test::has_fixture(path)) continue;
    auto m = lathe::Model::load(lathe::test::fixture_path(path));
    lathe::GenerateParams p;
    p.max_new_tokens = int(want.size() - prompt.size());
    auto r = lathe::generate(m, prompt, p);
    std::vector<int32_t> got = prompt;
    got.insert(got.end(), r.ids.begin(), r.ids.end());
    EXPECT_EQ(got, want) << path;
  }
}

TEST(Stories260K, LongGreedyMatchesLlama2cText) {
  // The llama2.c run (256 positions) re-encoded by the tokenizer: the same ids as our greedy run.
  LATHE_REQUIRE_FIXTURE(kGguf);
  LATHE_REQUIRE_FIXTURE(kHf);
  auto g = nlohmann::json::parse(lathe::read_file(lathe::test::fixture_path(kHf) + "/golden_greedy.json"));
  auto want = g["tokenizer_encode_of_greedy_text_with_bos"].get<std::vector<int32_t>>();
  auto prompt = g["prompt_ids_with_bos"].get<std::vector<int32_t>>();
  auto m = lathe::Model::load(lathe::test::fixture_path(kGguf));
  lathe::GenerateParams p;
  p.max_new_tokens = int(want.size() - prompt.size());
  auto r = lathe::generate(m, prompt, p);
  std::vector<int32_t> got = prompt;
  got.insert(got.end(), r.ids.begin(), r.ids.end());
  EXPECT_EQ(got, want);
}

}  // namespace

namespace {

TEST(Stories260K, CliTextGenerationMatchesLlama2cWordForWord) {
  // BOS + "Once upon a time" (5 ids), greedy to position 256 (252 new tokens): the llama2.c run.c reference text.
  LATHE_REQUIRE_FIXTURE("models/gguf/stories260K.golden_greedy.txt");
  std::string want = lathe::read_file(lathe::test::fixture_path("models/gguf/stories260K.golden_greedy.txt"));
  while (!want.empty() && (want.back() == '\n' || want.back() == ' ')) want.pop_back();
  for (const char* model : {"models/gguf/stories260K.gguf", "models/stories260K-hf"}) {
    std::string out;
    ASSERT_EQ(lathe::test::run_lathe("generate --model " + lathe::test::fixture_path(model) +
                                         " --prompt 'Once upon a time' --max-new-tokens 252 --threads 1", &out), 0);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    EXPECT_EQ(out, want) << model;
  }
}

}  // namespace
