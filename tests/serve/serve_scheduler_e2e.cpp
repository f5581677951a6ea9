// The scheduler through the server: requests progress together, a full queue answers 429, a client
// that disconnects mid-stream frees its slot at once, and a request past its timeout ends with 504.
// Uses a random model a few times slower than stories260K (about 2 ms a token) so timing is visible.
#include <gtest/gtest.h>

#include <atomic>

#include "serve_test_util.h"

using nlohmann::json;
using namespace lathe::test;
using Clock = std::chrono::steady_clock;

namespace {

struct SlowModel {
  TempDir dir;
  std::string path = dir / "slow";
  SlowModel() {
    std::string log;
    int rc = run_lathe("init-model --hidden-size 256 --intermediate-size 688 --num-hidden-layers 4 --num-attention-heads 4 "
                       "--vocab-size 512 --max-position-embeddings 4096 --seed 3 --output " + path, &log, true);
    if (rc != 0) ADD_FAILURE() << log;
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      std::filesystem::copy_file(fixture_path(std::string("models/stories260K-hf/") + f), path + "/" + f);
  }
};

SlowModel& slow_model() {
  static SlowModel m;
  return m;
}

int metric(httplib::Client& c, const std::string& name) {
  std::string m = c.Get("/metrics")->body;
  size_t p = m.find("\n" + name + " ");
  return p == std::string::npos ? -1 : std::stoi(m.substr(p + name.size() + 2));
}

json stream_request(int max_tokens) {
  return {{"model", "slow"}, {"prompt", "Once upon a time"}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", true}};
}

// POST with the body streamed to `on_data` (returning false hangs up): httplib 0.11's Client::Post
// has no receiver overload, Client::send with Request::content_receiver does.
httplib::Result post_streaming(httplib::Client& c, const json& body, std::function<bool(const char*, size_t)> on_data) {
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [on_data](const char* d, size_t n, uint64_t, uint64_t) { return on_data(d, n); };
  return c.send(req);
}

TEST(ServeScheduler, RequestsProgressTogether) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  TempDir data;
  ServeProcess s({"--model", slow_model().path, "--data-dir", data.path, "--max-concurrency", "2"}, data.path);
  Clock::time_point first[2], end[2];
  std::string text[2];
  std::vector<std::thread> ts;
  for (int i = 0; i < 2; i++)
    ts.emplace_back([&, i] {
      auto c = s.client();
      bool got = false;
      auto r = post_streaming(c, stream_request(200), [&](const char* d, size_t n) {
                        std::string chunk(d, n);
                        if (!got && chunk.find("\"text\":\"") != std::string::npos && chunk.find("\"text\":\"\"") == std::string::npos) {
                          got = true;
                          first[i] = Clock::now();
                        }
                        text[i] += chunk;
                        return true;
                      });
      end[i] = Clock::now();
      EXPECT_TRUE(r && r->status == 200);
    });
  for (auto& t : ts) t.join();
  // Each request had produced text before the other one finished: their decode steps interleaved.
  EXPECT_LT(first[0], end[1]);
  EXPECT_LT(first[1], end[0]);
  EXPECT_NE(text[0].find("data: [DONE]"), std::string::npos);
  EXPECT_NE(text[1].find("\"finish_reason\":\"length\""), std::string::npos);
}

TEST(ServeScheduler, FullQueueGets429AndDisconnectCancels) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  TempDir data;
  ServeProcess s({"--model", slow_model().path, "--data-dir", data.path, "--max-concurrency", "1", "--queue-size", "0"},
                 data.path);
  std::atomic<bool> streaming{false}, hang_up{false};
  std::thread a([&] {
    auto c = s.client();
    post_streaming(c, stream_request(3000), [&](const char*, size_t) {
             streaming = true;
             return !hang_up.load();  // false closes the connection mid-stream
           });
  });
  auto c = s.client();
  auto until = Clock::now() + std::chrono::seconds(10);
  while (!streaming && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(streaming);
  EXPECT_EQ(metric(c, "lathe_active_requests"), 1);
  auto busy = c.Post("/v1/completions", json{{"model", "slow"}, {"prompt", "Hi"}, {"max_tokens", 2}}.dump(), "application/json");
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 429);
  EXPECT_TRUE(is_openai_error(json::parse(busy->body, nullptr, false))) << busy->body;

  auto t0 = Clock::now();
  hang_up = true;
  a.join();
  // 3000 tokens would take several seconds; the slot must come back well before.
  while (metric(c, "lathe_active_requests") != 0 && Clock::now() - t0 < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  double freed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(freed_s, 1.0);
  int st;
  json ok = post_json(c, "/v1/completions", {{"model", "slow"}, {"prompt", "Hi"}, {"max_tokens", 2}}, &st);
  EXPECT_EQ(st, 200) << ok.dump();
  EXPECT_LT(metric(c, "lathe_completion_tokens_total"), 2000);
}

TEST(ServeScheduler, RequestTimeoutEndsWith504) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  TempDir data;
  ServeProcess s({"--model", slow_model().path, "--data-dir", data.path, "--timeout", "0.3"}, data.path);
  auto c = s.client();
  int st;
  auto t0 = Clock::now();
  json r = post_json(c, "/v1/completions", {{"model", "slow"}, {"prompt", "Hi"}, {"max_tokens", 3000}, {"temperature", 0}}, &st);
  EXPECT_EQ(st, 504) << r.dump();
  EXPECT_TRUE(is_openai_error(r));
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 3.0);
  // Streamed: the stream ends with an error event and [DONE].
  auto rs = c.Post("/v1/completions", stream_request(3000).dump(), "application/json");
  ASSERT_TRUE(rs);
  EXPECT_NE(rs->body.find("\"error\""), std::string::npos);
  EXPECT_NE(rs->body.find("data: [DONE]"), std::string::npos);
  EXPECT_TRUE(s.alive());
}

}  // namespace
