#include "lathe/chat/chat_plan.h"

namespace lathe {

bool RenderPlanCache::shallow(const nlohmann::ordered_json& j, int limit) {
  if (!j.is_structured()) return true;
  if (limit <= 0) return false;
  for (const auto& x : j)
    if (!shallow(x, limit - 1)) return false;
  return true;
}

std::optional<std::string> RenderPlanCache::shape_key(const nlohmann::ordered_json& messages, size_t n, bool agp,
                                                      const std::string& options_key,
                                                      std::vector<const std::string*>& contents) {
  static const std::string kNone;
  std::string key = std::to_string(n) + (agp ? "+" : "-") + options_key;
  contents.assign(n, &kNone);
  try {
    for (size_t i = 0; i < n; ++i) {
      const auto& m = messages[i];
      if (!m.is_object()) return std::nullopt;
      key += '\x1e';
      for (auto it = m.begin(); it != m.end(); ++it) {
        key += it.key();
        key += '\x1f';
        if (it.key() == "content") {
          if (!it.value().is_string()) return std::nullopt;
          contents[i] = &it.value().get_ref<const std::string&>();
          // Whether it is empty is part of the shape: an empty content's origin can merge with a
          // neighbour's, so the plan's holes differ.
          key += contents[i]->empty() ? "E" : "S";
        } else {
          // Every other value is rendered as it is: part of the shape. Deep values (hostile input) are
          // left to the interpreter, which reports them, rather than recursed into here.
          if (!shallow(it.value(), 32)) return std::nullopt;
          key += it.value().dump();
        }
        key += '\x1f';
      }
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // invalid UTF-8 in a value: interpreted, which reports it
  }
  return key;
}

std::optional<jinja::RenderResult> RenderPlanCache::render(const std::string& key,
                                                           const std::vector<const std::string*>& contents,
                                                           const jinja::RenderOptions& ro) {
  std::vector<std::shared_ptr<const RenderPlan>> cands;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = plans_.find(key);
    if (it == plans_.end()) return std::nullopt;
    cands = it->second;
  }
  for (const auto& plan : cands) {
    // The interpreter refuses strings over the limit; so does a plan (it leaves that to the interpreter).
    size_t total = 0;
    for (const std::string& l : plan->literals) total += l.size();
    for (const std::string* c : contents) total += c->size();
    for (int h : plan->holes) total += contents[size_t(h)]->size();
    if (total > ro.limits.max_string) return std::nullopt;
    if (!jinja::guards_hold(plan->guards, contents, ro)) continue;

    jinja::RenderResult r;
    const size_t nh = plan->holes.size();
    std::vector<size_t> old_before(nh + 1, 0), new_before(nh + 1, 0);
    for (size_t h = 0; h < nh; ++h) {
      old_before[h + 1] = old_before[h] + plan->probe_len[h];
      new_before[h + 1] = new_before[h] + contents[size_t(plan->holes[h])]->size();
    }
    std::string& s = r.out.s;
    s.reserve(total);
    for (size_t h = 0; h < nh; ++h) {
      s += plan->literals[h];
      const std::string& c = *contents[size_t(plan->holes[h])];
      r.out.origins.push_back(jinja::Origin{s.size(), c.size(), plan->holes[h], 0});
      s += c;
    }
    s += plan->literals[nh];
    auto at = [&](const RenderPlan::At& a) { return a.pos - old_before[a.holes_before] + new_before[a.holes_before]; };
    for (size_t k = 0; k < plan->item_runs.size(); ++k) {
      size_t b = at(plan->item_runs[k].first), e = at(plan->item_runs[k].second);
      r.item_runs.push_back(jinja::Origin{b, e - b, plan->item_tags[k], 0});
    }
    for (const auto& [b, e] : plan->generation) r.generation_spans.emplace_back(at(b), at(e));
    hits_.fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  return std::nullopt;
}

bool RenderPlanCache::wants(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = plans_.find(key);
  if (it == plans_.end()) return plans_.size() < kMaxShapes;
  return it->second.size() < kMaxPlansPerShape;
}

void RenderPlanCache::add(const std::string& key, const jinja::RenderResult& r, jinja::Probe&& probe) {
  probes_.fetch_add(1, std::memory_order_relaxed);
  if (!probe.clean) return;
  auto plan = std::make_shared<RenderPlan>();
  size_t prev = 0;
  for (const jinja::Origin& o : r.out.origins) {
    // Every content in the output must be whole: a part of one (trimmed, split) is not a hole.
    if (o.source < 0 || size_t(o.source) >= probe.content_len.size() || o.src_pos != 0 ||
        o.len != probe.content_len[size_t(o.source)] || o.pos < prev)
      return;
    plan->literals.push_back(r.out.s.substr(prev, o.pos - prev));
    plan->holes.push_back(o.source);
    plan->probe_len.push_back(o.len);
    prev = o.pos + o.len;
  }
  plan->literals.push_back(r.out.s.substr(prev));
  bool inside = false;
  auto at = [&](size_t p) {
    RenderPlan::At a{0, p};
    for (const jinja::Origin& o : r.out.origins) {
      if (o.pos + o.len <= p) ++a.holes_before;
      else if (o.pos < p) inside = true;  // a boundary inside a content: it would not shift as a whole
    }
    return a;
  };
  for (const jinja::Origin& run : r.item_runs) {
    plan->item_runs.emplace_back(at(run.pos), at(run.pos + run.len));
    plan->item_tags.push_back(run.source);
  }
  for (const auto& [b, e] : r.generation_spans) plan->generation.emplace_back(at(b), at(e));
  if (inside) return;
  plan->guards = std::move(probe.guards);
  std::lock_guard<std::mutex> lock(mu_);
  if (plans_.size() >= kMaxShapes && !plans_.count(key)) return;
  auto& v = plans_[key];
  if (v.size() >= kMaxPlansPerShape) return;
  v.push_back(std::move(plan));
  kept_.fetch_add(1, std::memory_order_relaxed);
}

ChatPlanStats RenderPlanCache::stats() const {
  return {hits_.load(), probes_.load(), kept_.load()};
}

}  // namespace lathe
