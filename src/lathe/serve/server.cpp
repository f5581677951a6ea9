#include "lathe/serve/server.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <optional>
#include <thread>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/sys.h"
#include "lathe/serve/chat_stops.h"
#include "lathe/tokenizer/stop_tokens.h"
#include "lathe/serve/limits.h"
#include "lathe/serve/server_impl.h"

namespace lathe::serve {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double gib(double bytes) { return bytes / double(1ull << 30); }

}  // namespace

size_t kv_cache_bytes(const ModelConfig& c, int64_t tokens) {
  return size_t(2) * size_t(c.num_hidden_layers) * size_t(c.kv_dim()) * sizeof(float) * size_t(std::max<int64_t>(tokens, 0));
}

int serve_context_length(int requested, int max_concurrency, const ModelConfig& c, size_t available_bytes,
                         std::string* note) {
  if (note) note->clear();
  const int model_max = c.max_position_embeddings;
  if (model_max <= 0) fail("serve", "the model's max_position_embeddings is {}; pass --ctx N", model_max);
  if (requested < 0) fail("serve", "--ctx must be > 0 (or 0 for the model's max_position_embeddings {}), got {}", model_max, requested);
  if (requested > model_max)
    fail("serve", "--ctx {} exceeds the model's max_position_embeddings {}; positions beyond it were never trained",
         requested, model_max);
  const int conc = std::max(max_concurrency, 1);
  const size_t per_token = kv_cache_bytes(c, 1) * size_t(conc);
  if (requested > 0) {
    if (available_bytes > 0 && per_token * size_t(requested) > available_bytes)
      fail("serve", "--ctx {}: the KV caches of --max-concurrency {} requests at that context need {:.2f} GiB, more than "
           "the {:.2f} GiB of memory available; lower --ctx or --max-concurrency", requested, conc,
           gib(double(per_token) * requested), gib(double(available_bytes)));
    return requested;
  }
  // By default, leave half of the memory to everything else (activations, the OS, other processes).
  const size_t budget = available_bytes / 2;
  int ctx = model_max;
  if (available_bytes > 0 && per_token * size_t(ctx) > budget) {
    ctx = int(std::min<size_t>(budget / per_token, size_t(model_max)));
    if (ctx < 16)
      fail("serve", "the KV caches of --max-concurrency {} requests do not fit in half of the {:.2f} GiB of memory "
           "available even at 16 tokens; lower --max-concurrency or pass --ctx", conc, gib(double(available_bytes)));
    if (note)
      *note = fmt::format("context lowered to {} tokens (the model allows {}): --max-concurrency {} KV caches of the "
                          "full length would need {:.2f} GiB, more than half of the {:.2f} GiB available; set --ctx to choose",
                          ctx, model_max, conc, gib(double(per_token) * model_max), gib(double(available_bytes)));
  }
  return ctx;
}

namespace {

// Runs f on a thread of its own and waits for it, rethrowing what it threw. For the start-up work that
// opens OpenMP parallel regions (quantize on load, adapters): libgomp keeps a pool of helper threads
// for every thread that opened one, for that thread's lifetime, and once it manages more threads than
// there are cores it stops spinning between regions and sleeps on a futex instead. The pool of the main
// thread, idle after loading, made the scheduler's worker pay a futex wake-up per parallel region:
// `--weights q8_0` decoded at half of `lathe generate`'s speed at 2 threads on 2 cores. A thread that
// exits takes its pool with it, so only the worker's remains.
template <class F>
void on_own_thread(F&& f) {
  std::exception_ptr err;
  std::thread t([&] {
    try {
      f();
    } catch (...) {
      err = std::current_exception();
    }
  });
  t.join();
  if (err) std::rethrow_exception(err);
}

Model load_model(const std::string& path, WeightFormat weights) {
  std::optional<Model> m;
  on_own_thread([&] { m.emplace(Model::load(path, weights)); });
  return std::move(*m);
}

}  // namespace

