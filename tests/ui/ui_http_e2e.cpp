// `lathe ui` over HTTP on loopback, on a tiny project (stories260K's tokenizer, a random 2-layer model,
// five QA records one of which carries <script>): login and sessions, CSRF refusal, Host checks,
// escaping, and the review loop — a data decision changes what the next `lathe run` (started from the
// API, followed over server-sent events) prepares, an overrule shows in the next eval report, a
// correction comes out of `lathe feedback export`, and the playground streams an answer.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/formats/sqlite_db.h"
#include "lathe/serve/feedback_store.h"
#include "lathe/ui/ui_server.h"
#include "project/project_test_util.h"
#include "test_util.h"

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using lathe::test::run_lathe;

const char* kScript = "<script>alert('x')</script> How many leave days?";

// The project every test here shares: built and run once (prepare, train, eval) in SetUpTestSuite.
struct Project {
  lathe::test::TempDir dir;
  bool ready = false;
  std::string setup_log;
};
Project* g_project = nullptr;

std::string project_yaml() {
  return "project:\n  name: uitest\n"
         "goal:\n  task: answer questions\n"
         "base_model:\n  path: base\n"
         "data:\n  inputs: [data/]\n  clean:\n    strip_html: false\n  pii:\n    policy: redact\n  dedup:\n    near: false\n"
         "  format:\n    max_seq_length: 128\n    chat_template: chatml\n  split:\n    ratios: [1.0, 0.0, 0.0]\n"
         "train:\n  method: lora\n  chat_template: chatml\n  lora_r: 4\n  lora_target_modules: all-linear\n"
         "  max_steps: 2\n  per_device_train_batch_size: 2\n  save_steps: 0\n"
         "eval:\n  generation:\n    max_new_tokens: 4\n    template: chatml\n"
         "  cases:\n"
         "    - id: lily\n      prompt: Who is Lily?\n      assert:\n        - type: contains\n          value: girl\n"
         "    - id: ball\n      prompt: Where is the ball?\n      assert:\n        - type: contains\n          value: park\n";
}

class UiHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!lathe::test::has_fixture("models/stories260K-hf/tokenizer.json")) return;
    g_project = new Project;
    Project& p = *g_project;
    std::string out;
    if (run_lathe("init-model --hidden-size 32 --intermediate-size 64 --num-hidden-layers 1 --seed 5 --tokenizer " +
                      lathe::test::fixture_path("models/stories260K-hf") + " --output " + p.dir / "base",
                  &out, true) != 0) {
      p.setup_log = out;
      return;
    }
    fs::create_directories(p.dir / "data");
    std::ofstream f(p.dir / "data/qa.jsonl");
    f << json{{"question", "Who is Lily?"}, {"answer", "Lily is a girl."}}.dump() << "\n"
      << json{{"question", "Where is the ball?"}, {"answer", "The ball is in the park."}}.dump() << "\n"
      << json{{"question", kScript}, {"answer", "Fifteen days."}}.dump() << "\n"
      << json{{"question", "Who writes to lily.kim@example.com?"}, {"answer", "Her friend Tom writes."}}.dump() << "\n"
      << json{{"question", "What does Tom like?"}, {"answer", "Tom likes red apples."}}.dump() << "\n";
    f.close();
    lathe::write_file_atomic(p.dir / "project.yaml", project_yaml());
    int rc = run_lathe("run --threads 1 --config " + p.dir.path, &out, true);
    p.setup_log = out;
    p.ready = rc == 0 || rc == 3;
  }
  static void TearDownTestSuite() {
    delete g_project;
    g_project = nullptr;
  }
  void SetUp() override {
    LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
    ASSERT_TRUE(g_project && g_project->ready) << (g_project ? g_project->setup_log : "");
  }
};

