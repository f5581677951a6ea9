#include "lathe/ui/ui_server.h"

#include <unistd.h>

#include <filesystem>
#include <ctime>
#include <map>
#include <set>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/eval/report.h"
#include "lathe/project/project_config.h"
#include "lathe/project/run_registry.h"
#include "lathe/project/stage_runner.h"
#include "lathe/serve/feedback_store.h"
#include "lathe/serve/http_guard.h"
#include "lathe/serve/limits.h"
#include "lathe/ui/ui_assets.h"
#include "lathe/ui/ui_audit.h"
#include "lathe/ui/ui_playground.h"
#include "lathe/ui/ui_review.h"
#include "lathe/ui/ui_runner.h"
#include "lathe/ui/ui_session.h"

namespace lathe::ui {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr const char* kCookie = "lathe_ui_session";

// Thrown by handlers for a request the page (or someone else) got wrong: status + message.
struct HttpError {
  int status;
  std::string message;
};

// JSON with '<', '>' and '&' as \u escapes: the text a record holds can never be read as markup, even
// by a browser that sniffs a JSON answer as HTML.
std::string safe_json(const json& j) {
  const std::string s = j.dump();
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

void send(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(safe_json(j), "application/json; charset=utf-8");
}

json body_json(const httplib::Request& req) {
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw HttpError{400, "the request body must be a JSON object"};
  return j;
}

// "a.b.c" -> value, to compare two runs' configs key by key.
void flatten(const ordered_json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j.dump();
  }
}

json run_json(const project::RunRecord& r) {
  json st = json::array();
  for (auto& s : r.stages)
    st.push_back({{"stage", s.stage}, {"status", s.status}, {"seconds", s.seconds}, {"exit_code", s.exit_code}});
  json pass = json::object();
  if (r.metrics.is_object())
    for (auto it = r.metrics.begin(); it != r.metrics.end(); ++it)
      if (it.value().is_object() && it.value().contains("pass_rate")) pass[it.key()] = it.value()["pass_rate"];
  return {{"id", r.id},           {"started_at", r.started_at}, {"finished_at", r.finished_at}, {"verdict", r.verdict},
          {"data_hash", r.data_hash}, {"pass_rates", pass},      {"stages", st},
          {"gate", r.metrics.is_object() && r.metrics.contains("gate") ? json(r.metrics["gate"]) : json(nullptr)}};
}

std::string self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("lathe") : p.string();
}

}  // namespace

struct UiServer::Impl {
  UiOptions o;
  project::ProjectConfig cfg;
  project::ProjectPaths p;
  std::string data_dir;
  SessionStore sessions;
  std::unique_ptr<AuditLog> audit;
  RunProcess runner;
  std::unique_ptr<Playground> playground;
  std::mutex review_mu;  // one writer of the review files at a time
  std::mutex feedback_mu;
  std::unique_ptr<serve::FeedbackStore> feedback;
  serve::GuardedHttpServer http;
  bool loopback = true;
  int port = 0;

  explicit Impl(UiOptions opts);
  void routes();
  std::optional<Session> session_of(const httplib::Request& req) {
    return sessions.get(cookie_value(req.get_header_value("Cookie"), kCookie));
  }
  std::string reviewer(const httplib::Request& req) {
    auto s = session_of(req);
    if (!s) throw HttpError{401, "log in first"};
    return s->reviewer;
  }
  serve::FeedbackStore& store() {
    std::lock_guard<std::mutex> lock(feedback_mu);
    if (!feedback) feedback = std::make_unique<serve::FeedbackStore>(data_dir);
    return *feedback;
  }
  // Wraps a handler: HttpError and lathe::Error become JSON errors (a malformed request is 400).
  template <class F>
  httplib::Server::Handler api(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const HttpError& e) {
        send(res, {{"error", e.message}}, e.status);
      } catch (const Error& e) {
        send(res, {{"error", e.what()}}, 400);
      }
    };
  }
};

