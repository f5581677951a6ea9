#include "lathe/serve/http_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "lathe/serve/limits.h"

namespace lathe::serve {
namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point after(double s) { return Clock::now() + std::chrono::microseconds(int64_t(s * 1e6)); }

int ms_until(Clock::time_point t) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return int(std::clamp<int64_t>(d, 0, 100));  // short slices, so shutdown is noticed promptly
}

bool ieq(const std::string& a, const char* b) {
  size_t n = std::strlen(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; i++)
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  return true;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

void address_of(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ip.clear();
  port = -1;
  if ((peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len)) != 0)
    return;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

// The request-reading side of one connection, as httplib's parser sees it. Bytes pass through a
// state machine that knows where the head ends and how the body is framed, so every cap is checked
// on bytes not yet handed to httplib: a read that would cross a cap returns -1 and records why.
class GuardedStream : public httplib::Stream {
 public:
  GuardedStream(int fd, const HttpGuardOptions& o, const std::atomic<bool>& stopping)
      : fd_(fd), o_(o), stopping_(stopping) {}

  HttpViolation violation = HttpViolation::None;

  // Waits (up to kKeepAliveIdleS) for the first byte of a next request; false: closed, idle or
  // shutting down.
  bool wait_for_request() {
    if (off_ < len_) return true;
    auto until = after(kKeepAliveIdleS);
    while (!stopping_.load() && Clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      int r = poll(&p, 1, ms_until(until));
      if (r < 0 && errno != EINTR) return false;
      if (r > 0) return (p.revents & POLLIN) != 0;
    }
    return false;
  }

  void begin_request() {
    head_ = true;
    head_text_.clear();
    line_start_ = 0;
    lines_ = 0;
    mode_ = Mode::UntilEof;
    body_raw_ = body_decoded_ = content_length_ = 0;
    chunk_ = Chunk::SizeLine;
    chunk_line_.clear();
    chunk_left_ = 0;
    violation = HttpViolation::None;
    deadline_ = after(o_.header_timeout_s);
  }

  // True when the request's head and its whole body were read (so the connection can carry a next
  // request); false when the handler answered without reading the body, or reading broke off.
  bool request_complete() const {
    if (head_ || violation != HttpViolation::None) return false;
    if (mode_ == Mode::Length) return body_raw_ == content_length_;
    if (mode_ == Mode::Chunked) return chunk_ == Chunk::Done;
    return true;  // until EOF: read only for methods with content, and then the client has closed
  }
  bool body_refused() const { return violation == HttpViolation::BodyTooLarge || (!head_ && !request_complete()); }

  bool is_readable() const override {
    if (off_ < len_) return true;
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, int(kReadIdleTimeoutS * 1000)) > 0;
  }
  bool is_writable() const override {
    pollfd p{fd_, POLLOUT, 0};
    int r = poll(&p, 1, int(kWriteTimeoutS * 1000));
    return r > 0 && (p.revents & POLLOUT) && !(p.revents & (POLLERR | POLLHUP));
  }

  ssize_t read(char* ptr, size_t size) override {
    if (violation != HttpViolation::None) return -1;
    if (off_ == len_) {
      ssize_t n = fill();
      if (n <= 0) return n;
    }
    size_t n = std::min(size, len_ - off_);
    if (!admit(buf_ + off_, n)) return -1;
    std::memcpy(ptr, buf_ + off_, n);
    off_ += n;
    return ssize_t(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t done = 0;
    auto until = after(kWriteTimeoutS);
    while (done < size) {
      pollfd p{fd_, POLLOUT, 0};
      int r = poll(&p, 1, ms_until(until));
      if (r < 0 && errno != EINTR) return -1;
      if (r == 0) {
        if (Clock::now() >= until) return -1;  // the client takes nothing: drop it
        continue;
      }
      if (p.revents & (POLLERR | POLLHUP)) return -1;
      ssize_t n = send(fd_, ptr + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return -1;
      }
      done += size_t(n);
      until = after(kWriteTimeoutS);  // progress: the timeout is per stall, as httplib's
    }
    return ssize_t(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(fd_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(fd_, false, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  enum class Mode { UntilEof, Length, Chunked };
  enum class Chunk { SizeLine, Data, DataEnd, Trailer, Done };

  // Reads more bytes into the buffer, waiting within the request's deadline, the idle timeout and
  // shutdown. >0: bytes; 0: the client closed; -1: timeout or error.
  ssize_t fill() {
    off_ = len_ = 0;
    auto idle = after(kReadIdleTimeoutS);
    for (;;) {
      auto now = Clock::now();
      if (now >= deadline_) {
        violation = head_ ? HttpViolation::HeaderTimeout : HttpViolation::BodyTimeout;
        return -1;
      }
      if (now >= idle || stopping_.load()) return -1;  // shutting down: requests still arriving are dropped
      pollfd p{fd_, POLLIN, 0};
      int r = poll(&p, 1, std::min(ms_until(deadline_), ms_until(idle)));
      if (r < 0 && errno != EINTR) return -1;
      if (r <= 0) continue;
      ssize_t n = recv(fd_, buf_, sizeof(buf_), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) return n < 0 ? -1 : 0;
      len_ = size_t(n);
      return n;
    }
  }

  // Runs bytes about to be handed out through the framing state machine; false (with `violation`
  // set) when they would cross a cap.
  bool admit(const char* p, size_t n) {
    size_t i = 0;
    while (head_ && i < n) {  // httplib reads the head a byte at a time; bytes after it are body
      char c = p[i++];
      if (head_text_.size() >= kMaxHeaderBytes) return refuse(HttpViolation::HeaderTooLarge);
      head_text_.push_back(c);
      if (c != '\n') continue;
      bool blank = head_text_.size() - line_start_ == 2 && head_text_[line_start_] == '\r';
      if (lines_ > 0 && blank) {
        end_head();
      } else if (++lines_ > kMaxHeaderCount + 1) {  // + the request line
        return refuse(HttpViolation::HeaderTooLarge);
      }
      line_start_ = head_text_.size();
    }
    if (i == n) return true;
    return body(p + i, n - i);
  }

  bool refuse(HttpViolation v) {
    violation = v;
    return false;
  }

  // The head is complete: find the body's framing as httplib will (a first Transfer-Encoding of
  // exactly "chunked" wins over Content-Length; neither: read until the client closes).
  void end_head() {
    head_ = false;
    deadline_ = after(kBodyTimeoutS);
    bool te_seen = false, cl_seen = false;
    size_t pos = head_text_.find('\n') + 1;
    while (pos < head_text_.size()) {
      size_t e = head_text_.find('\n', pos);
      std::string line = head_text_.substr(pos, e - pos);
      pos = e + 1;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, colon), val = trim(line.substr(colon + 1));
      if (!te_seen && ieq(key, "transfer-encoding")) {
        te_seen = true;
        if (ieq(val, "chunked")) mode_ = Mode::Chunked;
      } else if (!cl_seen && ieq(key, "content-length")) {
        cl_seen = true;
        if (mode_ != Mode::Chunked) {
          mode_ = Mode::Length;
          content_length_ = std::strtoull(val.c_str(), nullptr, 10);
        }
      }
    }
    if (mode_ == Mode::Chunked) content_length_ = 0;
  }

  bool body(const char* p, size_t n) {
    body_raw_ += n;
    if (mode_ != Mode::Chunked) {
      // A declared length over the cap is refused at its first byte, not after reading up to it.
      if (body_raw_ > o_.max_body_bytes || (mode_ == Mode::Length && content_length_ > o_.max_body_bytes))
        return refuse(HttpViolation::BodyTooLarge);
      return true;
    }
    for (size_t i = 0; i < n;) {
      switch (chunk_) {
        case Chunk::Data: {
          size_t k = size_t(std::min<uint64_t>(chunk_left_, n - i));
          i += k;
          chunk_left_ -= k;
          if (chunk_left_ == 0) chunk_ = Chunk::DataEnd;
          break;
        }
        case Chunk::SizeLine:
        case Chunk::DataEnd:
        case Chunk::Trailer: {
          char c = p[i++];
          if (chunk_line_.size() >= (chunk_ == Chunk::Trailer ? kMaxHeaderBytes : kMaxChunkLineBytes))
            return refuse(HttpViolation::BadChunk);
          chunk_line_.push_back(c);
          if (c != '\n') break;
          if (!line_done()) return false;
          chunk_line_.clear();
          break;
        }
        case Chunk::Done:
          i = n;  // httplib does not read past the terminator; nothing to count
          break;
      }
    }
    return true;
  }

  // A complete line of chunk framing (in chunk_line_).
  bool line_done() {
    if (chunk_ == Chunk::DataEnd) {
      chunk_ = Chunk::SizeLine;
      return true;
    }
    if (chunk_ == Chunk::Trailer) {
      if (chunk_line_ == "\r\n") chunk_ = Chunk::Done;
      return true;
    }
    // A size line: hex digits, then optional ";extensions". The size is counted before its data
    // arrives, so an over-limit chunk is refused without reading it.
    uint64_t size = 0;
    size_t digits = 0;
    for (char c : chunk_line_) {
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) break;
      if (size > (uint64_t(1) << 59)) return refuse(HttpViolation::BodyTooLarge);
      size = size * 16 + uint64_t(v);
      digits++;
    }
    if (digits == 0) return refuse(HttpViolation::BadChunk);
    if (size == 0) {
      chunk_ = Chunk::Trailer;
      return true;
    }
    body_decoded_ += size;
    if (body_decoded_ > o_.max_body_bytes) return refuse(HttpViolation::BodyTooLarge);
    chunk_left_ = size;
    chunk_ = Chunk::Data;
    return true;
  }

  int fd_;
  const HttpGuardOptions& o_;
  const std::atomic<bool>& stopping_;
  char buf_[16384];
  size_t off_ = 0, len_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();

  bool head_ = false;
  std::string head_text_;
  size_t line_start_ = 0;
  int lines_ = 0;

  Mode mode_ = Mode::UntilEof;
  uint64_t body_raw_ = 0, body_decoded_ = 0, content_length_ = 0;
  Chunk chunk_ = Chunk::SizeLine;
  std::string chunk_line_;
  uint64_t chunk_left_ = 0;
};

thread_local GuardedStream* tl_stream = nullptr;

// Reads and drops what the client still sends, for up to kLingerS, after our side is shut: closing
// with unread input makes the kernel send a reset, which can destroy the error response (a 413, say)
// before the client has read it.
void linger_close(int fd) {
  shutdown(fd, SHUT_WR);
  char sink[16384];
  auto until = after(kLingerS);
  while (Clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, ms_until(until));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
  }
  close(fd);
}

}  // namespace

HttpViolation GuardedHttpServer::current_violation() { return tl_stream ? tl_stream->violation : HttpViolation::None; }

int GuardedHttpServer::connections_from(const std::string& ip) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_client_.find(ip);
  return it == per_client_.end() ? 0 : it->second;
}