// A UiServer on a free loopback port, on a thread of its own.
struct Ui {
  lathe::ui::UiServer server;
  std::thread thread;
  int port = 0;
  explicit Ui(lathe::ui::UiOptions o) : server(with_defaults(std::move(o))) {
    std::mutex m;
    std::condition_variable cv;
    thread = std::thread([&] {
      server.run([&](int p) {
        std::lock_guard<std::mutex> l(m);
        port = p;
        cv.notify_all();
      });
    });
    std::unique_lock<std::mutex> l(m);
    cv.wait_for(l, std::chrono::seconds(10), [&] { return port != 0; });
  }
  ~Ui() {
    server.stop();
    thread.join();
  }
  static lathe::ui::UiOptions with_defaults(lathe::ui::UiOptions o) {
    if (o.config.empty()) o.config = g_project->dir.path;
    o.port = 0;
    o.exe = LATHE_BINARY;
    o.threads = 1;
    return o;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    return c;
  }
};

// A logged-in browser: the session cookie and the CSRF token.
struct Browser {
  httplib::Client c;
  std::string cookie, csrf;
  Browser(const Ui& ui, const std::string& reviewer, const std::string& token = "") : c(ui.client()) {
    json body{{"reviewer", reviewer}};
    if (!token.empty()) body["token"] = token;
    auto r = c.Post("/api/login", body.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    if (!r || r->status != 200) return;
    const std::string sc = r->get_header_value("Set-Cookie");
    EXPECT_NE(sc.find("HttpOnly"), std::string::npos) << sc;
    EXPECT_NE(sc.find("SameSite=Strict"), std::string::npos) << sc;
    cookie = sc.substr(0, sc.find(';'));
    csrf = json::parse(r->body)["csrf"];
  }
  httplib::Result get(const std::string& path) { return c.Get(path.c_str(), {{"Cookie", cookie}}); }
  httplib::Result post(const std::string& path, const json& body, bool with_csrf = true) {
    httplib::Headers h{{"Cookie", cookie}};
    if (with_csrf) h.emplace("X-CSRF-Token", csrf);
    return c.Post(path.c_str(), h, body.dump(), "application/json");
  }
  json get_json(const std::string& path) {
    auto r = get(path);
    EXPECT_TRUE(r && r->status == 200) << path << ": " << (r ? r->body : "no answer");
    return r ? json::parse(r->body) : json();
  }
  // Starts `lathe run` and reads its server-sent events to the end; returns the output and exit code.
  std::pair<std::string, int> run_project(const json& body) {
    auto r = post("/api/run/start", body);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    std::string events;
    auto ev = c.Get("/api/run/events?from=0", {{"Cookie", cookie}}, [&](const char* d, size_t n) {
      events.append(d, n);
      return true;
    });
    EXPECT_TRUE(ev && ev->status == 200);
    std::string text;
    int code = -1;
    size_t pos = 0;
    while ((pos = events.find("data: ", pos)) != std::string::npos) {
      size_t end = events.find("\n\n", pos);
      json d = json::parse(events.substr(pos + 6, end - pos - 6));
      if (d.contains("line")) text += d["line"].get<std::string>() + "\n";
      if (d.contains("exit_code")) code = d["exit_code"];
      pos = end;
    }
    EXPECT_NE(events.find("event: end"), std::string::npos) << events;
    return {text, code};
  }
};

std::string records_text(const std::string& proj) {
  std::string s;
  for (const char* split : {"train", "validation", "test"})
    if (fs::exists(proj + "/out/data/" + split + ".records.jsonl")) s += lathe::read_file(proj + "/out/data/" + split + ".records.jsonl");
  return s;
}

TEST_F(UiHttp, PagesAreBuiltInAndApiNeedsLogin) {
  Ui ui({});
  auto c = ui.client();
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("/assets/app.js"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  auto js = c.Get("/assets/app.js");
  ASSERT_TRUE(js && js->status == 200);
  EXPECT_NE(js->body.find("한국어"), std::string::npos) << "the Korean strings table";
  EXPECT_EQ(js->body.find("innerHTML"), std::string::npos) << "pages must set text, never HTML";

  for (const char* path : {"/api/runs", "/api/data", "/api/eval", "/api/feedback", "/api/audit"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << path;
  }
  // A forged cookie is no session.
  auto r = c.Get("/api/runs", {{"Cookie", "lathe_ui_session=00112233445566778899aabbccddeeff"}});
  EXPECT_EQ(r->status, 401);
  // Login as a form post (what another site could send without asking) is refused.
  r = c.Post("/api/login", "reviewer=mallory", "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 415);
  // DNS rebinding: a page served from another name cannot reach the loopback workbench.
  r = c.Get("/", {{"Host", "evil.example:80"}});
  EXPECT_EQ(r->status, 403);
  // A name is required: it goes into the audit trail.
  r = c.Post("/api/login", json{{"reviewer", ""}}.dump(), "application/json");
  EXPECT_EQ(r->status, 400);

  Browser b(ui, "Kim Jiwoo");
  json runs = b.get_json("/api/runs");
  ASSERT_GE(runs["runs"].size(), 1u);
  EXPECT_EQ(b.get_json("/api/session")["reviewer"], "Kim Jiwoo");
}

TEST_F(UiHttp, OtherHostsNeedATokenAndSessionsExpire) {
  lathe::ui::UiOptions o;
  o.config = g_project->dir.path;
  o.host = "0.0.0.0";
  EXPECT_NE(lathe::test::error_of([&] { lathe::ui::UiServer s(o); }).find("--token"), std::string::npos);

  lathe::ui::UiOptions t;
  t.token = "s3cret-token";
  t.session_ttl_s = 1;
  Ui ui(t);
  auto c = ui.client();
  auto r = c.Post("/api/login", json{{"reviewer", "Lee"}, {"token", "wrong"}}.dump(), "application/json");
  EXPECT_EQ(r->status, 401);
  r = c.Post("/api/login", json{{"reviewer", "Lee"}}.dump(), "application/json");
  EXPECT_EQ(r->status, 401);
  Browser b(ui, "Lee", "s3cret-token");
  EXPECT_EQ(b.get("/api/runs")->status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_EQ(b.get("/api/runs")->status, 401) << "the session outlived its lifetime";
  // The refused login is in the audit trail.
  lathe::SqliteDb db(g_project->dir / ".lathe/ui_audit.sqlite", lathe::SqliteDb::Mode::ReadOnly, "test");
  EXPECT_EQ(db.scalar_text("SELECT COUNT(*) FROM audit WHERE action = 'login.refused' AND reviewer = 'Lee'").value_or("0"), "2");
}

TEST_F(UiHttp, StateChangesNeedTheCsrfToken) {
  Ui ui({});
  Browser b(ui, "Park");
  json data = b.get_json("/api/data");
  ASSERT_FALSE(data["records"].empty());
  const std::string id = data["records"][0]["id"];
  json decision{{"id", id}, {"action", "approve"}};
  auto r = b.post("/api/data/decision", decision, false);
  EXPECT_EQ(r->status, 403) << r->body;
  httplib::Headers h{{"Cookie", b.cookie}, {"X-CSRF-Token", std::string(32, '0')}};
  r = b.c.Post("/api/data/decision", h, decision.dump(), "application/json");
  EXPECT_EQ(r->status, 403);
  for (const char* path : {"/api/eval/overrule", "/api/feedback/correct", "/api/run/start", "/api/run/stop", "/api/playground/chat"}) {
    r = b.post(path, json::object(), false);
    EXPECT_EQ(r->status, 403) << path;
  }
  EXPECT_FALSE(fs::exists(g_project->dir / "review/data.json")) << "a refused request wrote the review file";
  // A malformed decision is a 400 naming the field.
  r = b.post("/api/data/decision", {{"id", id}, {"action", "delete"}});
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("action"), std::string::npos);
}

TEST_F(UiHttp, ScriptInARecordComesBackAsEscapedText) {
  Ui ui({});
  Browser b(ui, "Choi");
  auto r = b.get("/api/data");
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("application/json", 0), 0u);
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(r->body.find("<script>"), std::string::npos) << "raw markup in an API answer";
  EXPECT_NE(r->body.find("\\u003cscript\\u003e"), std::string::npos);
  json data = json::parse(r->body);
  bool found = false;
  for (auto& rec : data["records"]) found = found || rec["record"].dump().find("<script>alert") != std::string::npos;
  EXPECT_TRUE(found) << "the record's text itself is kept (the page shows it as text)";
  // The personal data was redacted by the pipeline and the page gets the placeholder to highlight.
  EXPECT_NE(r->body.find("[EMAIL]"), std::string::npos);
}

TEST_F(UiHttp, ReviewDecisionsChangeTheNextRunAndOverrulesTheReport) {
  const std::string proj = g_project->dir.path;
  Ui ui({});
  Browser b(ui, "Reviewer <b>One</b>");
  json data = b.get_json("/api/data");
  std::string script_id, tom_id, lily_id;
  json tom_record;
  for (auto& r : data["records"]) {
    const std::string s = r["record"].dump();
    if (s.find("<script>") != std::string::npos) script_id = r["id"];
    if (s.find("red apples") != std::string::npos) {
      tom_id = r["id"];
      tom_record = r["record"];
    }
    if (s.find("Lily is a girl") != std::string::npos) lily_id = r["id"];
  }
  ASSERT_FALSE(script_id.empty() || tom_id.empty() || lily_id.empty()) << data.dump();
  for (auto& m : tom_record["messages"])
    if (m["role"] == "assistant") m["content"] = "Tom likes green pears.";
  ASSERT_EQ(b.post("/api/data/decision", {{"id", script_id}, {"action", "reject"}, {"reason", "markup, not a question"}})->status, 200);
  ASSERT_EQ(b.post("/api/data/decision", {{"id", tom_id}, {"action", "edit"}, {"record", tom_record}})->status, 200);
  ASSERT_EQ(b.post("/api/data/decision", {{"id", lily_id}, {"action", "approve"}, {"labels", {"checked", "hr"}}})->status, 200);
  ASSERT_TRUE(fs::exists(proj + "/review/data.json"));
  const std::string qa_before = lathe::read_file(proj + "/data/qa.jsonl");

  // An overrule of the tuned variant's first case, with markup in its reason.
  json ev = b.get_json("/api/eval");
  ASSERT_TRUE(ev["evaluated"].get<bool>());
  const bool was = ev["cases"][0]["results"]["tuned"]["pass"];
  ASSERT_EQ(b.post("/api/eval/overrule", {{"case", "lily"}, {"variant", "tuned"}, {"pass", !was}, {"reason", "<i>right</i> in substance"}})->status,
            200);
  EXPECT_EQ(b.post("/api/eval/overrule", {{"case", "lily"}, {"variant", "tuned"}, {"pass", true}})->status, 400) << "a reason is required";

  // The next run, started from the API and followed over server-sent events.
  auto [out, code] = b.run_project(json::object());
  EXPECT_TRUE(code == 0 || code == 3) << out;
  EXPECT_NE(out.find("== prepare"), std::string::npos) << out;
  EXPECT_EQ(lathe::test::stages_with(out, "running").rfind("prepare", 0), 0u) << out;
  EXPECT_EQ(lathe::read_file(proj + "/data/qa.jsonl"), qa_before) << "the source file was edited";
  const std::string recs = records_text(proj);
  EXPECT_EQ(recs.find("alert("), std::string::npos) << "the rejected record was prepared";
  EXPECT_EQ(recs.find("red apples"), std::string::npos);
  EXPECT_NE(recs.find("green pears"), std::string::npos) << "the edit was not applied";
  json rep = json::parse(lathe::read_file(proj + "/out/data/report.json"));
  EXPECT_EQ(rep["review"]["rejected"], 1) << rep["review"].dump();
  EXPECT_EQ(rep["review"]["edited"], 1);
  EXPECT_EQ(rep["review"]["approved"], 1);
  EXPECT_EQ(rep["review"]["labels"]["checked"], 1);

  json report = json::parse(lathe::read_file(proj + "/out/eval/report.json"));
  json res;
  for (auto& c : report["cases"])
    if (c["id"] == "lily") res = c["results"]["tuned"];
  ASSERT_TRUE(res.contains("overrule")) << res.dump();
  EXPECT_EQ(res["pass"], !was);
  EXPECT_EQ(res["overrule"]["assertions_pass"], was);
  EXPECT_EQ(res["overrule"]["reviewer"], "Reviewer <b>One</b>");
  const std::string html = lathe::read_file(proj + "/out/eval/report.html");
  EXPECT_NE(html.find("&lt;i&gt;right&lt;/i&gt; in substance"), std::string::npos);
  EXPECT_EQ(html.find("<i>right</i>"), std::string::npos);
  // The workbench serves that report with a policy that allows no script at all.
  auto rh = b.get("/api/eval/report.html");
  ASSERT_TRUE(rh && rh->status == 200);
  EXPECT_EQ(rh->get_header_value("Content-Security-Policy").find("script"), std::string::npos);
  EXPECT_NE(rh->get_header_value("Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(rh->get_header_value_count("Content-Security-Policy"), 1u);

  // Nothing changed since: the next run prepares nothing.
  auto [out2, code2] = b.run_project(json::object());
  EXPECT_EQ(lathe::test::stages_with(out2, "running"), "") << out2;

  // Every decision is in the audit trail with the reviewer's name.
  json audit = b.get_json("/api/audit");
  std::set<std::string> actions;
  for (auto& r : audit["rows"])
    if (r["reviewer"] == "Reviewer <b>One</b>") actions.insert(r["action"]);
  for (const char* a : {"data.reject", "data.edit", "data.approve", "eval.overrule", "run.start", "login"})
    EXPECT_TRUE(actions.count(a)) << a << " missing from " << audit.dump();
}

TEST_F(UiHttp, CorrectionComesOutOfFeedbackExport) {
  const std::string dd = g_project->dir / "lathe-data";
  {
    lathe::serve::FeedbackStore st(dd);
    lathe::serve::CompletionRecord c;
    c.id = "chatcmpl-ui1";
    c.created = 1700000000;
    c.model = "base";
    c.kind = "chat";
    c.request_json = json::array({{{"role", "user"}, {"content", "How many leave days?"}}}).dump();
    c.answer = "Ten.";
    st.add_completion(c);
  }
  Ui ui({});
  Browser b(ui, "Han");
  json inbox = b.get_json("/api/feedback");
  ASSERT_EQ(inbox["items"].size(), 1u) << inbox.dump();
  EXPECT_EQ(b.post("/api/feedback/correct", {{"completion_id", "chatcmpl-nope"}, {"correction", "x"}})->status, 404);
  auto r = b.post("/api/feedback/correct", {{"completion_id", "chatcmpl-ui1"}, {"correction", "Fifteen days."}});
  ASSERT_EQ(r->status, 200) << r->body;
  inbox = b.get_json("/api/feedback?rated=1");
  ASSERT_EQ(inbox["items"].size(), 1u);
  EXPECT_EQ(inbox["items"][0]["feedback"]["correction"], "Fifteen days.");
  std::string out;
  ASSERT_EQ(run_lathe("feedback export --data-dir " + dd + " --output " + g_project->dir / "fb.jsonl", &out, true), 0) << out;
  const std::string rows = lathe::read_file(g_project->dir / "fb.jsonl");
  EXPECT_NE(rows.find("Fifteen days."), std::string::npos) << rows;
  EXPECT_EQ(rows.find("Ten."), std::string::npos) << "the correction replaces the served answer";
}

TEST_F(UiHttp, PlaygroundStreamsFromTheServedModels) {
  Ui ui({});
  Browser b(ui, "Yoon");
  json pg = b.get_json("/api/playground");
  ASSERT_TRUE(pg["available"].get<bool>()) << pg.dump();
  ASSERT_GE(pg["models"].size(), 2u) << "base and the tuned adapter";
  for (auto& m : pg["models"]) {
    std::string events;
    httplib::Headers h{{"Cookie", b.cookie}, {"X-CSRF-Token", b.csrf}};
    json body{{"model", m}, {"messages", {{{"role", "user"}, {"content", "Who is Lily?"}}}}, {"max_tokens", 6}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/api/playground/chat";
    req.headers = h;
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      events.append(d, n);
      return true;
    };
    auto c = ui.client();
    auto r = c.send(req);
    ASSERT_TRUE(r) << m;
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(events.find("chat.completion.chunk"), std::string::npos) << m << ": " << events;
    EXPECT_NE(events.find("data: [DONE]"), std::string::npos) << m << ": " << events;
  }
  // Each answer was recorded by the served model's feedback store: the inbox shows them.
  json inbox = b.get_json("/api/feedback");
  EXPECT_GE(inbox["items"].size(), pg["models"].size());
}

}  // namespace
