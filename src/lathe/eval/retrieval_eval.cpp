#include "lathe/eval/retrieval_eval.h"

#include <chrono>

#include "lathe/eval/text_metrics.h"

namespace lathe::eval {

RetrievalKey retrieval_key(const EvalCase& c) {
  RetrievalKey k;
  k.source = c.source;
  for (const Assertion& a : c.asserts) {
    if (a.type == "contains" || a.type == "icontains") {
      std::string v = a.value.is_string() ? a.value.get<std::string>() : c.expected;
      if (v.empty()) continue;
      k.values.push_back(v);
      k.ignore_case = a.type == "icontains";
      break;
    }
    if (a.type == "contains-any" && a.value.is_array()) {
      for (auto& v : a.value)
        if (v.is_string() && !v.get<std::string>().empty()) k.values.push_back(v.get<std::string>());
      if (!k.values.empty()) break;
    }
  }
  return k;
}

int retrieval_hit_rank(const RetrievalKey& key, const std::vector<retrieval::Hit>& hits) {
  std::vector<std::string> values = key.values;
  if (key.ignore_case)
    for (auto& v : values) v = unicode_lower(v);
  for (size_t i = 0; i < hits.size(); i++) {
    const retrieval::Hit& h = hits[i];
    if (!key.source.empty() && h.file.size() >= key.source.size() &&
        h.file.compare(h.file.size() - key.source.size(), key.source.size(), key.source) == 0)
      return int(i) + 1;
    std::string text = key.ignore_case ? unicode_lower(h.text) : h.text;
    for (auto& v : values)
      if (text.find(v) != std::string::npos) return int(i) + 1;
  }
  return 0;
}

std::string retrieval_query(const EvalCase& c) {
  if (c.messages.is_null()) return c.prompt;
  for (size_t i = c.messages.size(); i-- > 0;)
    if (c.messages[i]["role"] == "user") return c.messages[i]["content"].get<std::string>();
  return "";
}

std::vector<CaseRetrieval> retrieve_cases(const retrieval::Index& index, const std::vector<EvalCase>& cases, int k) {
  std::vector<CaseRetrieval> out(cases.size());
  retrieval::SearchOptions so;
  so.k = k;
  for (size_t i = 0; i < cases.size(); i++) {
    auto t0 = std::chrono::steady_clock::now();
    CaseRetrieval& r = out[i];
    r.query = retrieval_query(cases[i]);
    r.hits = index.search(r.query, so);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    RetrievalKey key = retrieval_key(cases[i]);
    r.has_key = !key.empty();
    r.hit_rank = retrieval_hit_rank(key, r.hits);
  }
  return out;
}

std::vector<double> hit_at_k(const std::vector<CaseRetrieval>& r, int k) {
  std::vector<double> h(size_t(std::max(k, 0)), 0.0);
  int with_key = 0;
  for (auto& c : r) {
    if (!c.has_key) continue;
    with_key++;
    for (int j = 1; j <= k; j++) h[size_t(j - 1)] += c.hit_rank >= 1 && c.hit_rank <= j;
  }
  for (auto& x : h) x = with_key ? x / with_key : 0.0;
  return h;
}

}  // namespace lathe::eval
