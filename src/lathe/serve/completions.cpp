// POST /v1/chat/completions and POST /v1/completions: parse, retrieve (chat, with --index), render
// the prompt, submit to the scheduler, then either wait for the whole answer or stream it as
// server-sent events.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

#include "lathe/core/error.h"
#include "lathe/serve/server_impl.h"

namespace lathe::serve {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One request in flight: its job and the text side of its output (detokenizing, stop strings).
struct Generation {
  Server::Impl& s;
  CompletionRequest req;
  std::string id;
  int64_t created = int64_t(std::time(nullptr));
  std::string adapter_name;
  std::shared_ptr<GenJob> job = std::make_shared<GenJob>();
  StreamDecoder dec;
  StopMatcher matcher;
  Clock::time_point t0;
  size_t seen = 0;          // job ids consumed
  int completion_tokens = 0;
  std::string text;         // answer shown so far
  bool finished = false, sent_role = false, recorded = false, timed_out = false, shut_down = false;
  std::string finish_reason, error;
  // Retrieval (rag.h): on for this request, the user message searched for, the passages put into
  // the prompt, and that message as the model saw it.
  bool rag = false;
  int rag_message = -1;
  std::vector<retrieval::Hit> hits;
  std::string rag_user_message;

  Generation(Server::Impl& s, CompletionRequest r, Clock::time_point t0)
      : s(s), req(std::move(r)), dec(*s.tok, true), matcher(req.stop), t0(t0) {
    s.open_generations++;
  }
  // The last owner is the handler (whole answers) or httplib's response (streams, once written).
  ~Generation() { s.open_generations--; }
  Generation(const Generation&) = delete;

  // Takes the ids generated since the last call (waiting up to `wait` for some) and returns the
  // text that became visible. Sets `finished` once the answer is complete.
  std::string pull(std::chrono::milliseconds wait) {
    if (finished) return "";
    job->wait_for(seen, wait);
    std::vector<int32_t> ids;
    bool done;
    std::string reason, err;
    {
      std::lock_guard<std::mutex> lock(job->mu);
      ids.assign(job->ids.begin() + long(seen), job->ids.end());
      seen = job->ids.size();
      done = job->done;
      reason = job->finish_reason;
      err = job->error;
    }
    std::string out;
    for (int32_t id : ids) {
      completion_tokens++;
      if (std::binary_search(s.stop_ids.begin(), s.stop_ids.end(), id)) break;  // the worker ends it too
      out += matcher.push(dec.push(id));
      if (matcher.stopped()) {
        job->cancel = true;  // a stop string ended it: free the slot now
        finished = true;
        finish_reason = "stop";
        break;
      }
    }
    if (!finished && done) {
      out += matcher.push(dec.flush());
      if (!matcher.stopped()) out += matcher.flush();
      finished = true;
      if (matcher.stopped() || reason == "stop") {
        finish_reason = "stop";
      } else if (reason == "length") {
        finish_reason = "length";
      } else {
        finish_reason = "error";
        timed_out = reason == "timeout";
        shut_down = reason == "cancelled";
        error = reason == "timeout" ? "the request ran past its timeout" : reason == "cancelled" ? "the server is shutting down" : err;
      }
    }
    text += out;
    return out;
  }

  json usage() const {
    int p = int(job->prompt.size());
    return {{"prompt_tokens", p}, {"completion_tokens", completion_tokens}, {"total_tokens", p + completion_tokens}};
  }