UiServer::Impl::Impl(UiOptions opts) : o(std::move(opts)), sessions(o.session_ttl_s) {
  std::string file = o.config.empty() ? "project.yaml" : fs::is_directory(o.config) ? o.config + "/project.yaml" : o.config;
  cfg = project::load_project(file);
  p = project::project_paths(cfg);
  loopback = is_loopback_host(o.host);
  if (!loopback && o.token.empty())
    fail("ui", "--host {} is not a loopback address: give --token T (or LATHE_UI_TOKEN) so only people with it can log in",
         o.host);
  if (!o.data_dir.empty()) data_dir = o.data_dir;
  else if (cfg.has("serve") && cfg.root["serve"]["data_dir"]) data_dir = cfg.resolve(cfg.root["serve"]["data_dir"].as<std::string>());
  else data_dir = cfg.dir + "/lathe-data";
  if (o.exe.empty()) o.exe = self_exe();
  fs::create_directories(p.state_dir);
  audit = std::make_unique<AuditLog>(p.state_dir + "/ui_audit.sqlite");
  PlaygroundSetup ps;
  ps.model = p.base_model;
  if (fs::exists(p.train + "/adapter_config.json")) ps.adapters.emplace_back("tuned", p.train);
  if (cfg.has("align") && fs::exists(p.align + "/adapter_config.json"))
    ps.adapters.emplace_back("tuned-" + cfg.root["align"]["method"].Scalar(), p.align);  // serve's names have no '+'
  if (fs::exists(p.index + "/index.sqlite")) ps.index_dir = p.index;
  ps.data_dir = data_dir;
  ps.threads = o.threads;
  playground = std::make_unique<Playground>(ps);
  routes();
}

