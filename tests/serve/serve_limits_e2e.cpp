// The server's caps on what a client controls, against a real `lathe serve` over loopback with raw
// sockets (so the tests can send what a well-behaved client never would): chunked bodies over
// --max-body-bytes on every kind of route, slow request heads (slowloris) from one and from many
// addresses, header size caps, deeply nested JSON, --ctx checked at startup, generation bounded by
// the context, and SIGTERM ending a long generation promptly.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>

#include "serve_test_util.h"

using nlohmann::json;
using namespace lathe::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStories = "models/stories260K-hf";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Models {
  TempDir dir;
  std::string stories = dir / "stories";
  std::string slow = dir / "slow";  // random weights, a few ms a token: a generation that lasts
  Models() {
    make_stories_chat_model(stories);
    std::string log;
    int rc = run_lathe("init-model --hidden-size 256 --intermediate-size 688 --num-hidden-layers 4 --num-attention-heads 4 "
                       "--vocab-size 512 --max-position-embeddings 4096 --seed 3 --output " + slow, &log, true);
    if (rc != 0) ADD_FAILURE() << log;
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      std::filesystem::copy_file(fixture_path(std::string(kStories) + "/" + f), slow + "/" + f);
  }
};

Models& models() {
  static Models m;
  return m;
}

// A raw TCP connection to the server from a chosen loopback source address (all of 127/8 is local
// on Linux, so tests can play several clients).
class Conn {
 public:
  Conn(int port, const char* from = "127.0.0.1") {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, from, &src.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) ADD_FAILURE() << "bind " << from;
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(uint16_t(port));
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) == 0;
  }
  ~Conn() { close(fd_); }
  Conn(const Conn&) = delete;
  bool ok() const { return ok_; }
  bool send_all(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += size_t(n);
    }
    return true;
  }
  // Whether a byte (or EOF/reset) is waiting within `ms`.
  bool readable(int ms) {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
  }
  // Everything until the server closes or `timeout_s` passes.
  std::string read_all(double timeout_s) {
    std::string out;
    auto until = Clock::now() + std::chrono::milliseconds(int(timeout_s * 1000));
    char buf[8192];
    while (Clock::now() < until) {
      if (!readable(50)) continue;
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, size_t(n));
    }
    return out;
  }
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool ok_ = false, closed_ = false;
};

int status_of(const std::string& response) {
  return response.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(response.c_str() + 9) : -1;
}

size_t rss_bytes(pid_t pid) {
  std::string s = slurp("/proc/" + std::to_string(pid) + "/status");
  size_t p = s.find("VmRSS:");
  return p == std::string::npos ? 0 : size_t(std::stoull(s.substr(p + 6))) * 1024;
}

// Sends a chunked body of up to `total` bytes in 64 KiB chunks, stopping as soon as the server
// answers; returns the answer.
std::string send_chunked(Conn& c, const std::string& head, size_t total) {
  EXPECT_TRUE(c.send_all(head + "Transfer-Encoding: chunked\r\n\r\n"));
  const std::string piece(64 * 1024, 'a');
  char size_line[32];
  std::snprintf(size_line, sizeof(size_line), "%zx\r\n", piece.size());
  for (size_t sent = 0; sent < total; sent += piece.size()) {
    if (c.readable(0)) break;
    if (!c.send_all(size_line + piece + "\r\n")) break;
  }
  return c.read_all(5);
}