  // Stores the completion for feedback and counts it in the metrics (once).
  void record(int status) {
    if (recorded) return;
    recorded = true;
    auto now = Clock::now();
    s.metrics.request(req.chat ? "/v1/chat/completions" : "/v1/completions", status, seconds_between(t0, now));
    s.metrics.tokens(int(job->prompt.size()), completion_tokens);
    {
      std::lock_guard<std::mutex> lock(job->mu);
      if (!job->ids.empty()) s.metrics.time_to_first_token(seconds_between(job->submitted, job->first_token));
    }
    if (status != 200) return;
    CompletionRecord r;
    r.id = id;
    r.created = created;
    r.model = s.o.served_model_name;
    r.adapter = adapter_name;
    r.kind = req.chat ? "chat" : "text";
    if (s.o.log_prompts != "off") {
      if (req.chat) {
        json msgs = req.messages;
        for (auto& m : msgs) m["content"] = *s.loggable(m["content"].get<std::string>());
        r.request_json = msgs.dump(-1, ' ', false, json::error_handler_t::replace);
      } else {
        std::string p = req.prompt_ids.empty() ? req.prompt : s.tok->decode(req.prompt_ids);
        r.request_json = json(*s.loggable(p)).dump(-1, ' ', false, json::error_handler_t::replace);
      }
      r.answer = s.loggable(text);
    }
    r.prompt_tokens = int(job->prompt.size());
    r.completion_tokens = completion_tokens;
    r.latency_s = seconds_between(t0, now);
    r.finish_reason = finish_reason;
    if (rag) {
      std::optional<std::string> seen;
      if (!hits.empty()) seen = s.loggable(rag_user_message);
      r.retrieval_json = retrieval_log_json(rag_message, s.rag.k, hits, seen);
    }
    try {
      s.store->add_completion(r);
    } catch (const std::exception& e) {  // the answer is still good; feedback on it will be refused
      std::fprintf(stderr, "lathe serve: could not record completion %s: %s\n", id.c_str(), e.what());
    }
  }

  json chunk(const std::string& delta_text, const char* reason, bool role) const {
    json choice;
    if (req.chat) {
      json delta = json::object();
      if (role) delta["role"] = "assistant";
      if (role || !delta_text.empty()) delta["content"] = delta_text;
      choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}};
    } else {
      choice = {{"index", 0}, {"text", delta_text}, {"logprobs", nullptr}};
    }
    choice["finish_reason"] = reason ? json(reason) : json(nullptr);
    return {{"id", id}, {"object", req.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
            {"model", req.model}, {"choices", json::array({choice})}};
  }
};

