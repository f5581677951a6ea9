// Differential fuzzing of the depth-bounded JSON parser (core/json_io.h) against nlohmann::json:
//   - the byte pre-scan's verdict equals the true nesting depth of every document nlohmann accepts
//     (computed here without recursion), so no valid shallow document is refused and no deep one
//     slips through;
//   - on input within the cap, the bounded parser accepts exactly what nlohmann accepts and builds
//     the same value (json and ordered_json);
//   - on deeper input it fails cleanly with too_deep and a line inside the text, never by recursion.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lathe/core/json_io.h"

namespace {

int depth_of(const nlohmann::json& root) {
  int best = 0;
  std::vector<std::pair<const nlohmann::json*, int>> stack{{&root, 0}};
  while (!stack.empty()) {
    auto [v, d] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    best = std::max(best, d + 1);
    for (const auto& c : *v) stack.push_back({&c, d + 1});
  }
  return best;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool deep = lathe::json_depth_exceeded(text) != std::string::npos;
  const nlohmann::json ref = nlohmann::json::parse(text, nullptr, false);  // iterative parse
  if (!ref.is_discarded() && (depth_of(ref) > lathe::kMaxJsonDepth) != deep) __builtin_trap();

  nlohmann::json got;
  lathe::JsonError err;
  const bool ok = lathe::try_parse_json_bounded(text, got, &err);
  if (deep) {
    if (ok || !err.too_deep || err.line < 1) __builtin_trap();
    if (err.line > 1 + std::count(text.begin(), text.end(), '\n')) __builtin_trap();
    return 0;
  }
  if (ok != !ref.is_discarded()) __builtin_trap();
  if (ok && (got != ref || got.dump() != ref.dump())) __builtin_trap();
  if (!ok && err.too_deep) __builtin_trap();

  nlohmann::ordered_json o;
  if (lathe::try_parse_json_bounded(text, o) != ok) __builtin_trap();
  if (ok && o.dump() != nlohmann::ordered_json::parse(text).dump()) __builtin_trap();
  return 0;
}
