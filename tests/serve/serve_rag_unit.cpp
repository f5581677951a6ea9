// The serve layer's retrieval pieces without HTTP (serve/rag.h): which models retrieve, the options'
// checks against a real index, the response's sources, the feedback log and its export with and
// without the retrieved context, the request's "rag" field and the retrieval metrics.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/retrieval/index.h"
#include "lathe/serve/feedback_store.h"
#include "lathe/serve/metrics.h"
#include "lathe/serve/openai_protocol.h"
#include "lathe/serve/rag.h"
#include "test_util.h"

using nlohmann::json;
using namespace lathe;
using namespace lathe::serve;

namespace {

std::string make_index(const test::TempDir& dir) {
  std::filesystem::create_directories(dir / "docs");
  std::ofstream(dir / "docs/refund-ko.md") << "# 환불\n\n환불은 구매 후 14일 안에 요청할 수 있습니다.\n";
  std::ofstream(dir / "docs/vpn-en.md") << "# VPN\n\nUse the VPN on public networks.\n";
  retrieval::BuildOptions b;
  b.inputs = {dir / "docs"};
  b.output = dir / "index";
  b.progress = false;
  retrieval::build_index(b);
  return b.output;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ServeRagOptions, WhichModelsRetrieve) {
  test::TempDir dir;
  ServerOptions o;
  o.index_dir = make_index(dir);
  ServeRag all = make_serve_rag(o, "base", {"a", "b"});
  ASSERT_TRUE(all.index);
  EXPECT_EQ(all.index->passages(), 2u);
  EXPECT_TRUE(all.on_for("base") && all.on_for("a") && all.on_for("loaded-later"));
  o.rag_models = {"base", "b"};
  ServeRag some = make_serve_rag(o, "base", {"a", "b"});
  EXPECT_TRUE(some.on_for("base") && some.on_for("b"));
  EXPECT_FALSE(some.on_for("a"));
  o.rag_models = {"none"};
  EXPECT_FALSE(make_serve_rag(o, "base", {"a"}).on_for("base"));
  o.rag_models = {"all", "a"};
  EXPECT_NE(error_of([&] { make_serve_rag(o, "base", {"a"}); }).find("--rag-models: 'all' stands alone"), std::string::npos);
  // Without an index nothing retrieves, and retrieval settings are refused rather than ignored.
  ServerOptions none;
  EXPECT_FALSE(make_serve_rag(none, "base", {}).on_for("base"));
  none.rag_k = 5;
  EXPECT_NE(error_of([&] { make_serve_rag(none, "base", {}); }).find("--rag-k 5: retrieval needs --index"), std::string::npos);
  none = {};
  none.rag_models = {"base"};
  EXPECT_NE(error_of([&] { make_serve_rag(none, "base", {}); }).find("--rag-models"), std::string::npos);
  none = {};
  none.index_dir = dir / "no-index";
  EXPECT_NE(error_of([&] { make_serve_rag(none, "base", {}); }).find("--index " + (dir / "no-index")), std::string::npos);
  // A template must hold both placeholders; the error names the flag and the file.
  o = {};
  o.index_dir = dir / "index";
  std::ofstream(dir / "t.txt") << "Context: {context}\n";
  o.rag_template = dir / "t.txt";
  std::string e = error_of([&] { make_serve_rag(o, "base", {}); });
  EXPECT_NE(e.find("--rag-template"), std::string::npos) << e;
  EXPECT_NE(e.find("{question}"), std::string::npos) << e;
  std::ofstream(dir / "t.txt") << "Q: {question}\nC: {context}\n";
  EXPECT_EQ(make_serve_rag(o, "base", {}).prompt.template_text, "Q: {question}\nC: {context}\n");
}

TEST(ServeRagOptions, QuestionSourcesAndLog) {
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array(
      {{{"role", "system"}, {"content", "s"}}, {{"role", "user"}, {"content", "q1"}},
       {{"role", "assistant"}, {"content", "a1"}}, {{"role", "user"}, {"content", "q2"}},
       {{"role", "assistant"}, {"content", "prefill"}}});
  EXPECT_EQ(last_user_message(msgs), 3);
  EXPECT_EQ(last_user_message(nlohmann::ordered_json::array({{{"role", "system"}, {"content", "s"}}})), -1);

  test::TempDir dir;
  retrieval::Index index(make_index(dir));
  std::vector<retrieval::Hit> hits = index.search("환불이 며칠?", {2, "auto"});
  ASSERT_GE(hits.size(), 1u);
  json src = sources_json(hits);
  ASSERT_EQ(src.size(), hits.size());
  EXPECT_EQ(src[0]["index"], 1);
  EXPECT_NE(src[0]["source"].get<std::string>().find("refund-ko.md:"), std::string::npos) << src;
  EXPECT_NE(src[0]["text"].get<std::string>().find("14일"), std::string::npos);
  EXPECT_TRUE(src[0].contains("line"));
  json log = json::parse(retrieval_log_json(1, 3, hits, std::string("seen")));
  EXPECT_EQ(log["message_index"], 1);
  EXPECT_EQ(log["k"], 3);
  EXPECT_EQ(log["sources"][0]["source"], src[0]["source"]);
  EXPECT_FALSE(log["sources"][0].contains("text"));  // the text is in user_message, once
  EXPECT_EQ(log["user_message"], "seen");
  EXPECT_FALSE(json::parse(retrieval_log_json(1, 3, hits, std::nullopt)).contains("user_message"));
}

TEST(ServeRagOptions, RequestField) {
  EXPECT_FALSE(parse_completion_request(R"({"model":"m","messages":[{"role":"user","content":"x"}]})", true).rag);
  EXPECT_EQ(parse_completion_request(R"({"model":"m","messages":[{"role":"user","content":"x"}],"rag":false})", true).rag,
            false);
  EXPECT_EQ(parse_completion_request(R"({"model":"m","messages":[{"role":"user","content":"x"}],"rag":true})", true).rag,
            true);
  try {
    parse_completion_request(R"({"model":"m","messages":[{"role":"user","content":"x"}],"rag":1})", true);
    FAIL() << "rag: 1 must be refused";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "rag");
  }
}

