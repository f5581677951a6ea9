// Fuzzes `lathe serve`'s request handling in process. The first byte picks what the rest is:
//  0: a /v1/chat/completions body, 1: a /v1/completions body, 2: a /v1/feedback body — each must
//     parse into a request within the caps of limits.h or raise a 400 ApiError whose body is
//     OpenAI's error shape; any other exception or a crash is a finding;
//  3: raw bytes of an HTTP connection, served by GuardedHttpServer (lathe's connection loop and
//     guarded stream in front of httplib's request parser) over a socketpair, with routes that run
//     the same body parsers; every answer must be a well-formed status line.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "lathe/serve/http_guard.h"
#include "lathe/serve/limits.h"
#include "lathe/serve/openai_protocol.h"

using lathe::serve::ApiError;

namespace {

void check_error(const ApiError& e) {
  if (e.status != 400) __builtin_trap();
  nlohmann::json j = nlohmann::json::parse(lathe::serve::error_body(e), nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"]["message"].is_string()) __builtin_trap();
}

void parse_body(int kind, const std::string& body) {
  using namespace lathe::serve;
  try {
    if (kind == 2) {
      FeedbackRecord f = parse_feedback_request(body);
      if (f.rating < -1 || f.rating > 5 || f.rating == 0 || f.tags.size() > kMaxFeedbackTags) __builtin_trap();
      return;
    }
    CompletionRequest r = parse_completion_request(body, kind == 0);
    if (r.stop.size() > kMaxStopStrings || (r.max_tokens && *r.max_tokens < 1)) __builtin_trap();
    for (const auto& s : r.stop)
      if (s.empty() || s.size() > kMaxStopStringBytes) __builtin_trap();
    if (r.chat && (r.messages.empty() || r.messages.size() > kMaxMessages)) __builtin_trap();
    for (int32_t id : r.prompt_ids)
      if (id < 0) __builtin_trap();
  } catch (const ApiError& e) {
    check_error(e);
  }
}

lathe::serve::GuardedHttpServer& server() {
  static lathe::serve::GuardedHttpServer* s = [] {
    auto* srv = new lathe::serve::GuardedHttpServer();
    lathe::serve::HttpGuardOptions o;
    o.max_body_bytes = 4096;
    o.header_timeout_s = 2;
    o.max_connections_per_client = 0;
    srv->set_guard_options(o);
    srv->set_payload_max_length(o.max_body_bytes);
    srv->Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("{}", "application/json"); });
    for (int kind : {0, 1, 2}) {
      const char* route = kind == 0 ? "/v1/chat/completions" : kind == 1 ? "/v1/completions" : "/v1/feedback";
      srv->Post(route, [kind](const httplib::Request& req, httplib::Response& res) {
        parse_body(kind, req.body);
        res.set_content("{}", "application/json");
      });
    }
    return srv;
  }();
  return *s;
}

void serve_raw(const std::string& bytes) {
  if (bytes.size() > 60000) return;  // must fit the socket buffer: written before serving
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return;
  int big = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(sv[0], bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += size_t(n);
  }
  shutdown(sv[0], SHUT_WR);  // the client has said everything: reads end at EOF, never at a timeout
  server().serve_connection(sv[1]);  // closes sv[1]
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(sv[0], buf, sizeof(buf))) > 0;) out.append(buf, size_t(n));
  close(sv[0]);
  if (!out.empty() && out.rfind("HTTP/1.1 ", 0) != 0) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int kind = data[0] % 4;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (kind < 3) parse_body(kind, rest);
  else serve_raw(rest);
  return 0;
}
