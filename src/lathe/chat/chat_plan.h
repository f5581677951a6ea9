// Render plans: a conversation rendered once through the interpreter with a content probe
// (jinja_eval.h, Probe) becomes a plan (the output as literal text with holes where each message's
// content goes, plus the probe's guards) that renders every later conversation of the same shape
// (roles, keys and every non-content value, which contents are empty, the options) whose contents pass
// the guards, by concatenation. The output, its origins, the loop's item runs and the generation
// spans are what the interpreter gives, by construction: the guards are every content-dependent
// decision the interpreter made (jinja_probe.cpp), so the same decisions are made again.
// tests/chat/chat_plan_unit.cpp renders thousands of random conversations both ways.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/chat/jinja_eval.h"

namespace lathe {

struct RenderPlan {
  std::vector<std::string> literals;  // holes.size() + 1 of them
  std::vector<int> holes;             // content (message index) at each hole
  std::vector<size_t> probe_len;      // that content's length in the probe
  // Positions in the probe output as (holes before, position): shifted by the contents' lengths.
  struct At {
    size_t holes_before = 0, pos = 0;
  };
  std::vector<std::pair<At, At>> item_runs, generation;
  std::vector<int> item_tags;
  std::vector<jinja::Guard> guards;
};

struct ChatPlanStats {
  size_t hits = 0;    // renders served by a plan
  size_t probes = 0;  // interpreter renders with a probe
  size_t plans = 0;   // plans kept
};

class RenderPlanCache {
 public:
  // The shape of messages[0, n) with these options, and the contents by message index; nullopt when
  // a message is not an object or a content is not a string (those are always interpreted).
  static std::optional<std::string> shape_key(const nlohmann::ordered_json& messages, size_t n, bool agp,
                                              const std::string& options_key,
                                              std::vector<const std::string*>& contents);
  // Nested no deeper than `limit` (so that dumping it cannot exhaust the stack).
  static bool shallow(const nlohmann::ordered_json& j, int limit);
  // The render from a plan whose guards these contents pass, if any.
  std::optional<jinja::RenderResult> render(const std::string& key, const std::vector<const std::string*>& contents,
                                            const jinja::RenderOptions& ro);
  // Whether a probe for this key could still be kept (bounded plans per shape and shapes).
  bool wants(const std::string& key);
  // Keeps the plan of a clean probe render.
  void add(const std::string& key, const jinja::RenderResult& r, jinja::Probe&& probe);
  ChatPlanStats stats() const;

 private:
  static constexpr size_t kMaxShapes = 4096, kMaxPlansPerShape = 8;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<const RenderPlan>>> plans_;
  std::atomic<size_t> hits_{0}, probes_{0}, kept_{0};
};

}  // namespace lathe
