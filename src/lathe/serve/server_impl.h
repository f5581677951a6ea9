// Internals of Server shared by server.cpp (setup, small routes) and completions.cpp (the two
// generation routes). Not part of the serve layer's interface.
#pragma once
#include <httplib.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lathe/data/pii.h"
#include "lathe/model/model.h"
#include "lathe/serve/adapter_registry.h"
#include "lathe/serve/feedback_store.h"
#include "lathe/serve/http_guard.h"
#include "lathe/serve/metrics.h"
#include "lathe/serve/openai_protocol.h"
#include "lathe/serve/rag.h"
#include "lathe/serve/scheduler.h"
#include "lathe/serve/server.h"
#include "lathe/chat/chat_template.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe::serve {

// The context length to serve: `requested` (--ctx; 0 = the model's max_position_embeddings) checked
// to be positive, within max_position_embeddings, and such that `max_concurrency` KV caches of that
// length fit in `available_bytes` (0 = unknown: not checked). An explicit --ctx that does not fit
// is an error naming the flag; the default is lowered to what fits in half of it, with `note` saying so.
int serve_context_length(int requested, int max_concurrency, const ModelConfig& c, size_t available_bytes,
                         std::string* note);
// KV cache bytes of one request of `tokens` positions (f32 keys and values, every layer).
size_t kv_cache_bytes(const ModelConfig& c, int64_t tokens);

struct Server::Impl {
  ServerOptions o;
  Model model;
  std::unique_ptr<Tokenizer> tok;
  std::optional<ChatTemplate> tmpl;
  ChatTemplateConfig tmpl_cfg;
  std::string tmpl_origin;            // "model", "chatml (fallback)", a file, ...
  std::vector<int32_t> stop_ids;      // EOS and end-of-turn tokens
  std::vector<std::string> chat_text_stops;  // end-of-turn markers that are not single tokens
  int ctx = 0;                        // served context length (validated against the model and memory)
  int64_t created = 0;
  std::unique_ptr<AdapterRegistry> adapters;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<FeedbackStore> store;
  std::optional<data::PiiDetector> pii;
  ServeRag rag;                       // --index: which models retrieve, the index and the prompt layout
  Metrics metrics;
  GuardedHttpServer http;
  std::atomic<int> open_generations{0};  // completion responses not yet fully written (see stop())

  explicit Impl(ServerOptions opts);
  void setup_routes();
  void add_completion_routes();

  // Writes an OpenAI-shaped error.
  void send_error(httplib::Response& res, const ApiError& e) const;
  // Checks "Authorization: Bearer KEY" against `key` (nothing to check when empty).
  bool authorized(const httplib::Request& req, const std::string& key) const;
  // The request/answer text as logged under --log-prompts.
  std::optional<std::string> loggable(const std::string& text) const;
};

}  // namespace lathe::serve
