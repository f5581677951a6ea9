// `lathe serve --index` end to end: a real index over a few Korean and English documents (`lathe
// index build`), a real server with retrieval on for the base model and off for an adapter, driven
// by the official OpenAI Node client (tests/serve/openai_rag_client.mjs: sources in whole and
// streamed answers, none where retrieval is off), then /metrics and `lathe feedback export` with and
// without the retrieved context.
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

// Runs `cmd` (stderr joined) and returns its output; *status gets the exit code.
std::string run(const std::string& cmd, int* status) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// Four short documents; each question below has exactly one of them as its answer.
void write_docs(const std::string& dir) {
  std::filesystem::create_directories(dir);
  write(dir + "/refund-ko.md",
        "# 환불 정책\n\n환불은 구매 후 14일 안에 요청할 수 있습니다. 환불 금액은 영업일 5일 안에 돌려드립니다.\n");
  write(dir + "/parking-ko.md", "# 주차\n\n본사 지하 2층 주차장은 직원에게 무료입니다. 방문객은 안내 데스크에 등록합니다.\n");
  write(dir + "/shipping-en.md", "# Shipping\n\nOrders ship within 2 business days. Express delivery costs extra.\n");
  write(dir + "/security-en.md",
        "# Passwords\n\nPasswords must be rotated every 90 days and have at least 12 characters.\n");
}

int64_t metric(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + name.size() + 2));
}

TEST(ServeRag, OpenAIClientSourcesStreamingPerModelMetricsFeedback) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  std::string npm = npm_dir();
  ASSERT_TRUE(std::filesystem::exists(npm + "/node_modules/openai/package.json"))
      << "the openai npm package is not installed in " << npm << ": run tests/serve/setup_npm.sh "
      << std::filesystem::path(npm).parent_path().string() << " (needs node + npm and the npm registry)";
  ASSERT_EQ(std::system("node --version > /dev/null 2>&1"), 0) << "node is not on PATH";

  TempDir dir;
  std::string model = dir / "stories", lora = dir / "lora", docs = dir / "docs", index = dir / "index";
  make_stories_chat_model(model);
  make_lora_adapter(model, lora, 21);
  write_docs(docs);
  int st = 0;
  std::string built = run(std::string(LATHE_BINARY) + " index build --no-progress --input " + docs + " --output " + index +
                              " --model " + model + " --chunk-tokens 96 --overlap 8",
                          &st);
  ASSERT_EQ(st, 0) << built;

  // Retrieval for the base model only; the adapter serves without it unless a request asks.
  ServeProcess s({"--model", model, "--data-dir", dir / "data", "--api-key", "sk-test", "--adapter", "plain=" + lora,
                  "--index", index, "--rag-k", "2", "--rag-models", "stories"},
                 dir.path);
  ASSERT_TRUE(s.alive()) << s.stderr_text();
  EXPECT_NE(s.stderr_text().find("retrieval from " + index), std::string::npos) << s.stderr_text();
  std::string out = run("LATHE_NPM_DIR='" + npm + "' node " + source_path("tests/serve/openai_rag_client.mjs") + " " +
                            s.url() + "/v1 sk-test stories plain",
                        &st);
  json r = json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
  ASSERT_FALSE(r.is_discarded()) << out;
  for (auto& c : r["checks"]) EXPECT_TRUE(c["ok"].get<bool>()) << c["what"];
  EXPECT_EQ(st, 0) << out;
  EXPECT_GE(r["checks"].size(), 25u);
  EXPECT_LE(r["ko"]["sources"].size(), 2u);  // --rag-k 2

  // Four searches (ko, en, en streamed, the plain model's opt-in); the plain model and rag:false none.
  auto c = s.client();
  std::string m = c.Get("/metrics")->body;
  EXPECT_EQ(metric(m, "lathe_retrieval_requests_total"), 4) << m;
  EXPECT_GE(metric(m, "lathe_retrieval_passages_total"), 4) << m;
  EXPECT_EQ(metric(m, "lathe_retrieval_duration_seconds_count"), 4) << m;
  EXPECT_EQ(metric(m, "lathe_retrieval_errors_total"), 0) << m;

  // Feedback export: the question as asked by default, the user turn the model saw with --with-context.
  std::string plain_out = dir / "asked.jsonl", ctx_out = dir / "seen.jsonl";
  std::string e1 = run(std::string(LATHE_BINARY) + " feedback export --data-dir " + (dir / "data") + " --output " + plain_out, &st);
  ASSERT_EQ(st, 0) << e1;
  std::string e2 = run(std::string(LATHE_BINARY) + " feedback export --data-dir " + (dir / "data") + " --with-context --output " + ctx_out,
                       &st);
  ASSERT_EQ(st, 0) << e2;
  json asked = json::parse(slurp(plain_out)), seen = json::parse(slurp(ctx_out));
  ASSERT_EQ(asked["messages"].size(), 3u) << asked;
  EXPECT_EQ(asked["messages"][1]["content"], "환불은 구매 후 며칠 안에 요청할 수 있나요?");
  EXPECT_EQ(asked["messages"][2]["content"], "14일 안에 요청할 수 있습니다 [1].");  // the correction
  std::string turn = seen["messages"][1]["content"];
  EXPECT_NE(turn.find("[1] "), std::string::npos) << turn;
  EXPECT_NE(turn.find("refund-ko.md"), std::string::npos) << turn;
  EXPECT_NE(turn.find("환불은 구매 후 14일 안에"), std::string::npos) << turn;
  EXPECT_NE(turn.find("Question: 환불은 구매 후 며칠 안에 요청할 수 있나요?"), std::string::npos) << turn;
  EXPECT_EQ(seen["messages"][0], asked["messages"][0]);  // the system turn as sent
  EXPECT_TRUE(s.alive());
}

// Retrieval options need an index, and a missing index stops the server at start with the flag named.
TEST(ServeRag, RetrievalOptionsWithoutAnIndexAreRefused) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  TempDir dir;
  std::string model = dir / "stories";
  make_stories_chat_model(model);
  int st = 0;
  std::string base = std::string(LATHE_BINARY) + " serve --port 0 --model " + model + " --data-dir " + (dir / "data");
  std::string o1 = run(base + " --rag-k 5", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(o1.find("--rag-k 5: retrieval needs --index"), std::string::npos) << o1;
  std::string o2 = run(base + " --index " + (dir / "nowhere"), &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(o2.find("--index " + (dir / "nowhere")), std::string::npos) << o2;
}

}  // namespace