TEST(ServeLimits, ChunkedBodiesOverTheLimitAre413OnEveryRoute) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  // The default limit (4 MiB): each refused body is buffered up to it, so memory that stayed behind
  // after each would show in RSS.
  ServeProcess s({"--model", models().stories, "--data-dir", data.path}, data.path);
  const size_t rss0 = rss_bytes(s.pid());
  const size_t k50MB = 50u << 20;
  for (const char* target : {"POST /v1/chat/completions", "POST /health", "POST /no/such/route", "POST /v1/nothing",
                             "POST /v1/chat/completions", "POST /health", "POST /no/such/route", "POST /v1/nothing"}) {
    auto t0 = Clock::now();
    Conn c(s.port());
    ASSERT_TRUE(c.ok());
    std::string r = send_chunked(c, std::string(target) + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", k50MB);
    EXPECT_EQ(status_of(r), 413) << target << ": " << r;
    EXPECT_NE(r.find("--max-body-bytes"), std::string::npos) << r;
    EXPECT_LT(seconds_since(t0), 3.0) << target;
  }
  // A GET with a chunked body: httplib answers without reading it, and the connection is closed
  // rather than parsing the body as the next request.
  {
    Conn c(s.port());
    std::string r = send_chunked(c, "GET /health HTTP/1.1\r\nHost: x\r\n", k50MB);
    EXPECT_EQ(status_of(r), 200) << r;
    EXPECT_TRUE(c.closed());
  }
  // A chunk that declares more than the limit is refused before its data is sent.
  {
    Conn c(s.port());
    c.send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n");
    EXPECT_EQ(status_of(c.read_all(3)), 413);
  }
  // Under the limit, chunked still works.
  {
    Conn c(s.port());
    std::string body = json{{"model", "stories"}, {"prompt", "Once"}, {"max_tokens", 2}}.dump();
    char len[16];
    std::snprintf(len, sizeof(len), "%zx", body.size());
    c.send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
               std::string(len) + "\r\n" + body + "\r\n0\r\n\r\n");
    std::string r = c.read_all(5);
    EXPECT_EQ(status_of(r), 200) << r;
  }
  const size_t rss1 = rss_bytes(s.pid());
  EXPECT_LT(rss1, rss0 + (24u << 20)) << "RSS " << rss0 << " -> " << rss1;
  auto h = s.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST(ServeLimits, HeaderCapsAnswer431) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  ServeProcess s({"--model", models().stories, "--data-dir", data.path}, data.path);
  {
    Conn c(s.port());
    std::string head = "GET /health HTTP/1.1\r\n";
    for (int i = 0; i < 500; i++) head += "X-Filler-" + std::to_string(i) + ": 1\r\n";
    c.send_all(head + "\r\n");
    EXPECT_EQ(status_of(c.read_all(3)), 431);
  }
  {
    Conn c(s.port());
    c.send_all("GET /health HTTP/1.1\r\nX-Big: " + std::string(200000, 'b'));  // no end of line, ever
    EXPECT_EQ(status_of(c.read_all(3)), 431);
  }
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

// A request answered without reading its body (401 here) closes the connection: the body, which
// here looks like a second request, must not be served as one.
TEST(ServeLimits, UnreadBodyIsNeverParsedAsTheNextRequest) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  ServeProcess s({"--model", models().stories, "--data-dir", data.path, "--api-key", "k"}, data.path);
  Conn c(s.port());
  std::string inner = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  c.send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(inner.size()) + "\r\n\r\n" + inner);
  std::string r = c.read_all(3);
  EXPECT_EQ(status_of(r), 401) << r;
  EXPECT_EQ(r.find("HTTP/1.1 200"), std::string::npos) << r;
  EXPECT_TRUE(c.closed());
}

