#include "lathe/eval/decision.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace lathe::eval {

namespace {

using ojson = nlohmann::ordered_json;

struct Cost {
  double tokens = 0, latency = 0;
  bool operator<(const Cost& o) const { return tokens != o.tokens ? tokens < o.tokens : latency < o.latency; }
};

// Pass rate and cost of a variant over the cases selected by `in` (all cases, or one tag's).
struct Score {
  int cases = 0, passed = 0;
  Cost cost;
  double rate() const { return cases ? double(passed) / cases : 0.0; }
};

template <class Pred>
Score score_of(const EvalRun& run, const VariantResult& v, Pred in) {
  Score s;
  for (size_t i = 0; i < v.cases.size(); i++) {
    if (!in(run.suite.cases[i])) continue;
    s.cases++;
    s.passed += v.cases[i].pass;
    s.cost.tokens += v.cases[i].prompt_tokens + v.cases[i].new_tokens;
    s.cost.latency += v.cases[i].seconds;
  }
  if (s.cases) {
    s.cost.tokens /= s.cases;
    s.cost.latency /= s.cases;
  }
  return s;
}

template <class Pred>
ojson choose(const EvalRun& run, double gate, Pred in) {
  std::vector<std::pair<const VariantResult*, Score>> scored;
  double best = -1;
  for (auto& v : run.variants) {
    scored.emplace_back(&v, score_of(run, v, in));
    best = std::max(best, scored.back().second.rate());
  }
  const double need = gate >= 0 ? gate : best;
  const std::pair<const VariantResult*, Score>* pick = nullptr;
  ojson passing = ojson::array();
  for (auto& c : scored) {
    if (c.second.rate() + 1e-12 < need) continue;
    passing.push_back(c.first->name);
    if (!pick || c.second.cost < pick->second.cost) pick = &c;
  }
  ojson j;
  j["choice"] = pick ? ojson(pick->first->name) : ojson(nullptr);
  if (pick) {
    j["pass_rate"] = pick->second.rate();
    j["tokens_per_answer"] = pick->second.cost.tokens;
    j["latency_s"] = pick->second.cost.latency;
  } else {
    j["best_pass_rate"] = best;
  }
  j["passing"] = passing;
  return j;
}

}  // namespace

ojson feedback_rounds_json(const EvalRun& run) {
  auto find = [&](const std::string& name, const char* kind) -> const VariantResult* {
    for (auto& v : run.variants)
      if (v.name == name && v.kind == kind) return &v;
    return nullptr;
  };
  // The parent adapter of an adapter variant's name: the longest proper prefix ending before a '+'.
  auto parent_of = [&](const std::string& name) -> std::string {
    for (size_t at = name.rfind('+'); at != std::string::npos && at > 0; at = name.rfind('+', at - 1))
      if (find(name.substr(0, at), "adapter")) return name.substr(0, at);
    return "";
  };
  ojson rounds = ojson::array();
  for (auto& v : run.variants) {
    const VariantResult* parent = nullptr;
    if (v.kind == "adapter") {
      const std::string p = parent_of(v.name);
      if (!p.empty()) parent = find(p, "adapter");
    } else if (v.kind == "adapter+rag" && v.name.size() > 4) {
      const std::string p = parent_of(v.name.substr(0, v.name.size() - 4));
      if (!p.empty()) parent = find(p + "+rag", "adapter+rag");
    }
    if (!parent) continue;
    ojson fixed = ojson::array(), broken = ojson::array(), per_tag = ojson::object();
    for (size_t i = 0; i < run.suite.cases.size(); i++) {
      const bool was = parent->cases[i].pass, now = v.cases[i].pass;
      if (was == now) continue;
      const EvalCase& c = run.suite.cases[i];
      (now ? fixed : broken).push_back(c.id);
      for (auto& t : c.tags) {
        if (!per_tag.contains(t)) per_tag[t] = {{"fixed", ojson::array()}, {"broken", ojson::array()}};
        per_tag[t][now ? "fixed" : "broken"].push_back(c.id);
      }
    }
    rounds.push_back({{"variant", v.name},
                      {"parent", parent->name},
                      {"passed", v.passed},
                      {"parent_passed", parent->passed},
                      {"fixed", fixed},
                      {"broken", broken},
                      {"per_tag", per_tag}});
  }
  return rounds;
}

