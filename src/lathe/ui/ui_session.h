// Who may use the workbench. `lathe ui` binds to loopback by default; any other address needs a
// token (--token / LATHE_UI_TOKEN), checked once at login. A login names the reviewer (recorded with
// every decision) and gets a session: an HttpOnly, SameSite=Strict cookie that expires after the
// session lifetime, plus a CSRF token the page sends as X-CSRF-Token on every state-changing request
// (a request without it is refused even with a valid cookie).
#pragma once
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace lathe::ui {

struct Session {
  std::string id, csrf, reviewer;
  std::chrono::steady_clock::time_point expires;
};

class SessionStore {
 public:
  explicit SessionStore(double ttl_s) : ttl_s_(ttl_s) {}
  Session create(const std::string& reviewer);
  // The live session with this id (expired ones are removed and never returned).
  std::optional<Session> get(const std::string& id);
  void remove(const std::string& id);
  double ttl_s() const { return ttl_s_; }

 private:
  double ttl_s_;
  std::mutex mu_;
  std::map<std::string, Session> sessions_;
};

// 32 hex digits from the system's random source (/dev/urandom).
std::string random_hex(size_t bytes = 16);
// Compares in time that does not depend on where the strings first differ.
bool constant_time_equal(const std::string& a, const std::string& b);
// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);
// A cookie's value from a Cookie header ("a=1; lathe_ui_session=abc" -> "abc"); "" when absent.
std::string cookie_value(const std::string& header, const std::string& name);

}  // namespace lathe::ui
