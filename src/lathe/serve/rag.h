// Retrieval for `lathe serve --index DIR`: which served models retrieve, and the pieces a chat
// completion with retrieval needs (the question, the response's "sources", the feedback log). The
// prompt itself is retrieval/rag_prompt.h's, the one layout shared with eval and training, so a model
// is served on the text it was judged and trained on. docs/serve.md, "Retrieval", describes it.
#pragma once
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/retrieval/index.h"
#include "lathe/retrieval/rag_prompt.h"
#include "lathe/serve/server.h"

namespace lathe::serve {

struct ServeRag {
  std::unique_ptr<retrieval::Index> index;  // null: the server has no --index
  retrieval::RagPrompt prompt;
  int k = 3;
  bool all = false;                 // --rag-models all
  std::set<std::string> models;     // else these names retrieve

  // Whether chat completions of model `name` retrieve when the request does not say.
  bool on_for(const std::string& name) const { return index && (all || models.count(name) > 0); }
};

// Opens the index and reads --rag-k, --rag-template and --rag-models. `base` is the base model's
// served name, `adapters` the names loaded at start. Throws "[serve] --flag: ..." for retrieval
// options without --index, a template without its placeholders, or "all"/"none" beside names; a
// name that is not served yet is kept (an adapter may be loaded under it at runtime) with a warning.
ServeRag make_serve_rag(const ServerOptions& o, const std::string& base, const std::vector<std::string>& adapters);

// The position of the last message with role "user" (the question to search for), or -1.
int last_user_message(const nlohmann::ordered_json& messages);

// The response's "sources": [{"index":1, "source":"docs/x.md:6", "score", "text", "file", "line"|"page"|"item",
// "id"}], numbered as the prompt cites them ([1], [2], ...).
nlohmann::json sources_json(const std::vector<retrieval::Hit>& hits);

// What the feedback store keeps of a retrieval (CompletionRecord::retrieval_json):
// {"message_index", "k", "sources":[{"index","source","score","id"}], "user_message"?}. user_message is
// the user turn as the model saw it (passages and question), absent when prompts are not logged.
std::string retrieval_log_json(int message_index, int k, const std::vector<retrieval::Hit>& hits,
                               const std::optional<std::string>& user_message);

}  // namespace lathe::serve
