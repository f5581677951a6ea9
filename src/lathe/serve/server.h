// lathe serve: an OpenAI-compatible HTTP server (cpp-httplib) over one base model and any number of
// adapters, with a feedback store. Routes: GET /health, GET /metrics, GET /v1/models,
// POST /v1/chat/completions, POST /v1/completions (both with stream: true as server-sent events),
// GET/POST /v1/adapters, DELETE /v1/adapters/NAME, POST /v1/feedback. With an index, chat
// completions retrieve passages first. docs/serve.md describes them.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lathe/serve/limits.h"

namespace lathe::serve {

struct ServerOptions {
  std::string model_path;
  std::string weights = "auto";    // --weights (model/model.h WeightFormat)
  std::string served_model_name;  // default: the model directory's name (a file's, without extension)
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0 = any free port (reported to on_listening)
  std::string api_key;             // required as "Authorization: Bearer KEY" on /v1/* when set
  std::string admin_key;           // for adapter loading/unloading; default: api_key
  std::vector<std::pair<std::string, std::string>> adapters;  // NAME, DIR loaded at start
  int max_concurrency = 4;         // requests generating at once
  int queue_size = 64;             // requests waiting beyond those (more: HTTP 429)
  int ctx = 0;                     // context length in tokens; 0 = the model's max_position_embeddings
  int prefill_chunk = 128;
  std::string data_dir = "lathe-data";  // feedback.sqlite lives here
  std::string log_prompts = "on";  // on | off | redact (PII replaced by [EMAIL], [PHONE], ...)
  std::string chat_template;       // built-in name or .jinja file; default: the model's own, else chatml
  double timeout_s = 300;          // per request, queueing included
  size_t max_body_bytes = 4u << 20;  // every framing, chunked included (413)
  int http_threads = 0;            // 0: enough for every admitted request, one client's connections and a few
  int max_connections_per_client = kDefaultMaxConnectionsPerClient;  // open connections per client address (429 beyond; 0 = no cap)
  double header_timeout_s = kDefaultHeaderTimeoutS;    // a request's line and headers must all arrive within this (408)
  bool batch_decode = true;        // one batched decode step for all generating requests
  int threads = 0;                 // kernel threads of the generation worker (0 = OpenMP's default)
  // Retrieval (docs/serve.md, "Retrieval"): chat completions of the models named in rag_models put
  // the top rag_k passages of the index into the last user message (retrieval/rag_prompt.h).
  std::string index_dir;           // empty: no retrieval
  int rag_k = 3;
  std::string rag_template;        // a template file; empty: the built-in layout
  std::vector<std::string> rag_models = {"all"};  // all | none | the names of the base and adapters
};

class Server {
 public:
  // Loads the model, tokenizer, chat template, adapters and the feedback store; throws lathe::Error.
  explicit Server(ServerOptions o);
  ~Server();
  // Binds and serves until stop() (from another thread or a signal handler thread); on_listening
  // gets the bound port once the socket is listening. Throws lathe::Error when it cannot bind.
  // Returns once every connection has ended.
  void run(const std::function<void(int port)>& on_listening = {});
  // Stops accepting, drops requests still arriving, and cancels every queued and generating request
  // at its next scheduler step (their clients get 503 / an error event), so run() returns promptly.
  void stop();
  const std::string& served_model_name() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lathe::serve