// Slow request heads: one header line every 300 ms, never finished.
TEST(ServeLimits, SlowlorisDoesNotStarveOtherClients) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  ServeProcess s({"--model", models().stories, "--data-dir", data.path, "--max-connections-per-client", "8",
                  "--header-timeout", "2"},
                 data.path);
  std::vector<std::unique_ptr<Conn>> one_addr, many_addr;
  for (int i = 0; i < 50; i++) one_addr.push_back(std::make_unique<Conn>(s.port(), "127.0.0.2"));
  for (int i = 0; i < 50; i++) {
    std::string from = "127.0.1." + std::to_string(i + 1);
    many_addr.push_back(std::make_unique<Conn>(s.port(), from.c_str()));
  }
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    for (auto* set : {&one_addr, &many_addr})
      for (auto& c : *set) c->send_all("POST /v1/chat/completions HTTP/1.1\r\n");
    for (int line = 0; !done.load(); line++) {
      for (auto* set : {&one_addr, &many_addr})
        for (auto& c : *set) c->send_all("X-Slow-" + std::to_string(line) + ": 1\r\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Another client is served at once, both /health and a completion.
  auto t0 = Clock::now();
  auto c = s.client();
  c.set_read_timeout(5, 0);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  int st;
  json r = post_json(c, "/v1/completions", {{"model", "stories"}, {"prompt", "Once"}, {"max_tokens", 4}}, &st);
  EXPECT_EQ(st, 200) << r.dump();
  EXPECT_LT(seconds_since(t0), 2.0);
  // Beyond 8 connections from 127.0.0.2 were refused at once with 429.
  int refused = 0;
  for (auto& k : one_addr) {
    std::string got = k->readable(0) ? k->read_all(0.2) : "";
    if (status_of(got) == 429 || (got.empty() && k->closed())) refused++;
  }
  EXPECT_GE(refused, 42);
  // The rest, still trickling headers, are closed by the header timeout (2 s), not kept forever.
  auto t1 = Clock::now();
  int closed = 0;
  for (auto* set : {&one_addr, &many_addr})
    for (auto& k : *set) {
      std::string got = k->read_all(std::max(0.1, 4.0 - seconds_since(t1)));
      if (k->closed()) closed++;
    }
  done = true;
  trickle.join();
  EXPECT_EQ(closed, 100);
  EXPECT_LT(seconds_since(t0), 6.0);
  EXPECT_TRUE(s.alive());
}

TEST(ServeLimits, DeeplyNestedJsonIs400) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  ServeProcess s({"--model", models().stories, "--data-dir", data.path, "--max-body-bytes", "1000000"}, data.path);
  auto c = s.client();
  std::string deep(100000, '[');
  std::string deep_field = R"({"model":"stories","messages":)" + std::string(100000, '[');
  for (const char* route : {"/v1/chat/completions", "/v1/completions", "/v1/feedback", "/v1/adapters"})
    for (const std::string* body : {&deep, &deep_field}) {
      auto r = c.Post(route, *body, "application/json");
      ASSERT_TRUE(r) << route;
      EXPECT_EQ(r->status, 400) << route << ": " << r->body;
      json j = json::parse(r->body, nullptr, false);
      EXPECT_TRUE(is_openai_error(j)) << r->body;
      EXPECT_EQ(j["error"]["code"], "json_too_deep") << r->body;
    }
  EXPECT_TRUE(s.alive());
}

TEST(ServeLimits, CtxIsCheckedAtStartup) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  std::string out;
  int rc = run_lathe("serve --port 0 --model " + models().stories + " --data-dir " + data.path + " --ctx 1000000000", &out, true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("--ctx 1000000000"), std::string::npos) << out;
  EXPECT_NE(out.find("max_position_embeddings 512"), std::string::npos) << out;
  rc = run_lathe("serve --port 0 --model " + models().stories + " --data-dir " + data.path + " --ctx=-5", &out, true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("--ctx"), std::string::npos) << out;
  // A model that claims 2^24 positions (config_validate's cap): an explicit --ctx of that size does not
  // fit in memory (~20 GiB of KV cache per request for this model, times 64 concurrent requests).
  std::string huge = data / "huge";
  std::filesystem::create_directories(huge);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(models().stories + "/" + f, huge + "/" + f);
  json cfg = json::parse(slurp(models().stories + "/config.json"));
  cfg["max_position_embeddings"] = 16777216;
  std::ofstream(huge + "/config.json") << cfg.dump();
  rc = run_lathe("serve --port 0 --model " + huge + " --data-dir " + data.path + " --ctx 16777216 --max-concurrency 64", &out, true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("--ctx 16777216"), std::string::npos) << out;
  EXPECT_NE(out.find("GiB"), std::string::npos) << out;
  // By default it serves what fits, and says so.
  ServeProcess s({"--model", huge, "--data-dir", data.path}, data.path);
  EXPECT_TRUE(s.alive());
  EXPECT_NE(s.stderr_text().find("context lowered to"), std::string::npos) << s.stderr_text();
}