std::string sse(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// Searches the index for the last user message of a chat request (rag.h) and returns the search's
// seconds (-1: no user message, nothing searched; the request is answered as is, "sources": []).
double retrieve(Server::Impl& s, Generation& g) {
  g.rag_message = last_user_message(g.req.messages);
  if (g.rag_message < 0) return -1;
  const std::string& question = g.req.messages[size_t(g.rag_message)]["content"].get_ref<const std::string&>();
  auto t = Clock::now();
  try {
    retrieval::SearchOptions so;
    so.k = s.rag.k;
    g.hits = s.rag.index->search(question, so);
  } catch (const Error& e) {  // the index is unreadable (removed, corrupt): the server's fault, not the request's
    s.metrics.retrieval_error();
    throw ApiError(500, "server_error", "retrieval_failed", "", fmt::format("retrieval failed: {}", e.what()));
  }
  return seconds_between(t, Clock::now());
}

// Parses, resolves the model, renders and checks the prompt, and submits the job.
std::shared_ptr<Generation> start_generation(Server::Impl& s, const std::string& body, bool chat, Clock::time_point t0) {
  auto g = std::make_shared<Generation>(s, parse_completion_request(body, chat), t0);
  CompletionRequest& r = g->req;
  g->id = new_completion_id(chat ? "chatcmpl-" : "cmpl-");
  GenJob& j = *g->job;
  if (r.model != s.o.served_model_name) {
    j.adapter = s.adapters->get(r.model);
    if (!j.adapter)
      throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                     fmt::format("the model '{}' does not exist (GET /v1/models lists them)", r.model));
    g->adapter_name = r.model;
  }
  const int P = j.adapter ? j.adapter->loaded.set()->prefix_len : 0;
  const int limit = s.ctx - P;
  if (chat) {
    // The request's "rag" wins over the model's setting (--rag-models, or the adapter's "rag").
    g->rag = r.rag.value_or(j.adapter ? j.adapter->rag : s.rag.on_for(s.o.served_model_name));
    if (g->rag && !s.rag.index) bad_request("rag", "this server has no retrieval index (start it with --index DIR)");
    double search_s = g->rag ? retrieve(s, *g) : -1;
    ChatRenderOptions ro;
    ro.add_generation_prompt = true;
    ro.bos_token = s.tmpl_cfg.bos_token;
    ro.eos_token = s.tmpl_cfg.eos_token;
    ro.turn_spans = false;
    auto render = [&](const nlohmann::ordered_json& messages) {
      std::string text;
      try {
        text = s.tmpl->render_text(messages, ro);
      } catch (const Error& e) {  // e.g. the template's own raise_exception("roles must alternate")
        bad_request("messages", "the chat template rejected the messages: {}", e.what());
      }
      return s.tok->encode(text, false);  // the template writes BOS itself, as HF's apply_chat_template
    };
    if (search_s < 0) {
      j.prompt = render(r.messages);
    } else {
      // The passages go into the searched user message; those that would not fit the context are
      // left out from the lowest-ranked up, so a long passage costs context rather than the request.
      // The answer's room: max_tokens when given, else a quarter of the context (at most 256 tokens),
      // so passages never leave an answer without room to be written.
      const int64_t answer_room = r.max_tokens ? *r.max_tokens : std::min(256, limit / 4);
      const size_t found = g->hits.size();
      nlohmann::ordered_json messages = r.messages;
      const std::string question = messages[size_t(g->rag_message)]["content"].get<std::string>();
      for (;;) {
        g->rag_user_message = retrieval::rag_user_message(question, g->hits, s.rag.prompt);
        messages[size_t(g->rag_message)]["content"] = g->rag_user_message;
        j.prompt = render(messages);
        if (g->hits.empty() || int64_t(j.prompt.size()) + answer_room <= limit) break;
        g->hits.pop_back();
      }
      s.metrics.retrieval(search_s, int(found), int(g->hits.size()));
    }
    for (const auto& m : s.chat_text_stops) r.stop.push_back(m);
    g->matcher = StopMatcher(r.stop);
  } else if (r.rag && *r.rag) {
    bad_request("rag", "retrieval applies to chat completions (/v1/chat/completions)");
  } else if (!r.prompt_ids.empty()) {
    for (int32_t id : r.prompt_ids)
      if (id < 0 || id >= s.model.config.vocab_size)
        bad_request("prompt", "token id {} is outside the vocabulary [0, {})", id, s.model.config.vocab_size);
    j.prompt = r.prompt_ids;
  } else {
    j.prompt = s.tok->encode(r.prompt, true);
  }
  if (j.prompt.empty()) bad_request(chat ? "messages" : "prompt", "the prompt is empty");
  if (int(j.prompt.size()) >= limit)
    throw ApiError(400, "invalid_request_error", "context_length_exceeded", chat ? "messages" : "prompt",
                   fmt::format("this model's maximum context length is {} tokens, but the prompt has {} tokens "
                               "(no room left to generate)", limit, j.prompt.size()));
  const int room = limit - int(j.prompt.size());
  // prompt + max_tokens must fit the context: the KV cache reserved for the request and the
  // generation's length are both bounded by it (OpenAI answers the same 400).
  if (r.max_tokens && *r.max_tokens > room)
    throw ApiError(400, "invalid_request_error", "context_length_exceeded", r.max_tokens_param,
                   fmt::format("this model's maximum context length is {} tokens; the prompt has {} tokens and {} "
                               "asks for {} more (at most {} fit)", limit, j.prompt.size(), r.max_tokens_param,
                               *r.max_tokens, room));
  // OpenAI's defaults: a chat answer may run to the end of the context, a text completion to 16 tokens.
  j.max_tokens = std::min(r.max_tokens.value_or(chat ? room : 16), room);
  j.sampling = r.sampling;
  if (!r.seed_given) j.sampling.seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  j.stop_ids = s.stop_ids;
  j.deadline = Clock::now() + std::chrono::microseconds(int64_t(s.o.timeout_s * 1e6));
  if (s.scheduler->stopped())
    throw ApiError(503, "server_error", "server_shutting_down", "", "the server is shutting down");
  if (!s.scheduler->submit(g->job)) {
    if (s.scheduler->stopped())
      throw ApiError(503, "server_error", "server_shutting_down", "", "the server is shutting down");
    throw ApiError(429, "requests", "rate_limit_exceeded", "",
                   fmt::format("the server is busy ({} requests generating, queue of {} full); retry later",
                               s.o.max_concurrency, s.o.queue_size));
  }
  return g;
}

