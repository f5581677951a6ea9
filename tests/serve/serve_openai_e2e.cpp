// The official OpenAI Node client against a real `lathe serve`: an application written for OpenAI
// must work unchanged. tests/serve/openai_client.mjs does the calls and checks; this test starts the
// server, runs it and looks at what it reports. The `openai` package is installed by
// tests/serve/setup_npm.sh BUILD_DIR (scripts/test.sh runs it).
#include <gtest/gtest.h>

#include <cstdlib>

#include "serve_test_util.h"

using nlohmann::json;
using namespace lathe::test;

namespace {

std::string npm_dir() {
  if (const char* e = std::getenv("LATHE_SERVE_NPM_DIR")) return e;
  return std::filesystem::path(LATHE_BINARY).parent_path().string() + "/serve-npm";
}

TEST(ServeOpenAIClient, ChatCompletionsStreamingAdaptersFeedback) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  std::string npm = npm_dir();
  ASSERT_TRUE(std::filesystem::exists(npm + "/node_modules/openai/package.json"))
      << "the openai npm package is not installed in " << npm
      << ": run tests/serve/setup_npm.sh " << std::filesystem::path(npm).parent_path().string()
      << " (needs node + npm and the npm registry)";
  ASSERT_EQ(std::system("node --version > /dev/null 2>&1"), 0) << "node is not on PATH";

  TempDir dir;
  std::string model = dir / "stories", lora = dir / "lora";
  make_stories_chat_model(model);
  make_lora_adapter(model, lora, 21);
  ServeProcess s({"--model", model, "--data-dir", dir / "data", "--api-key", "sk-test", "--adapter", "tuned=" + lora},
                 dir.path);
  std::string cmd = "LATHE_NPM_DIR='" + npm + "' node " + source_path("tests/serve/openai_client.mjs") + " " + s.url() +
                    "/v1 sk-test stories tuned 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  json r = json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
  ASSERT_FALSE(r.is_discarded()) << out;
  for (auto& c : r["checks"]) EXPECT_TRUE(c["ok"].get<bool>()) << c["what"];
  EXPECT_EQ(WEXITSTATUS(st), 0) << out;
  EXPECT_GE(r["checks"].size(), 15u);
  // The greedy text through the official client is the llama2.c reference continuation too.
  json golden = json::parse(slurp(fixture_path("models/stories260K-hf/golden_greedy.json")));
  std::string ref = golden["greedy_text_llama2c_run_c"].get<std::string>().substr(16);
  std::string text = r["text"]["choices"][0]["text"];
  EXPECT_EQ(ref.substr(0, text.size()), text);
  EXPECT_NE(r["adapter_text"], text);
  EXPECT_TRUE(s.alive());
}

}  // namespace