TEST(ServeRagFeedback, ExportAsAskedOrAsSeen) {
  test::TempDir dir;
  FeedbackStore s(dir.path);
  CompletionRecord r;
  r.id = "c1";
  r.created = 1700000000;
  r.model = "base";
  r.kind = "chat";
  r.request_json = R"([{"role":"system","content":"s"},{"role":"user","content":"q"}])";
  r.answer = "a [1]";
  r.retrieval_json = R"({"message_index":1,"k":3,"sources":[{"index":1,"source":"d.md:3","score":1.5,"id":7}],)"
                     R"("user_message":"[1] d.md:3\npassage\n\nQuestion: q"})";
  s.add_completion(r);
  CompletionRecord plain = r;  // answered without retrieval: stays as asked either way
  plain.id = "c2";
  plain.retrieval_json.reset();
  s.add_completion(plain);
  FeedbackRecord f;
  f.completion_id = "c1";
  f.rating = 1;
  s.add_feedback(f);
  f.completion_id = "c2";
  s.add_feedback(f);
  std::string asked, seen;
  EXPECT_EQ(s.export_jsonl({}, &asked).written, 2);
  ExportOptions o;
  o.with_context = true;
  EXPECT_EQ(s.export_jsonl(o, &seen).written, 2);
  const std::string q = R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},)"
                        R"({"role":"assistant","content":"a [1]"}]})";
  EXPECT_EQ(asked, q + "\n" + q + "\n");
  EXPECT_EQ(seen, R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"[1] d.md:3\npassage\n\nQuestion: q"},)"
                  R"({"role":"assistant","content":"a [1]"}]})" "\n" + q + "\n");
}

// A feedback.sqlite written before retrieval existed gets the column and keeps its rows.
TEST(ServeRagFeedback, OlderDatabaseGetsTheRetrievalColumn) {
  test::TempDir dir;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(FeedbackStore::db_path(dir.path).c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE completions (id TEXT PRIMARY KEY, created INTEGER NOT NULL, model TEXT NOT NULL,"
                         " adapter TEXT NOT NULL, kind TEXT NOT NULL, request TEXT, answer TEXT, prompt_tokens INTEGER,"
                         " completion_tokens INTEGER, latency_s REAL, finish_reason TEXT);"
                         "INSERT INTO completions VALUES ('old',1,'m','','chat','[{\"role\":\"user\",\"content\":\"q\"}]',"
                         "'a',1,1,0.1,'stop')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  FeedbackStore s(dir.path);
  EXPECT_TRUE(s.has_completion("old"));
  CompletionRecord r;
  r.id = "new";
  r.model = "m";
  r.kind = "chat";
  r.request_json = R"([{"role":"user","content":"q"}])";
  r.retrieval_json = R"({"message_index":0,"k":3,"sources":[]})";
  s.add_completion(r);
  FeedbackRecord f;
  f.completion_id = "old";
  f.rating = 1;
  s.add_feedback(f);
  std::string out;
  ExportOptions o;
  o.with_context = true;
  EXPECT_EQ(s.export_jsonl(o, &out).written, 1);
  EXPECT_EQ(out, R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})" "\n");
}

TEST(ServeRagMetrics, CountsAndFineBuckets) {
  Metrics m;
  m.retrieval(0.0003, 3, 3);
  m.retrieval(0.002, 0, 0);
  m.retrieval(0.0004, 3, 1);  // two left out to fit the context: found, so not empty
  m.retrieval_error();
  std::string t = m.render(0, 0, 0, 0);
  EXPECT_NE(t.find("lathe_retrieval_requests_total 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lathe_retrieval_empty_total 1\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_retrieval_errors_total 1\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_retrieval_passages_total 4\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_retrieval_passages_dropped_total 2\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_retrieval_duration_seconds_bucket{le=\"0.00025\"} 0\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lathe_retrieval_duration_seconds_bucket{le=\"0.0005\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lathe_retrieval_duration_seconds_bucket{le=\"0.0025\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lathe_retrieval_duration_seconds_count 3\n"), std::string::npos);
  // The request histograms keep their buckets.
  m.request("/v1/chat/completions", 200, 0.003);
  EXPECT_NE(m.render(0, 0, 0, 0).find("lathe_request_duration_seconds_bucket{route=\"/v1/chat/completions\",le=\"0.005\"} 1\n"),
            std::string::npos);
}

}  // namespace