void respond_whole(const std::shared_ptr<Generation>& g, httplib::Response& res) {
  while (!g->finished) g->pull(std::chrono::milliseconds(200));
  if (g->finish_reason == "error") {
    if (g->shut_down) throw ApiError(503, "server_error", "server_shutting_down", "", g->error);
    throw ApiError(g->timed_out ? 504 : 500, g->timed_out ? "timeout" : "server_error", "", "", g->error);
  }
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", g->finish_reason}};
  if (g->req.chat) choice["message"] = {{"role", "assistant"}, {"content", g->text}};
  else choice["text"] = g->text;
  json out = {{"id", g->id}, {"object", g->req.chat ? "chat.completion" : "text_completion"}, {"created", g->created},
              {"model", g->req.model}, {"choices", json::array({choice})}, {"usage", g->usage()}};
  if (g->rag) out["sources"] = sources_json(g->hits);  // lathe's extra field; OpenAI clients pass it through
  g->record(200);  // stored before the client sees the id, so feedback on it always finds it
  res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// One call of the chunked content provider: waits up to 100 ms for tokens and writes them as events.
// Returns false to end the response (client gone).
bool stream_step(Generation& g, httplib::DataSink& sink) {
  auto send = [&](const std::string& s) {
    if (sink.write(s.data(), s.size())) return true;
    g.job->cancel = true;  // the client went away: stop generating for it
    return false;
  };
  if (!g.sent_role) {
    g.sent_role = true;
    json first = g.chunk("", nullptr, g.req.chat);
    if (g.rag) first["sources"] = sources_json(g.hits);  // once, in the first chunk (with the role)
    if (!send(sse(first))) return false;
  }
  std::string piece = g.pull(std::chrono::milliseconds(100));
  if (!sink.is_writable()) {
    g.job->cancel = true;
    return false;
  }
  if (!piece.empty() && !send(sse(g.chunk(piece, nullptr, false)))) return false;
  if (!g.finished) return true;
  if (g.finish_reason == "error") {
    if (!send(sse(json::parse(error_body(500, "server_error", "", "", g.error))))) return false;
  } else {
    if (!send(sse(g.chunk("", g.finish_reason.c_str(), false)))) return false;
    if (g.req.include_usage) {
      json u = g.chunk("", nullptr, false);
      u["choices"] = json::array();
      u["usage"] = g.usage();
      if (!send(sse(u))) return false;
    }
  }
  if (!send("data: [DONE]\n\n")) return false;
  g.record(g.finish_reason == "error" ? 500 : 200);
  sink.done();
  return true;
}

void respond_stream(const std::shared_ptr<Generation>& g, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [g](size_t, httplib::DataSink& sink) {
        try {
          return stream_step(*g, sink);
        } catch (const std::exception& e) {  // never let an exception escape into httplib's writer
          std::fprintf(stderr, "lathe serve: stream %s: %s\n", g->id.c_str(), e.what());
          g->job->cancel = true;
          return false;
        }
      },
      [g](bool success) {
        if (!success) g->job->cancel = true;
        if (!g->recorded) g->record(499);  // nginx's "client closed request": counted, not stored
      });
}

}  // namespace

void Server::Impl::add_completion_routes() {
  for (bool chat : {true, false}) {
    const char* route = chat ? "/v1/chat/completions" : "/v1/completions";
    http.Post(route, [this, chat, route](const httplib::Request& req, httplib::Response& res) {
      auto t0 = Clock::now();
      try {
        auto g = start_generation(*this, req.body, chat, t0);
        if (g->req.stream) return respond_stream(g, res);
        respond_whole(g, res);
      } catch (const ApiError& e) {
        send_error(res, e);
        metrics.request(route, e.status, seconds_between(t0, Clock::now()));
      } catch (const Error& e) {  // a tokenizer or template failure on odd input: the request's fault
        send_error(res, ApiError(400, "invalid_request_error", "", "", e.what()));
        metrics.request(route, 400, seconds_between(t0, Clock::now()));
      }
    });
  }
}

}  // namespace lathe::serve