void UiServer::Impl::routes() {
  http.set_payload_max_length(4u << 20);
  serve::HttpGuardOptions g;
  g.max_body_bytes = 4u << 20;
  http.set_guard_options(g);
  http.set_read_timeout(time_t(serve::kReadIdleTimeoutS));
  http.set_write_timeout(time_t(serve::kWriteTimeoutS));
  http.set_keep_alive_max_count(size_t(serve::kKeepAliveMaxRequests));
  http.set_keep_alive_timeout(time_t(serve::kKeepAliveIdleS));
  http.set_tcp_nodelay(true);  // streamed tokens and progress lines go out at once
  http.new_task_queue = [] { return new httplib::ThreadPool(64); };
  // Every answer: no framing, no sniffing, scripts and styles only from this server.
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                            {"X-Frame-Options", "DENY"},
                            {"Referrer-Policy", "no-referrer"},
                            {"Cache-Control", "no-store"},
                            {"Content-Security-Policy",
                             "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                             "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"}});

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // On loopback, a page from another site could reach us through a DNS name rebound to 127.0.0.1:
    // its requests carry that name in Host, so only loopback names are served.
    if (loopback) {
      std::string host = req.get_header_value("Host");
      const size_t colon = host.rfind(':');
      if (colon != std::string::npos && host.find(']') == std::string::npos) host = host.substr(0, colon);
      else if (host.rfind("[::1]", 0) == 0) host = "[::1]";
      if (!is_loopback_host(host)) {
        send(res, {{"error", "this workbench answers only to loopback host names"}}, 403);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (req.path.rfind("/api/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (req.path == "/api/login" || req.path == "/api/session") {
      // A form on another site can post only form encodings without asking; a JSON body needs a
      // preflight this server never grants, so login cannot be forged either.
      if (req.method == "POST" && req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
        send(res, {{"error", "send the login as application/json"}}, 415);
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    }
    auto s = session_of(req);
    if (!s) {
      send(res, {{"error", "log in first (the session is missing or expired)"}}, 401);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD" &&
        !constant_time_equal(req.get_header_value("X-CSRF-Token"), s->csrf)) {
      send(res, {{"error", "missing or wrong X-CSRF-Token"}}, 403);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    send(res, {{"error", res.status == 404 ? "no route " + req.method + " " + req.path : "HTTP " + std::to_string(res.status)}},
         res.status);
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {
    }
    send(res, {{"error", msg}}, 500);
  });

  // Pages, styles and scripts from the binary.
  auto asset = [](const std::string& name, httplib::Response& res) {
    const Asset* a = find_asset(name);
    if (!a) return send(res, {{"error", "no asset " + name}}, 404);
    res.set_content(std::string(a->bytes), asset_content_type(name));
  };
  http.Get("/", [asset](const httplib::Request&, httplib::Response& res) { asset("index.html", res); });
  http.Get(R"(/assets/([A-Za-z0-9_.-]+))", [asset](const httplib::Request& req, httplib::Response& res) {
    asset(req.matches[1], res);
  });

  // Login and session.
  http.Get("/api/session", api([this](const httplib::Request& req, httplib::Response& res) {
    auto s = session_of(req);
    if (!s) return send(res, {{"error", "not logged in"}, {"token_required", !o.token.empty()}}, 401);
    send(res, {{"reviewer", s->reviewer}, {"csrf", s->csrf}, {"token_required", !o.token.empty()}, {"project", cfg.name}});
  }));
  http.Post("/api/login", api([this](const httplib::Request& req, httplib::Response& res) {
    json b = body_json(req);
    const std::string who = b.value("reviewer", "");
    if (who.empty() || who.size() > 64) throw HttpError{400, "give your name (1 to 64 bytes): it is recorded with your decisions"};
    if (!o.token.empty() && !(b.contains("token") && b["token"].is_string() && constant_time_equal(b["token"], o.token))) {
      audit->add(who, "login.refused", "", {{"remote", req.remote_addr}});
      throw HttpError{401, "wrong token"};
    }
    Session s = sessions.create(who);
    res.set_header("Set-Cookie", std::string(kCookie) + "=" + s.id + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                     std::to_string(int64_t(sessions.ttl_s())));
    audit->add(who, "login", "", {{"remote", req.remote_addr}});
    send(res, {{"reviewer", who}, {"csrf", s.csrf}, {"expires_in", sessions.ttl_s()}, {"project", cfg.name}});
  }));
  http.Post("/api/logout", api([this](const httplib::Request& req, httplib::Response& res) {
    sessions.remove(cookie_value(req.get_header_value("Cookie"), kCookie));
    res.set_header("Set-Cookie", std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    send(res, {{"ok", true}});
  }));

  // Runs.
  http.Get("/api/project", api([this](const httplib::Request&, httplib::Response& res) {
    send(res, {{"name", cfg.name}, {"path", cfg.path}, {"output_dir", cfg.output_dir}, {"data_dir", data_dir},
               {"goal", cfg.section_json("goal")}});
  }));
  http.Get("/api/runs", api([this](const httplib::Request&, httplib::Response& res) {
    project::RunRegistry reg(p.registry);
    json runs = json::array();
    for (auto& r : reg.list(100)) runs.push_back(run_json(r));
    json curves = json::object();
    curves["tuned"] = eval::read_training_curve(p.train + "/metrics.jsonl");
    if (cfg.has("align")) curves["tuned+" + cfg.root["align"]["method"].Scalar()] = eval::read_training_curve(p.align + "/metrics.jsonl");
    const json cmp = cfg.has("compare") ? json(cfg.section_json("compare")) : json();
    if (cmp.is_object())  // the compare: entries (docs/project.md), each under its variant name
      for (auto it = cmp.begin(); it != cmp.end(); ++it)
        curves[it.key()] = eval::read_training_curve(p.compare + "/" + it.key() + "/metrics.jsonl");
    send(res, {{"runs", runs}, {"curves", curves}, {"process", runner.status()}});
  }));
  http.Get("/api/runs/compare", api([this](const httplib::Request& req, httplib::Response& res) {
    project::RunRegistry reg(p.registry);
    auto id = [&](const char* k) -> int64_t {
      try {
        return std::stoll(req.get_param_value(k));
      } catch (...) {
        throw HttpError{400, std::string("'") + k + "' must be a run id"};
      }
    };
    auto a = reg.get(id("a")), b = reg.get(id("b"));
    if (!a || !b) throw HttpError{404, "no such run"};
    std::map<std::string, std::string> fa, fb;
    flatten(a->config, "", fa);
    flatten(b->config, "", fb);
    json diff = json::array();
    for (auto& [k, v] : fb)
      if (!fa.count(k) || fa[k] != v) diff.push_back({{"key", k}, {"a", fa.count(k) ? json(fa[k]) : json(nullptr)}, {"b", v}});
    for (auto& [k, v] : fa)
      if (!fb.count(k)) diff.push_back({{"key", k}, {"a", v}, {"b", nullptr}});
    // Cases fixed (failed in a, passed in b) and broken, per variant both runs evaluated.
    json cases = json::object();
    auto passed = [](const project::RunRecord& r) {
      return r.metrics.is_object() && r.metrics.contains("cases_passed") ? json(r.metrics["cases_passed"]) : json::object();
    };
    json pa = passed(*a), pb = passed(*b);
    for (auto it = pb.begin(); it != pb.end(); ++it) {
      if (!pa.contains(it.key())) continue;
      std::set<std::string> sa(pa[it.key()].begin(), pa[it.key()].end()), sb(it.value().begin(), it.value().end());
      json fixed = json::array(), broken = json::array();
      for (auto& c : sb)
        if (!sa.count(c)) fixed.push_back(c);
      for (auto& c : sa)
        if (!sb.count(c)) broken.push_back(c);
      cases[it.key()] = {{"fixed", fixed}, {"broken", broken}};
    }
    send(res, {{"a", run_json(*a)}, {"b", run_json(*b)}, {"config_diff", diff}, {"data_changed", a->data_hash != b->data_hash},
               {"cases", cases}});
  }));
  http.Post("/api/run/start", api([this](const httplib::Request& req, httplib::Response& res) {
    json b = body_json(req);
    std::vector<std::string> args = {o.exe, "run", "--config", cfg.path};
    if (o.threads > 0) args.insert(args.end(), {"--threads", std::to_string(o.threads)});
    for (const char* k : {"from", "until"})
      if (b.contains(k) && b[k].is_string() && !b[k].get<std::string>().empty()) {
        project::Stage st;
        if (!project::stage_from_name(b[k], &st)) throw HttpError{400, std::string("'") + k + "' is not a stage name"};
        args.push_back(std::string("--") + k);
        args.push_back(b[k]);
      }
    if (b.value("force", false)) args.push_back("--force");
    if (!runner.start(args, cfg.dir)) throw HttpError{409, "a run is already going; stop it first"};
    audit->add(reviewer(req), "run.start", cfg.name, {{"args", args}});
    send(res, runner.status());
  }));
  http.Post("/api/run/stop", api([this](const httplib::Request& req, httplib::Response& res) {
    if (!runner.stop()) throw HttpError{409, "no run is going"};
    audit->add(reviewer(req), "run.stop", cfg.name, json::object());
    send(res, {{"stopping", true}});
  }));
  // Live progress: one event per output line, then "end" with the exit code.
  http.Get("/api/run/events", [this](const httplib::Request& req, httplib::Response& res) {
    size_t from = 0;
    if (req.has_param("from")) from = size_t(std::max(0LL, std::atoll(req.get_param_value("from").c_str())));
    res.set_chunked_content_provider("text/event-stream", [this, from](size_t, httplib::DataSink& sink) mutable {
      while (!http.stopping()) {
        bool done = false;
        int code = 0;
        auto lines = runner.lines(from, 1000, &done, &code);
        for (auto& l : lines) {
          std::string ev = "data: " + safe_json({{"i", from++}, {"line", l}}) + "\n\n";
          if (!sink.write(ev.data(), ev.size())) return false;
        }
        if (done) {
          std::string ev = "event: end\ndata: " + safe_json({{"exit_code", code}}) + "\n\n";
          sink.write(ev.data(), ev.size());
          sink.done();
          return true;
        }
        if (lines.empty() && !sink.write(": ping\n\n", 8)) return false;  // notices a page that went away
      }
      sink.done();
      return true;
    });
  });

  // Data review.
  http.Get("/api/data", api([this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(review_mu);
    send(res, data_review_view(p));
  }));
  http.Post("/api/data/decision", api([this](const httplib::Request& req, httplib::Response& res) {
    json b = body_json(req);
    const std::string who = reviewer(req);
    std::lock_guard<std::mutex> lock(review_mu);
    json d = save_data_decision(p, b, who);
    json detail = d;
    detail.erase("original");
    audit->add(who, "data." + d["action"].get<std::string>(), b["id"], detail);
    send(res, d);
  }));
  http.Post("/api/data/undo", api([this](const httplib::Request& req, httplib::Response& res) {
    json b = body_json(req);
    const std::string who = reviewer(req);
    std::lock_guard<std::mutex> lock(review_mu);
    if (!b.contains("id") || !b["id"].is_string() || !remove_data_decision(p, b["id"])) throw HttpError{404, "no decision for that record"};
    audit->add(who, "data.undo", b["id"], json::object());
    send(res, {{"ok", true}});
  }));

  // Eval review.
  http.Get("/api/eval", api([this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(review_mu);
    send(res, eval_review_view(p));
  }));
  http.Post("/api/eval/overrule", api([this](const httplib::Request& req, httplib::Response& res) {
    json b = body_json(req);
    const std::string who = reviewer(req);
    std::lock_guard<std::mutex> lock(review_mu);
    json o = save_overrule(p, b, who);
    audit->add(who, "eval.overrule", b["case"].get<std::string>() + "@" + b["variant"].get<std::string>(), o);
    send(res, o);
  }));
  // The last report as lathe eval rendered it (every text escaped by report_html).
  http.Get("/api/eval/report.html", [this](const httplib::Request&, httplib::Response& res) {
    if (!fs::exists(p.eval + "/report.html")) return send(res, {{"error", "no evaluation yet"}}, 404);
    // The report carries its own inline styles and no scripts: this page alone may use inline CSS.
    res.headers.erase("Content-Security-Policy");
    res.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'");
    res.set_content(read_file(p.eval + "/report.html"), "text/html; charset=utf-8");
  });

  // Feedback inbox.
  http.Get("/api/feedback", api([this](const httplib::Request& req, httplib::Response& res) {
    const bool rated = req.get_param_value("rated") == "1";
    send(res, {{"data_dir", data_dir}, {"items", json(store().inbox(500, rated))}});
  }));
  auto add_feedback = [this](const httplib::Request& req, httplib::Response& res, bool correction) {
    json b = body_json(req);
    const std::string who = reviewer(req);
    serve::FeedbackRecord f;
    if (!b.contains("completion_id") || !b["completion_id"].is_string()) throw HttpError{400, "'completion_id' is required"};
    f.completion_id = b["completion_id"];
    if (!store().has_completion(f.completion_id)) throw HttpError{404, "no completion '" + f.completion_id + "'"};
    // A correction keeps the answer's last rating (the served answer was wrong: -1 when unrated).
    int rating = -1;
    for (auto& item : store().inbox(100000, true))
      if (item["id"] == f.completion_id) rating = item["feedback"]["rating"].get<int>();
    if (b.contains("rating")) {
      if (!b["rating"].is_number_integer() || !(b["rating"] == 1 || b["rating"] == -1 || (b["rating"] >= 1 && b["rating"] <= 5)))
        throw HttpError{400, "'rating' must be +1/-1 or 1..5"};
      rating = b["rating"];
    }
    f.rating = rating;
    if (correction) {
      if (!b.contains("correction") || !b["correction"].is_string() || b["correction"].get<std::string>().empty())
        throw HttpError{400, "'correction' (the right answer) is required"};
      f.correction = b["correction"].get<std::string>();
    }
    f.comment = "lathe ui: " + who;
    f.tags = {"lathe-ui", "reviewer:" + who};
    f.created = int64_t(std::time(nullptr));
    int64_t id = store().add_feedback(f);
    audit->add(who, correction ? "feedback.correct" : "feedback.rate", f.completion_id,
               {{"rating", f.rating}, {"correction", f.correction ? json(*f.correction) : json(nullptr)}});
    send(res, {{"id", id}, {"completion_id", f.completion_id}, {"rating", f.rating}});
  };
  http.Post("/api/feedback/correct", api([add_feedback](const httplib::Request& req, httplib::Response& res) {
    add_feedback(req, res, true);
  }));
  http.Post("/api/feedback/rate", api([add_feedback](const httplib::Request& req, httplib::Response& res) {
    add_feedback(req, res, false);
  }));

  // Playground.
  http.Get("/api/playground", api([this](const httplib::Request&, httplib::Response& res) { send(res, playground->describe()); }));
  http.Post("/api/playground/chat", api([this](const httplib::Request& req, httplib::Response& res) {
    json b = body_json(req);
    if (!b.contains("model") || !b["model"].is_string()) throw HttpError{400, "'model' is required"};
    if (!b.contains("messages") || !b["messages"].is_array()) throw HttpError{400, "'messages' is required"};
    json fwd{{"model", b["model"]}, {"messages", b["messages"]}, {"user", "lathe-ui:" + reviewer(req)}};
    for (const char* k : {"max_tokens", "temperature", "rag"})
      if (b.contains(k)) fwd[k] = b[k];
    res.set_chunked_content_provider("text/event-stream", [this, fwd](size_t, httplib::DataSink& sink) {
      try {
        playground->chat(fwd, sink);
      } catch (const std::exception& e) {
        std::string ev = "data: " + safe_json({{"error", {{"message", e.what()}}}}) + "\n\n";
        sink.write(ev.data(), ev.size());
      }
      sink.done();
      return true;
    });
  }));

  http.Get("/api/audit", api([this](const httplib::Request&, httplib::Response& res) { send(res, {{"rows", audit->recent(200)}}); }));
}

UiServer::UiServer(UiOptions o) : impl_(std::make_unique<Impl>(std::move(o))) {}
UiServer::~UiServer() = default;

void UiServer::run(const std::function<void(int)>& on_listening) {
  Impl& s = *impl_;
  int port = s.o.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.o.host);
    if (port < 0) fail("ui", "cannot bind {} (any port)", s.o.host);
  } else if (!s.http.bind_to_port(s.o.host, port)) {
    fail("ui", "cannot bind {}:{} (in use, or not an address of this machine)", s.o.host, port);
  }
  s.port = port;
  if (on_listening) on_listening(port);
  s.http.listen_after_bind();
}

void UiServer::stop() {
  impl_->http.begin_shutdown();
  impl_->runner.stop();
  impl_->http.stop();
}

}  // namespace lathe::ui
