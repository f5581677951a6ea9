#include "lathe/serve/serve_options.h"

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/model/model.h"

namespace lathe::serve {

const OptionTable<ServeCommandOptions>& serve_options_table() {
  using C = ServeCommandOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("serve");
    t.add("model", [](C& c) -> auto& { return c.server.model_path; }, "HF model directory or .gguf file (with its tokenizer)")
        .needed();
    t.add("weights", [](C& c) -> auto& { return c.server.weights; }, kWeightsOptionHelp).one_of(weight_format_choices());
    t.add("adapter", &C::adapters, "NAME=DIR: a PEFT adapter (LoRA or prefix) served as model NAME; repeatable");
    t.add("host", [](C& c) -> auto& { return c.server.host; }, "Address to listen on");
    t.add("port", [](C& c) -> auto& { return c.server.port; }, "Port (0 = any free port, printed at start)").range(0, 65535);
    t.add("api_key", [](C& c) -> auto& { return c.server.api_key; }, "Require Authorization: Bearer KEY on /v1/*");
    t.add("api_key_file", &C::api_key_file, "Read the API key from this file (first line)");
    t.add("admin_key", [](C& c) -> auto& { return c.server.admin_key; },
          "Key for POST/DELETE /v1/adapters (default: the API key)");
    t.add("served_model_name", [](C& c) -> auto& { return c.server.served_model_name; },
          "Name of the base model in the API (default: the directory name)");
    t.add("max_concurrency", [](C& c) -> auto& { return c.server.max_concurrency; }, "Requests generating at once").min(1);
    t.add("queue_size", [](C& c) -> auto& { return c.server.queue_size; }, "Requests waiting beyond those; more get HTTP 429")
        .min(0);
    t.add("ctx", [](C& c) -> auto& { return c.server.ctx; }, "Context length in tokens (0 = the model's max_position_embeddings)")
        .min(0);
    t.add("prefill_chunk", [](C& c) -> auto& { return c.server.prefill_chunk; }, "Prompt tokens per scheduler turn").min(1);
    t.add("data_dir", [](C& c) -> auto& { return c.server.data_dir; }, "Directory of the feedback database (feedback.sqlite)");
    t.add("log_prompts", [](C& c) -> auto& { return c.server.log_prompts; },
          "Store request messages and answers: on, off, or redact (PII replaced)")
        .one_of({"on", "off", "redact"});
    t.add("chat_template", [](C& c) -> auto& { return c.server.chat_template; },
          "Built-in template name (chatml, llama3, alpaca) or a .jinja file");
    t.add("batch_decode", [](C& c) -> auto& { return c.server.batch_decode; },
          "Decode all generating requests in one batched step (off: one step per request)");
    t.add("timeout", [](C& c) -> auto& { return c.server.timeout_s; }, "Per-request timeout in seconds, queueing included")
        .above(0);
    t.add("max_body_bytes", [](C& c) -> auto& { return c.server.max_body_bytes; },
          "Larger request bodies (chunked included) get HTTP 413")
        .min(1);
    t.add("max_connections_per_client", [](C& c) -> auto& { return c.server.max_connections_per_client; },
          "Open connections per client address; more are refused with 429 (0 = no cap)")
        .min(0);
    t.add("header_timeout", [](C& c) -> auto& { return c.server.header_timeout_s; },
          "Seconds within which a request's line and headers must all arrive (else 408, connection closed)")
        .above(0);
    t.add("threads", [](C& c) -> auto& { return c.server.threads; }, "Threads for kernels and BLAS (0 = all cores)").min(0);
    t.add("index", [](C& c) -> auto& { return c.server.index_dir; },
          "Retrieval index directory (lathe index build): chat completions retrieve passages before generating");
    t.add("rag_k", [](C& c) -> auto& { return c.server.rag_k; }, "Passages retrieved per chat completion (needs --index)")
        .range(1, 50);
    t.add("rag_template", [](C& c) -> auto& { return c.server.rag_template; },
          "RAG prompt template file with {context} and {question} (default: the built-in layout; needs --index)");
    t.add("rag_models", [](C& c) -> auto& { return c.server.rag_models; },
          "Models whose chat completions retrieve: all, none, or NAME,NAME (the base's name, adapter names)")
        .one_or_list()
        .repeatable_flag = false;  // one comma-separated value: --rag-models base,support
    return t;
  }();
  return table;
}

namespace {

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

ServerOptions finish_serve_options(const ServeCommandOptions& o) {
  serve_options_table().check(o);
  ServerOptions s = o.server;
  for (const std::string& a : o.adapters) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == a.size()) fail("serve", "--adapter '{}': expected NAME=DIR", a);
    s.adapters.emplace_back(a.substr(0, eq), a.substr(eq + 1));
  }
  if (!o.api_key_file.empty()) {
    if (!o.server.api_key.empty()) fail("serve", "--api-key and --api-key-file: give one of them");
    std::string k = read_file(o.api_key_file);
    s.api_key = trim(k.substr(0, k.find('\n')));
    if (s.api_key.empty()) fail("serve", "--api-key-file {}: the file is empty", o.api_key_file);
  }
  return s;
}

}  // namespace lathe::serve
