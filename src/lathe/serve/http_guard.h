// The HTTP connection loop of `lathe serve`, replacing cpp-httplib 0.11's own (Debian 12's version),
// which leaves several lengths and times to the client: a chunked body is read whole whatever
// set_payload_max_length says, header lines and their number are unbounded, and each read only has
// a per-read timeout, so a client sending one header byte every few seconds holds a worker thread
// forever (slowloris). GuardedHttpServer overrides httplib's per-connection hook and hands
// httplib's request parser a Stream that enforces lathe's caps (limits.h) on the bytes as they are
// read, before httplib buffers them:
//  - the request head (request line + headers) within kMaxHeaderBytes / kMaxHeaderCount lines and
//    within the header timeout as a whole, not per read;
//  - the body within max_body_bytes for every framing (Content-Length, chunked: counted on the
//    decoded chunk sizes, so the limit holds before a chunk's data is read; until-EOF) and within
//    kBodyTimeoutS, on every route, unknown ones included;
//  - at most max_connections_per_client open connections per client address (more are answered
//    429 and closed at once), and kKeepAliveMaxRequests requests / kKeepAliveIdleS idle per connection.
// A request whose body was not read to its end (refused early, e.g. 401 or 413) closes its
// connection, so the rest of that body is never parsed as a next request.
#pragma once
#include <httplib.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>

namespace lathe::serve {

enum class HttpViolation { None, HeaderTooLarge, HeaderTimeout, BodyTooLarge, BodyTimeout, BadChunk };

struct HttpGuardOptions {
  size_t max_body_bytes = 4u << 20;
  double header_timeout_s = 10;
  int max_connections_per_client = 32;  // 0 = no cap
};

class GuardedHttpServer : public httplib::Server {
 public:
  void set_guard_options(const HttpGuardOptions& o) { opts_ = o; }
  const HttpGuardOptions& guard_options() const { return opts_; }
  // Ends idle keep-alive waits and requests whose head is still arriving; call before stop().
  void begin_shutdown() { stopping_ = true; }
  bool stopping() const { return stopping_.load(); }
  // What the request being handled on this thread broke (None when nothing, or off a connection
  // thread); the error handler turns it into the matching status and message.
  static HttpViolation current_violation();
  // Open connections from `ip` now (for tests and metrics).
  int connections_from(const std::string& ip) const;
  // Serves every request on an accepted connection, then closes it: the per-client cap, the
  // keep-alive loop and httplib's parser over the guarded stream. httplib calls it (through
  // process_and_close_socket) for each connection; the fuzz target calls it on a socketpair.
  bool serve_connection(socket_t sock);

 private:
  bool process_and_close_socket(socket_t sock) override;
  bool admit(const std::string& ip);
  void release(const std::string& ip);

  HttpGuardOptions opts_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::map<std::string, int> per_client_;
};

}  // namespace lathe::serve
