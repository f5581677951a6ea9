// Three error tiers (STYLE.md §8):
//   LATHE_CHECK   always-on invariant checks; abort with file:line and the values.
//   LATHE_DCHECK  debug-only checks for hot loops (compiled out when NDEBUG).
//   lathe::Error  a thrown error for anything a user can cause (files, configs, requests);
//                 its message starts with the component in brackets: "[safetensors] ...".
#pragma once
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <fmt/format.h>

namespace lathe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// fail("safetensors", "{}: tensor '{}' ...", path, name) throws "[safetensors] path: tensor 'x' ...".
template <class... Args>
[[noreturn]] void fail(const char* component, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(std::string("[") + component + "] " + fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "lathe: internal check failed: %s at %s:%d %s\n", expr, file, line, msg.c_str());
  std::abort();
}

}  // namespace lathe

#define LATHE_CHECK(cond, ...)                                                          \
  do {                                                                                  \
    if (!(cond)) ::lathe::check_failed(#cond, __FILE__, __LINE__, fmt::format("" __VA_ARGS__)); \
  } while (0)

#ifdef NDEBUG
#define LATHE_DCHECK(cond, ...) \
  do {                          \
  } while (0)
#else
#define LATHE_DCHECK(cond, ...) LATHE_CHECK(cond, __VA_ARGS__)
#endif
