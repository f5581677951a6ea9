#include "lathe/ui/ui_session.h"

#include <cstdio>

#include "lathe/core/error.h"

namespace lathe::ui {

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  FILE* f = std::fopen("/dev/urandom", "rb");
  if (!f || std::fread(raw.data(), 1, bytes, f) != bytes) {
    if (f) std::fclose(f);
    fail("ui", "cannot read /dev/urandom for a session id");
  }
  std::fclose(f);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); i++) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

std::string cookie_value(const std::string& header, const std::string& name) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    std::string part = header.substr(pos, end - pos);
    const size_t a = part.find_first_not_of(' ');
    if (a != std::string::npos) part = part.substr(a);
    if (part.size() > name.size() && part.compare(0, name.size(), name) == 0 && part[name.size()] == '=')
      return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}

Session SessionStore::create(const std::string& reviewer) {
  Session s{random_hex(), random_hex(), reviewer,
            std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(ttl_s_ * 1000))};
  std::lock_guard<std::mutex> lock(mu_);
  // Drop expired sessions now and then, so a long-running workbench does not collect them.
  const auto now = std::chrono::steady_clock::now();
  for (auto it = sessions_.begin(); it != sessions_.end();) it = it->second.expires <= now ? sessions_.erase(it) : std::next(it);
  sessions_[s.id] = s;
  return s;
}

std::optional<Session> SessionStore::get(const std::string& id) {
  if (id.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires <= std::chrono::steady_clock::now()) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void SessionStore::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(id);
}

}  // namespace lathe::ui
