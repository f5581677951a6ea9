// lathe serve end to end over loopback with a real HTTP client (cpp-httplib): the routes, greedy
// output against the llama2.c reference, streaming, adapters per request and at runtime, every
// error case of the issue in OpenAI's error shape, and feedback that survives kill -9.
#include <gtest/gtest.h>

#include "lathe/serve/feedback_store.h"
#include "serve_test_util.h"

using nlohmann::json;
using namespace lathe::test;

namespace {

constexpr const char* kStories = "models/stories260K-hf";

struct Fixture {
  TempDir dir;
  std::string model, lora, prefix;
  Fixture() : model(dir / "stories"), lora(dir / "lora"), prefix(dir / "prefix") {
    make_stories_chat_model(model);
    make_lora_adapter(model, lora, 11);
    make_prefix_adapter(model, prefix, 12);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// Text completion of the reference prompt; the llama2.c greedy text is an independent reference.
TEST(ServeApi, GreedyCompletionMatchesLlama2cReference) {
  LATHE_REQUIRE_FIXTURE(kStories);
  Fixture& f = fixture();
  TempDir data;
  ServeProcess s({"--model", f.model, "--data-dir", data.path}, data.path);
  auto c = s.client();
  int st;
  json r = post_json(c, "/v1/completions", {{"model", "stories"}, {"prompt", "Once upon a time"}, {"temperature", 0}, {"max_tokens", 24}}, &st);
  ASSERT_EQ(st, 200) << r.dump();
  json golden = json::parse(slurp(fixture_path(std::string(kStories) + "/golden_greedy.json")));
  std::string ref = golden["greedy_text_llama2c_run_c"].get<std::string>().substr(std::string("Once upon a time").size());
  std::string text = r["choices"][0]["text"];
  EXPECT_EQ(ref.substr(0, text.size()), text);
  EXPECT_GT(text.size(), 40u);
  EXPECT_EQ(r["usage"]["completion_tokens"], 24);
  EXPECT_EQ(r["usage"]["prompt_tokens"], 5);  // BOS + 4 tokens, as golden_greedy.json's prompt ids
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["id"].get<std::string>().rfind("cmpl-", 0), 0u);
}

TEST(ServeApi, HealthModelsMetricsAndStreaming) {
  LATHE_REQUIRE_FIXTURE(kStories);
  Fixture& f = fixture();
  TempDir data;
  ServeProcess s({"--model", f.model, "--data-dir", data.path, "--adapter", "tuned=" + f.lora}, data.path);
  auto c = s.client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  json models = json::parse(c.Get("/v1/models")->body);
  ASSERT_EQ(models["data"].size(), 2u);
  EXPECT_EQ(models["data"][0]["id"], "stories");
  EXPECT_EQ(models["data"][1]["id"], "tuned");
  EXPECT_EQ(models["data"][1]["parent"], "stories");

  json req = {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}}, {"temperature", 0},
              {"max_tokens", 20}};
  int st;
  json whole = post_json(c, "/v1/chat/completions", req, &st);
  ASSERT_EQ(st, 200) << whole.dump();
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  std::string raw;
  auto r = c.Post("/v1/chat/completions", req.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  // Server-sent events: "data: {chunk}\n\n" ..., then "data: [DONE]\n\n".
  std::string text, finish;
  json usage;
  std::istringstream lines(r->body);
  std::string line, last;
  int events = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("data: ", 0), 0u) << line;
    last = line.substr(6);
    events++;
    if (last == "[DONE]") break;
    json ch = json::parse(last);
    EXPECT_EQ(ch["object"], "chat.completion.chunk");
    EXPECT_EQ(ch["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    if (ch.contains("usage")) usage = ch["usage"];
    if (ch["choices"].empty()) continue;
    text += ch["choices"][0]["delta"].value("content", "");
    if (!ch["choices"][0]["finish_reason"].is_null()) finish = ch["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(last, "[DONE]");
  EXPECT_GE(events, 3);
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"]);
  EXPECT_EQ(usage, whole["usage"]);

  std::string m = c.Get("/metrics")->body;
  EXPECT_NE(m.find("lathe_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2"), std::string::npos) << m;
  EXPECT_NE(m.find("lathe_request_duration_seconds_bucket{route=\"/v1/chat/completions\",le=\"+Inf\"} 2"), std::string::npos);
  EXPECT_NE(m.find("lathe_queue_depth 0"), std::string::npos);
  EXPECT_NE(m.find("lathe_completion_tokens_total"), std::string::npos);
}

TEST(ServeApi, AdaptersSwitchPerRequestAndLoadAtRuntime) {
  LATHE_REQUIRE_FIXTURE(kStories);
  Fixture& f = fixture();
  TempDir data;
  ServeProcess s({"--model", f.model, "--data-dir", data.path, "--adapter", "tuned=" + f.lora, "--api-key", "user-key",
                  "--admin-key", "admin-key"},
                 data.path);
  auto c = s.client();
  auto complete = [&](const std::string& model, int* st) {
    return post_json(c, "/v1/completions", {{"model", model}, {"prompt", "Once upon a time"}, {"temperature", 0}, {"max_tokens", 12}},
                     st, "user-key");
  };
  int st;
  std::string base = complete("stories", &st)["choices"][0]["text"];
  ASSERT_EQ(st, 200);
  std::string tuned = complete("tuned", &st)["choices"][0]["text"];
  ASSERT_EQ(st, 200);
  EXPECT_NE(base, tuned);
  EXPECT_EQ(complete("stories", &st)["choices"][0]["text"], base);  // the adapter did not leak into the base

  // Runtime loading needs the admin key.
  json rq = {{"name", "pfx"}, {"path", f.prefix}};
  json e = post_json(c, "/v1/adapters", rq, &st, "user-key");
  EXPECT_EQ(st, 401);
  EXPECT_TRUE(is_openai_error(e));
  post_json(c, "/v1/adapters", rq, &st, "admin-key");
  ASSERT_EQ(st, 200);
  json pfx = complete("pfx", &st);
  ASSERT_EQ(st, 200) << pfx.dump();
  EXPECT_NE(pfx["choices"][0]["text"], base);
  post_json(c, "/v1/adapters", rq, &st, "admin-key");
  EXPECT_EQ(st, 409);
  post_json(c, "/v1/adapters", {{"name", "bad"}, {"path", data / "missing"}}, &st, "admin-key");
  EXPECT_EQ(st, 400);

  httplib::Headers admin = {{"Authorization", "Bearer admin-key"}};
  auto d = c.Delete("/v1/adapters/pfx", admin);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
  complete("pfx", &st);
  EXPECT_EQ(st, 404);
  EXPECT_EQ(c.Delete("/v1/adapters/pfx", admin)->status, 404);
}

TEST(ServeApi, ErrorsHaveOpenAIShapeAndNeverKillTheServer) {
  LATHE_REQUIRE_FIXTURE(kStories);
  Fixture& f = fixture();
  TempDir data;
  ServeProcess s({"--model", f.model, "--data-dir", data.path, "--api-key", "k", "--ctx", "64", "--max-body-bytes", "8192"},
                 data.path);
  auto c = s.client();
  httplib::Headers auth = {{"Authorization", "Bearer k"}};
  auto expect_error = [&](const httplib::Result& r, int status, const char* what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->status, status) << what << ": " << r->body;
    EXPECT_TRUE(is_openai_error(json::parse(r->body, nullptr, false))) << what << ": " << r->body;
  };
  json ok = {{"model", "stories"}, {"prompt", "Once"}, {"max_tokens", 2}};
  expect_error(c.Post("/v1/completions", ok.dump(), "application/json"), 401, "missing key");
  expect_error(c.Post("/v1/completions", {{"Authorization", "Bearer wrong"}}, ok.dump(), "application/json"), 401, "wrong key");
  expect_error(c.Get("/v1/models"), 401, "models without key");
  expect_error(c.Post("/v1/completions", auth, "{\"model\": \"stories\", ", "application/json"), 400, "malformed JSON");
  expect_error(c.Post("/v1/completions", auth, "[1,2]", "application/json"), 400, "not an object");
  json unknown = ok;
  unknown["model"] = "nope";
  auto r404 = c.Post("/v1/completions", auth, unknown.dump(), "application/json");
  expect_error(r404, 404, "unknown model");
  EXPECT_EQ(json::parse(r404->body)["error"]["code"], "model_not_found");
  json long_prompt = ok;
  std::string words;
  for (int i = 0; i < 80; i++) words += " the cat sat";
  long_prompt["prompt"] = words;
  auto rctx = c.Post("/v1/completions", auth, long_prompt.dump(), "application/json");
  expect_error(rctx, 400, "prompt beyond context");
  EXPECT_EQ(json::parse(rctx->body)["error"]["code"], "context_length_exceeded");
  json big = ok;
  big["prompt"] = std::string(20000, 'a');
  expect_error(c.Post("/v1/completions", auth, big.dump(), "application/json"), 413, "body over the limit");
  for (auto [k, v] : std::vector<std::pair<std::string, json>>{{"n", 2}, {"temperature", "hot"}, {"temperature", 3},
                                                               {"max_tokens", 0}, {"top_p", 0}, {"stop", json::array({1})},
                                                               {"stream", "yes"}, {"seed", 1.5}}) {
    json b = ok;
    b[k] = v;
    auto r = c.Post("/v1/completions", auth, b.dump(), "application/json");
    expect_error(r, 400, k.c_str());
    EXPECT_EQ(json::parse(r->body)["error"]["param"], k);
  }
  expect_error(c.Post("/v1/chat/completions", auth, json{{"model", "stories"}, {"messages", json::array()}}.dump(),
                      "application/json"), 400, "empty messages");
  expect_error(c.Post("/v1/chat/completions", auth,
                      json{{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", 5}}}}}.dump(), "application/json"),
               400, "content not a string");
  expect_error(c.Post("/v1/completions", auth, json{{"model", "stories"}, {"prompt", {1, 99999}}}.dump(), "application/json"),
               400, "token id outside the vocabulary");
  expect_error(c.Get("/v1/nothing-here", auth), 404, "unknown route");
  // Still serving.
  auto fine = c.Post("/v1/completions", auth, ok.dump(), "application/json");
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->status, 200) << fine->body;
  EXPECT_TRUE(s.alive());
}

TEST(ServeApi, FeedbackSurvivesKill9AndExportsTrainingRecords) {
  LATHE_REQUIRE_FIXTURE(kStories);
  Fixture& f = fixture();
  TempDir data;
  std::string completion_id;
  {
    ServeProcess s({"--model", f.model, "--data-dir", data.path, "--adapter", "tuned=" + f.lora}, data.path);
    auto c = s.client();
    int st;
    json chat = post_json(c, "/v1/chat/completions",
                          {{"model", "tuned"}, {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Who is Lily?"}}}},
                           {"max_tokens", 8}, {"temperature", 0}},
                          &st);
    ASSERT_EQ(st, 200);
    completion_id = chat["id"];
    json other = post_json(c, "/v1/chat/completions",
                           {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}}, &st);
    ASSERT_EQ(st, 200);
    post_json(c, "/v1/feedback", {{"completion_id", "chatcmpl-unknown"}, {"rating", 1}}, &st);
    EXPECT_EQ(st, 404);
    post_json(c, "/v1/feedback", {{"completion_id", completion_id}, {"rating", 7}}, &st);
    EXPECT_EQ(st, 400);
    post_json(c, "/v1/feedback", {{"completion_id", other["id"]}, {"rating", -1}, {"comment", "wrong"}}, &st);
    EXPECT_EQ(st, 200);
    json ack = post_json(c, "/v1/feedback",
                         {{"completion_id", completion_id}, {"rating", 5}, {"correction", "Lily is a little girl."},
                          {"comment", "good"}, {"tags", {"kb", "names"}}},
                         &st);
    ASSERT_EQ(st, 200) << ack.dump();
    EXPECT_EQ(s.stop(SIGKILL), -SIGKILL);  // no chance to checkpoint or close the database
  }
  std::string out = data / "train.jsonl", log;
  ASSERT_EQ(run_lathe("feedback export --data-dir " + data.path + " --min-rating 4 --output " + out, &log, true), 0) << log;
  std::string jsonl = slurp(out);
  ASSERT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 1) << jsonl;
  json rec = json::parse(jsonl);
  ASSERT_EQ(rec["messages"].size(), 3u);
  EXPECT_EQ(rec["messages"][0], (json{{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(rec["messages"][1], (json{{"role", "user"}, {"content", "Who is Lily?"}}));
  EXPECT_EQ(rec["messages"][2], (json{{"role", "assistant"}, {"content", "Lily is a little girl."}}));
  ASSERT_EQ(run_lathe("feedback export --data-dir " + data.path + " --output " + out, &log, true), 0) << log;
  jsonl = slurp(out);
  EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 2) << jsonl;
  // The next round: the exported records train an adapter directly, and a server serves it.
  std::string round2 = data / "round2";
  ASSERT_EQ(run_lathe("train --threads 1 --model " + f.model + " --data " + out + " --output " + round2 + " --max-steps 1", &log, true), 0)
      << log;
  {
    ServeProcess s2({"--model", f.model, "--data-dir", data.path, "--adapter", "round2=" + round2}, data.path);
    auto c = s2.client();
    int st;
    json r = post_json(c, "/v1/chat/completions", {{"model", "round2"}, {"messages", {{{"role", "user"}, {"content", "Who is Lily?"}}}}, {"max_tokens", 4}}, &st);
    EXPECT_EQ(st, 200) << r.dump();
  }
  ASSERT_EQ(run_lathe("feedback stats --json --data-dir " + data.path, &log), 0) << log;
  json stats = json::parse(log);
  EXPECT_EQ(stats["completions"], 3);  // the round-2 server's answer is recorded too
  ASSERT_EQ(stats["by_model_day"].size(), 2u);
  EXPECT_EQ(stats["by_model_day"][0]["adapter"], "");
  EXPECT_EQ(stats["by_model_day"][0]["thumbs_down"], 1);
  EXPECT_EQ(stats["by_model_day"][1]["adapter"], "tuned");
  EXPECT_EQ(stats["by_model_day"][1]["mean_rating"], 5.0);
}

TEST(ServeApi, PromptLoggingOffAndRedacted) {
  LATHE_REQUIRE_FIXTURE(kStories);
  Fixture& f = fixture();
  for (const char* mode : {"off", "redact"}) {
    TempDir data;
    {
      ServeProcess s({"--model", f.model, "--data-dir", data.path, "--log-prompts", mode}, data.path);
      auto c = s.client();
      int st;
      json chat = post_json(c, "/v1/chat/completions",
                            {{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "Mail me at kim.minsu@example.com"}}}},
                             {"max_tokens", 4}},
                            &st);
      ASSERT_EQ(st, 200);
      post_json(c, "/v1/feedback", {{"completion_id", chat["id"]}, {"rating", 1}}, &st);
      ASSERT_EQ(st, 200);
    }
    lathe::serve::FeedbackStore store(data.path);
    std::string out;
    lathe::serve::ExportSummary sum = store.export_jsonl({}, &out);
    if (std::string(mode) == "off") {
      EXPECT_EQ(sum.written, 0);
      EXPECT_EQ(sum.skipped["no logged request"], 1);
    } else {
      ASSERT_EQ(sum.written, 1) << out;
      EXPECT_EQ(out.find("kim.minsu@example.com"), std::string::npos) << out;
      EXPECT_NE(out.find("[EMAIL]"), std::string::npos) << out;
    }
  }
}

}  // namespace