TEST(ServeLimits, GenerationIsBoundedByTheContext) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  ServeProcess s({"--model", models().slow, "--data-dir", data.path, "--ctx", "100"}, data.path);
  auto c = s.client();
  int st;
  // No max_tokens: the answer may run to the end of the context, not beyond.
  json r = post_json(c, "/v1/chat/completions", {{"model", "slow"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}}, &st);
  ASSERT_EQ(st, 200) << r.dump();
  EXPECT_LE(r["usage"]["total_tokens"].get<int>(), 100);
  EXPECT_GT(r["usage"]["completion_tokens"].get<int>(), 0);
  // max_tokens beyond the room left is refused, naming it.
  r = post_json(c, "/v1/completions", {{"model", "slow"}, {"prompt", "Once"}, {"max_tokens", 99}}, &st);
  EXPECT_EQ(st, 400) << r.dump();
  EXPECT_EQ(r["error"]["param"], "max_tokens");
  EXPECT_EQ(r["error"]["code"], "context_length_exceeded");
  r = post_json(c, "/v1/completions", {{"model", "slow"}, {"prompt", "Once"}, {"max_completion_tokens", 1000}}, &st);
  EXPECT_EQ(st, 400) << r.dump();
  EXPECT_EQ(r["error"]["param"], "max_completion_tokens");
  std::string words;
  for (int i = 0; i < 80; i++) words += " the cat sat";
  r = post_json(c, "/v1/completions", {{"model", "slow"}, {"prompt", words}}, &st);
  EXPECT_EQ(st, 400) << r.dump();
  EXPECT_EQ(r["error"]["param"], "prompt");
}

TEST(ServeLimits, SigtermEndsALongGenerationPromptly) {
  LATHE_REQUIRE_FIXTURE(kStories);
  TempDir data;
  ServeProcess s({"--model", models().slow, "--data-dir", data.path}, data.path);
  // Two long generations in flight: one streamed, one whole.
  std::atomic<int> tokens{0};
  std::string stream_body;
  int whole_status = 0;
  std::thread streamer([&] {
    httplib::Client c("127.0.0.1", s.port());
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"model", "slow"}, {"prompt", "Once"}, {"max_tokens", 4000}, {"temperature", 0}, {"stream", true}}.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      stream_body.append(d, n);
      tokens++;
      return true;
    };
    c.send(req);
  });
  std::thread whole([&] {
    auto c = s.client();
    json r = post_json(c, "/v1/completions", {{"model", "slow"}, {"prompt", "Once"}, {"max_tokens", 4000}, {"temperature", 0}},
                       &whole_status);
  });
  auto until = Clock::now() + std::chrono::seconds(10);
  auto active = [&] {
    std::string m = s.client().Get("/metrics")->body;
    return m.find("\nlathe_active_requests 2") != std::string::npos;
  };
  while ((tokens.load() < 20 || !active()) && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GE(tokens.load(), 20);
  auto t0 = Clock::now();
  int rc = s.stop(SIGTERM);
  double took = seconds_since(t0);
  streamer.join();
  whole.join();
  EXPECT_EQ(rc, 0) << s.stderr_text();
  EXPECT_LT(took, 2.0) << "SIGTERM to exit: " << took << " s";
  std::printf("SIGTERM to exit with two generations in flight: %.3f s\n", took);
  EXPECT_EQ(whole_status, 503);
  EXPECT_NE(stream_body.find("shutting down"), std::string::npos) << stream_body.substr(stream_body.size() - std::min<size_t>(400, stream_body.size()));
  EXPECT_NE(s.stderr_text().find("lathe serve: stopped"), std::string::npos);
}

}  // namespace