ojson decision_json(const EvalRun& run, const Gates& gates) {
  ojson d;
  const double gate = gates.min_pass_rate;
  d["gate"] = gate >= 0 ? ojson(gate) : ojson(nullptr);
  d["rule"] = gate >= 0 ? "the cheapest variant (tokens per answer, then latency) whose pass rate meets the gate"
                        : "no gate: the cheapest variant (tokens per answer, then latency) with the highest pass rate";
  d["overall"] = choose(run, gate, [](const EvalCase&) { return true; });
  std::map<std::string, int> tags;
  for (auto& c : run.suite.cases)
    for (auto& t : c.tags) tags[t]++;
  ojson per_tag = ojson::object();
  for (auto& [tag, n] : tags) {
    const std::string& t = tag;  // a lambda may not capture a structured binding (clang 14)
    ojson j = choose(run, gate, [&](const EvalCase& c) { return std::find(c.tags.begin(), c.tags.end(), t) != c.tags.end(); });
    j["cases"] = n;
    per_tag[t] = j;
  }
  d["per_tag"] = per_tag;

  const VariantResult *base = nullptr, *rag = nullptr;
  std::vector<const VariantResult*> tuned;
  for (auto& v : run.variants) {
    if (v.kind == "base") base = &v;
    if (v.kind == "rag") rag = &v;
    if (v.kind == "adapter") tuned.push_back(&v);
  }
  ojson only_rag = ojson::array(), only_tune = ojson::array();
  int both = 0, neither = 0, tune_only_misses = 0;
  if (base && rag) {
    for (size_t i = 0; i < run.suite.cases.size(); i++) {
      if (base->cases[i].pass) continue;
      bool by_rag = rag->cases[i].pass, by_tune = false;
      for (auto* t : tuned) by_tune = by_tune || t->cases[i].pass;
      const std::string& id = run.suite.cases[i].id;
      if (by_rag && !by_tune) only_rag.push_back(id);
      if (by_tune && !by_rag) {
        only_tune.push_back(id);
        tune_only_misses += i < run.retrieval.size() && run.retrieval[i].has_key && run.retrieval[i].hit_rank == 0;
      }
      both += by_rag && by_tune;
      bool any = false;
      for (auto& v : run.variants) any = any || v.cases[i].pass;
      neither += !any;
    }
  }
  d["only_retrieval_fixes"] = only_rag;
  d["only_tuning_fixes"] = only_tune;
  d["both_fix"] = both;
  d["still_failing"] = neither;
  std::string line;
  if (!rag) {
    line = "No retrieval index was given: only prompting and tuning were compared.";
  } else if (tuned.empty()) {
    line = fmt::format("Retrieval fixes {} case(s) the base model fails; no tuned adapter was evaluated.", only_rag.size());
  } else {
    line = fmt::format(
        "Retrieval alone fixes {} case(s) no tuned model answers: facts the documents hold that training did not "
        "teach. Tuning alone fixes {} case(s) retrieval does not ({} of them had no retrieved passage with the "
        "answer): what the model must know or say without looking it up. {} case(s) both fix; {} fail in every variant.",
        only_rag.size(), only_tune.size(), tune_only_misses, both, neither);
  }
  // What retrieval changes for each adapter: the cases NAME+rag passes and NAME fails, and the reverse.
  ojson with_tuned = ojson::array();
  for (auto* t : tuned) {
    const VariantResult* tr = nullptr;
    for (auto& v : run.variants)
      if (v.kind == "adapter+rag" && v.name == t->name + "+rag") tr = &v;
    if (!tr) continue;
    ojson fixes = ojson::array(), breaks = ojson::array();
    for (size_t i = 0; i < run.suite.cases.size(); i++) {
      if (tr->cases[i].pass && !t->cases[i].pass) fixes.push_back(run.suite.cases[i].id);
      if (!tr->cases[i].pass && t->cases[i].pass) breaks.push_back(run.suite.cases[i].id);
    }
    line += fmt::format(" Retrieval on top of {} fixes {} case(s) and breaks {}.", t->name, fixes.size(), breaks.size());
    with_tuned.push_back({{"adapter", t->name}, {"fixes", fixes}, {"breaks", breaks}});
  }
  d["retrieval_with_adapter"] = with_tuned;
  d["feedback_rounds"] = feedback_rounds_json(run);
  for (auto& r : d["feedback_rounds"])
    line += fmt::format(" {} fixes {} case(s) {} failed and breaks {} it passed ({} -> {} passed).",
                        r["variant"].get<std::string>(), r["fixed"].size(), r["parent"].get<std::string>(),
                        r["broken"].size(), r["parent_passed"].get<int>(), r["passed"].get<int>());
  d["summary"] = line;
  return d;
}

}  // namespace lathe::eval