bool GuardedHttpServer::admit(const std::string& ip) {
  std::lock_guard<std::mutex> lock(mu_);
  int& n = per_client_[ip];
  if (opts_.max_connections_per_client > 0 && n >= opts_.max_connections_per_client) {
    if (n == 0) per_client_.erase(ip);
    return false;
  }
  n++;
  return true;
}

void GuardedHttpServer::release(const std::string& ip) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_client_.find(ip);
  if (it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) { return serve_connection(sock); }

bool GuardedHttpServer::serve_connection(socket_t sock) {
  std::string ip;
  int port;
  address_of(sock, true, ip, port);
  if (!admit(ip)) {
    // Refused without reading: one best-effort answer that does not wait on the client.
    std::string body = R"({"error":{"message":"too many open connections from this address (limit )" +
                       std::to_string(opts_.max_connections_per_client) +
                       R"(); close some or retry later","type":"requests","param":null,"code":"too_many_connections"}})";
    std::string msg = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ssize_t ignored = send(sock, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    shutdown(sock, SHUT_RDWR);
    close(sock);
    return true;
  }
  int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  GuardedStream strm(sock, opts_, stopping_);
  tl_stream = &strm;
  bool ok = true, linger = false;
  for (int i = 0; i < kKeepAliveMaxRequests && ok; i++) {
    if (stopping_.load() || !strm.wait_for_request()) break;
    strm.begin_request();
    bool last = i + 1 == kKeepAliveMaxRequests, closed = false;
    ok = process_request(strm, last, closed, nullptr);
    if (!strm.request_complete()) {
      linger = ok && strm.body_refused();
      break;
    }
    if (closed) break;
  }
  tl_stream = nullptr;
  release(ip);
  if (linger) {
    linger_close(sock);
  } else {
    shutdown(sock, SHUT_RDWR);
    close(sock);
  }
  return ok;
}

}  // namespace lathe::serve