Server::Impl::Impl(ServerOptions opts) : o(std::move(opts)), model(load_model(o.model_path, parse_weight_format(o.weights))) {
  // Request bodies (up to --max-body-bytes) are read on the HTTP pool's threads. glibc raises its mmap
  // threshold to the size of the first large block freed, after which such buffers come from
  // per-thread arenas that keep them: RSS would grow by a body's worth per arena (8 x cores of
  // them) and stay. A fixed threshold keeps large buffers mmapped, so they go back when freed.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  if (o.served_model_name.empty()) {
    std::filesystem::path p(o.model_path);
    // A directory's name, or a file's name without its extension (model.gguf -> "model").
    if (!p.has_filename()) p = p.parent_path();
    o.served_model_name = std::filesystem::is_regular_file(p) ? p.stem().string() : p.filename().string();
    if (o.served_model_name.empty()) o.served_model_name = "lathe";
  }
  if (o.admin_key.empty()) o.admin_key = o.api_key;
  if (o.log_prompts != "on" && o.log_prompts != "off" && o.log_prompts != "redact")
    fail("serve", "--log-prompts must be on, off or redact, got '{}'", o.log_prompts);
  if (o.log_prompts == "redact") pii.emplace();
  if (o.max_concurrency < 1) fail("serve", "--max-concurrency must be at least 1, got {}", o.max_concurrency);
  if (o.queue_size < 0) fail("serve", "--queue-size must be >= 0, got {}", o.queue_size);
  if (o.prefill_chunk < 1) fail("serve", "--prefill-chunk must be at least 1, got {}", o.prefill_chunk);
  if (o.max_body_bytes == 0) fail("serve", "--max-body-bytes must be > 0");
  if (!(o.timeout_s > 0)) fail("serve", "--timeout must be > 0 seconds, got {}", o.timeout_s);
  if (!(o.header_timeout_s > 0) || o.header_timeout_s > 3600)
    fail("serve", "--header-timeout must be in (0, 3600] seconds, got {}", o.header_timeout_s);
  if (o.max_connections_per_client < 0)
    fail("serve", "--max-connections-per-client must be >= 0 (0 = no cap), got {}", o.max_connections_per_client);
  tok = Tokenizer::load(o.model_path);
  std::string ctx_note;
  ctx = serve_context_length(o.ctx, o.max_concurrency, model.config, available_ram_bytes(), &ctx_note);
  if (!ctx_note.empty()) std::fprintf(stderr, "lathe serve: %s\n", ctx_note.c_str());
  created = int64_t(std::time(nullptr));

  // Chat template: --chat-template, else the model's own, else chatml (what `lathe train` uses for a
  // model without one, so a model tuned here is served with the format it learned).
  try {
    tmpl_cfg = chat_template_config_load(o.model_path);
  } catch (const Error&) {
    tmpl_cfg = {};
  }
  if (tmpl_cfg.bos_token.empty()) tmpl_cfg.bos_token = tok->bos_token();
  if (tmpl_cfg.eos_token.empty()) tmpl_cfg.eos_token = tok->eos_token();
  if (!o.chat_template.empty()) {
    auto names = ChatTemplate::builtin_names();
    if (std::find(names.begin(), names.end(), o.chat_template) != names.end()) {
      tmpl = ChatTemplate::builtin(o.chat_template);
    } else {
      tmpl = ChatTemplate::parse(read_file(o.chat_template));
    }
    tmpl_origin = o.chat_template;
  } else if (!tmpl_cfg.source.empty()) {
    tmpl = ChatTemplate::parse(tmpl_cfg.source);
    tmpl_origin = "the model's";
  } else {
    tmpl = ChatTemplate::builtin("chatml");
    tmpl_origin = "chatml (the model has none)";
  }

  // The family's end of a turn: what its generation_config/config declare (Gemma 3's [1, 106]) and
  // the template's end-of-turn marker (a directory without generation_config still stops there).
  std::vector<int32_t> declared = declared_eos_ids(o.model_path);
  if (model.config.eos_token_id >= 0) declared.push_back(model.config.eos_token_id);
  ChatStops stops = chat_stops(*tok, tmpl->source(), declared);
  stop_ids = stops.ids;
  chat_text_stops = stops.texts;

  std::vector<std::string> adapter_names;
  for (auto& [name, dir] : o.adapters) adapter_names.push_back(name);
  rag = make_serve_rag(o, o.served_model_name, adapter_names);
  adapters = std::make_unique<AdapterRegistry>(model);
  on_own_thread([&] {  // QLoRA adapters quantize their base to NF4 in parallel regions
    for (auto& [name, dir] : o.adapters) {
      if (name == o.served_model_name) fail("serve", "adapter name '{}' is the base model's name", name);
      adapters->load(name, dir, rag.on_for(name));
    }
  });
  store = std::make_unique<FeedbackStore>(o.data_dir);
  SchedulerOptions so{o.max_concurrency, o.queue_size, o.prefill_chunk, o.threads};
  so.batch_decode = o.batch_decode;
  scheduler = std::make_unique<Scheduler>(model, so);
  setup_routes();
}

