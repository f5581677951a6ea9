// Runs cleanup when a scope is left, by return or by exception, in place of catch (...) { clean;
// throw; }. The cleanup runs inside a destructor, maybe during unwinding: it must not throw (use the
// std::error_code overloads), so a cleanup whose failure must be reported belongs on the normal path
// before dismiss(), with the guard covering only the exceptional exit.
#pragma once
#include <utility>

namespace lathe {

template <class F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ~ScopeExit() {
    if (active_) f_();
  }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  void dismiss() { active_ = false; }  // the normal path took care of it

 private:
  F f_;
  bool active_ = true;
};

}  // namespace lathe
