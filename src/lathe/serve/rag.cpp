#include "lathe/serve/rag.h"

#include <algorithm>
#include <cstdio>

#include "lathe/core/error.h"

namespace lathe::serve {

ServeRag make_serve_rag(const ServerOptions& o, const std::string& base, const std::vector<std::string>& adapters) {
  ServeRag r;
  const ServerOptions defaults;
  if (o.index_dir.empty()) {
    // Retrieval settings without an index would silently do nothing: say so instead.
    if (o.rag_k != defaults.rag_k) fail("serve", "--rag-k {}: retrieval needs --index DIR", o.rag_k);
    if (!o.rag_template.empty()) fail("serve", "--rag-template {}: retrieval needs --index DIR", o.rag_template);
    if (o.rag_models != defaults.rag_models) fail("serve", "--rag-models: retrieval needs --index DIR");
    return r;
  }
  if (o.rag_k < 1 || o.rag_k > 50) fail("serve", "--rag-k must be in [1, 50], got {}", o.rag_k);
  r.k = o.rag_k;
  if (!o.rag_template.empty()) {
    try {
      r.prompt = retrieval::RagPrompt::from_file(o.rag_template);
    } catch (const Error& e) {
      fail("serve", "--rag-template: {}", e.what());
    }
  }
  const std::vector<std::string>& names = o.rag_models;
  if (names.empty()) fail("serve", "--rag-models: give all, none, or model names");
  for (const std::string& n : names) {
    if ((n == "all" || n == "none") && names.size() > 1)
      fail("serve", "--rag-models: '{}' stands alone (got {} values)", n, names.size());
    if (n == "all") r.all = true;
    else if (n != "none") {
      if (n.empty()) fail("serve", "--rag-models: an empty model name");
      if (n != base && std::find(adapters.begin(), adapters.end(), n) == adapters.end())
        std::fprintf(stderr,
                     "lathe serve: --rag-models names '%s', which is neither the base model ('%s') nor a loaded adapter; "
                     "an adapter loaded later under that name will retrieve\n",
                     n.c_str(), base.c_str());
      r.models.insert(n);
    }
  }
  try {
    r.index = std::make_unique<retrieval::Index>(o.index_dir);
  } catch (const Error& e) {
    fail("serve", "--index {}: {}", o.index_dir, e.what());
  }
  return r;
}

int last_user_message(const nlohmann::ordered_json& messages) {
  for (int i = int(messages.size()) - 1; i >= 0; i--)
    if (messages[size_t(i)].value("role", "") == "user") return i;
  return -1;
}

nlohmann::json sources_json(const std::vector<retrieval::Hit>& hits) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < hits.size(); i++) {
    nlohmann::json s = hits[i].to_json();
    s["index"] = i + 1;
    out.push_back(std::move(s));
  }
  return out;
}

std::string retrieval_log_json(int message_index, int k, const std::vector<retrieval::Hit>& hits,
                               const std::optional<std::string>& user_message) {
  nlohmann::ordered_json j;
  j["message_index"] = message_index;
  j["k"] = k;
  j["sources"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < hits.size(); i++)
    j["sources"].push_back({{"index", i + 1}, {"source", hits[i].source}, {"score", hits[i].score}, {"id", hits[i].id}});
  if (user_message) j["user_message"] = *user_message;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace lathe::serve