void Server::Impl::send_error(httplib::Response& res, const ApiError& e) const {
  res.status = e.status;
  res.set_content(error_body(e), "application/json");
}

bool Server::Impl::authorized(const httplib::Request& req, const std::string& key) const {
  if (key.empty()) return true;
  std::string h = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (h.size() != prefix.size() + key.size() || h.compare(0, prefix.size(), prefix) != 0) return false;
  // Constant-time compare: the time taken does not tell how much of a guessed key was right.
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); i++) diff |= static_cast<unsigned char>(h[prefix.size() + i] ^ key[i]);
  return diff == 0;
}

std::optional<std::string> Server::Impl::loggable(const std::string& text) const {
  if (o.log_prompts == "off") return std::nullopt;
  if (o.log_prompts == "redact") return data::redact(text, pii->detect(text));
  return text;
}

void Server::Impl::setup_routes() {
  http.set_payload_max_length(o.max_body_bytes);  // Content-Length bodies; the guard covers every framing
  HttpGuardOptions g;
  g.max_body_bytes = o.max_body_bytes;
  g.header_timeout_s = o.header_timeout_s;
  g.max_connections_per_client = o.max_connections_per_client;
  http.set_guard_options(g);
  http.set_read_timeout(time_t(kReadIdleTimeoutS));
  http.set_write_timeout(time_t(kWriteTimeoutS));
  // The guard's connection loop enforces these; httplib only advertises them (Keep-Alive header).
  http.set_keep_alive_max_count(size_t(kKeepAliveMaxRequests));
  http.set_keep_alive_timeout(time_t(kKeepAliveIdleS));
  // Streams write one small event per token; without TCP_NODELAY, Nagle holds each one back until
  // the previous is acknowledged, and delayed ACKs make that ~40 ms.
  http.set_tcp_nodelay(true);
  // One thread per open connection: every admitted request (generating or queued) may hold one, one
  // client may hold up to its connection cap (slow ones for at most the header timeout), and a few
  // more keep /health and short requests answered meanwhile.
  int per_client = o.max_connections_per_client > 0 ? o.max_connections_per_client : 32;
  int threads = o.http_threads > 0 ? o.http_threads : std::min(o.max_concurrency + o.queue_size + per_client + 16, 1024);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };

  // Every /v1 route needs the API key when one is set; /health and /metrics stay open for probes.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/v1/", 0) == 0 && !authorized(req, o.api_key) && !authorized(req, o.admin_key)) {
      send_error(res, ApiError(401, "invalid_request_error", "invalid_api_key", "",
                               "missing or wrong API key (send Authorization: Bearer KEY)"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors httplib produces itself (413 body too large, 404 no route, 400 bad request line) and
  // the caps the connection guard enforced get OpenAI's shape too.
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    HttpViolation v = GuardedHttpServer::current_violation();
    if (v != HttpViolation::None) {
      res.body.clear();
      res.set_header("Connection", "close");  // the rest of the request is not read
    }
    if (!res.body.empty()) return;
    std::string msg, code;
    switch (v) {
      case HttpViolation::BodyTooLarge:
        res.status = 413;
        break;
      case HttpViolation::HeaderTooLarge:
        res.status = 431;
        code = "header_too_large";
        msg = fmt::format("the request line and headers are too large (limit {} bytes, {} header lines)", kMaxHeaderBytes,
                          kMaxHeaderCount);
        break;
      case HttpViolation::HeaderTimeout:
      case HttpViolation::BodyTimeout:
        res.status = 408;
        code = "request_timeout";
        msg = v == HttpViolation::HeaderTimeout
                  ? fmt::format("the request headers did not arrive within {} s", o.header_timeout_s)
                  : fmt::format("the request body did not arrive within {} s", kBodyTimeoutS);
        break;
      case HttpViolation::BadChunk:
        res.status = 400;
        code = "bad_chunked_body";
        msg = fmt::format("malformed chunked body (a chunk-size line over {} bytes or without a hex size)", kMaxChunkLineBytes);
        break;
      case HttpViolation::None:
        break;
    }
    if (msg.empty())
      msg = res.status == 413   ? fmt::format("the request body is too large (limit {} bytes, --max-body-bytes; form-encoded bodies: 8192 bytes, send Content-Type: application/json)", o.max_body_bytes)
            : res.status == 404 ? fmt::format("no route {} {}", req.method, req.path)
                                : fmt::format("HTTP {}", res.status);
    if (res.status == 413) code = "body_too_large";
    std::string type = res.status >= 500 ? "server_error" : "invalid_request_error";
    res.set_content(error_body(res.status, type, code, "", msg), "application/json");
  });
  http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {  // reported, not swallowed: the client gets a 500 and the operator a log line
      msg = "internal error: an exception that is not a std::exception";
      std::fprintf(stderr, "lathe serve: %s on %s %s\n", msg.c_str(), req.method.c_str(), req.path.c_str());
    }
    send_error(res, ApiError(500, "server_error", "", "", msg));
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"status", "ok"}, {"model", o.served_model_name}}.dump(), "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(scheduler->queue_depth(), scheduler->active(), scheduler->steps(), current_rss_bytes()),
                    "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    data.push_back({{"id", o.served_model_name}, {"object", "model"}, {"created", created}, {"owned_by", "lathe"},
                    {"root", o.served_model_name}, {"parent", nullptr}, {"max_model_len", ctx}});
    if (rag.index) data.back()["rag"] = rag.on_for(o.served_model_name);
    for (auto& a : adapters->list()) {
      data.push_back({{"id", a->name}, {"object", "model"}, {"created", a->created}, {"owned_by", "lathe"},
                      {"root", a->dir}, {"parent", o.served_model_name}, {"adapter_type", a->loaded.peft_type},
                      {"max_model_len", ctx}});
      if (rag.index) data.back()["rag"] = a->rag;
    }
    res.set_content(json{{"object", "list"}, {"data", data}}.dump(), "application/json");
  });
  http.Get("/v1/adapters", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (auto& a : adapters->list()) {
      data.push_back({{"name", a->name}, {"path", a->dir}, {"adapter_type", a->loaded.peft_type}, {"created", a->created}});
      if (rag.index) data.back()["rag"] = a->rag;
    }
    res.set_content(json{{"object", "list"}, {"data", data}}.dump(), "application/json");
  });
  http.Post("/v1/adapters", [this](const httplib::Request& req, httplib::Response& res) {
    auto t0 = Clock::now();
    try {
      if (!authorized(req, o.admin_key))
        throw ApiError(401, "invalid_request_error", "invalid_api_key", "", "loading adapters needs the admin key");
      json body = parse_json_object(req.body);
      if (!body.contains("name") || !body["name"].is_string()) bad_request("name", "'name' (a string) is required");
      if (!body.contains("path") || !body["path"].is_string()) bad_request("path", "'path' (an adapter directory) is required");
      std::string name = body["name"].get<std::string>();
      if (name == o.served_model_name) bad_request("name", "'{}' is the base model's name", name);
      if (adapters->get(name))
        throw ApiError(409, "invalid_request_error", "adapter_exists", "name", fmt::format("adapter '{}' is already loaded", name));
      // "rag": whether its chat completions retrieve; default: --rag-models (all, or naming it).
      bool with_rag = rag.on_for(name);
      if (body.contains("rag") && !body["rag"].is_null()) {
        if (!body["rag"].is_boolean()) bad_request("rag", "'rag' must be a boolean");
        with_rag = body["rag"].get<bool>();
        if (with_rag && !rag.index) bad_request("rag", "this server has no retrieval index (start it with --index DIR)");
      }
      std::shared_ptr<const ServedAdapter> a;
      try {
        // Not on this HTTP thread: it would keep an OpenMP pool for its lifetime (on_own_thread).
        const std::string path = body["path"].get<std::string>();
        on_own_thread([&] { a = adapters->load(name, path, with_rag); });
      } catch (const Error& e) {
        bad_request("path", "{}", e.what());
      }
      json out{{"id", a->name}, {"object", "model"}, {"parent", o.served_model_name}, {"adapter_type", a->loaded.peft_type}};
      if (rag.index) out["rag"] = a->rag;
      res.set_content(out.dump(), "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    }
    metrics.request("/v1/adapters", res.status, seconds_since(t0));
  });
  http.Delete(R"(/v1/adapters/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1];
    if (!authorized(req, o.admin_key))
      return send_error(res, ApiError(401, "invalid_request_error", "invalid_api_key", "", "unloading adapters needs the admin key"));
    if (!adapters->unload(name))
      return send_error(res, ApiError(404, "invalid_request_error", "model_not_found", "name",
                                      fmt::format("no adapter '{}' is loaded", name)));
    res.set_content(json{{"id", name}, {"object", "model"}, {"deleted", true}}.dump(), "application/json");
  });
  http.Post("/v1/feedback", [this](const httplib::Request& req, httplib::Response& res) {
    auto t0 = Clock::now();
    try {
      FeedbackRecord f = parse_feedback_request(req.body);
      if (pii)
        for (auto* v : {&f.correction, &f.comment})
          if (*v) *v = data::redact(**v, pii->detect(**v));
      f.created = int64_t(std::time(nullptr));
      if (!store->has_completion(f.completion_id))
        throw ApiError(404, "invalid_request_error", "completion_not_found", "completion_id",
                       fmt::format("no completion '{}' is recorded here", f.completion_id));
      int64_t id = store->add_feedback(f);  // committed and synced before we answer
      res.set_content(json{{"id", id}, {"object", "feedback"}, {"completion_id", f.completion_id}, {"stored", true}}.dump(),
                      "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, ApiError(500, "server_error", "", "", e.what()));
    }
    metrics.request("/v1/feedback", res.status, seconds_since(t0));
  });
  add_completion_routes();
}

Server::Server(ServerOptions o) : impl_(std::make_unique<Impl>(std::move(o))) {}
Server::~Server() = default;

const std::string& Server::served_model_name() const { return impl_->o.served_model_name; }

void Server::run(const std::function<void(int)>& on_listening) {
  Impl& s = *impl_;
  int port = s.o.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.o.host);
    if (port < 0) fail("serve", "cannot bind {} (any port)", s.o.host);
  } else if (!s.http.bind_to_port(s.o.host, port)) {
    fail("serve", "cannot bind {}:{} (in use, or not an address of this machine)", s.o.host, port);
  }
  std::fprintf(stderr, "lathe serve: model '%s' (%s), chat template %s, context %d, %zu adapter(s), data %s\n",
               s.o.served_model_name.c_str(), s.o.model_path.c_str(), s.tmpl_origin.c_str(), s.ctx,
               s.adapters->list().size(), FeedbackStore::db_path(s.o.data_dir).c_str());
  if (s.rag.index) {
    std::string who = s.rag.all ? "all models" : s.rag.models.empty() ? "no model unless a request asks" : "";
    for (const std::string& n : s.rag.models) who += (who.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "lathe serve: retrieval from %s (%zu passages), k %d, prompt %s, for %s\n", s.o.index_dir.c_str(),
                 s.rag.index->passages(), s.rag.k, s.o.rag_template.empty() ? "built-in" : s.o.rag_template.c_str(),
                 who.c_str());
  }
  if (on_listening) on_listening(port);
  s.http.listen_after_bind();
}

void Server::stop() {
  Impl& s = *impl_;
  s.http.begin_shutdown();  // idle connections and requests still arriving end now; new ones are closed
  s.scheduler->shutdown();  // queued and generating requests are cancelled at their next step
  // Let the cancelled answers be written (503, or a stream's error event and [DONE]) before httplib
  // stops: once its listener is closed it cuts streams short without their end.
  auto until = Clock::now() + std::chrono::milliseconds(int64_t(kStreamDrainS * 1000));
  while (s.open_generations.load() > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.http.stop();            // no new connections; run() returns once the open ones end
}

}  // namespace lathe::serve
