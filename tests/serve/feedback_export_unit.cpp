// `lathe feedback export --format dpo|kto` on a real SQLite feedback store (FeedbackStore, as the
// server fills it): which completions become pairs or labelled completions, the rating scales, the
// model/adapter filters, --with-context, and the summary's counts (rated = used + skipped).
#include <set>
#include <tuple>

#include "lathe/core/error.h"
#include "lathe/records/record_shape.h"
#include "lathe/serve/feedback_store.h"
#include "test_util.h"

namespace lathe::serve {
namespace {

using nlohmann::json;

struct Store {
  test::TempDir dir;
  FeedbackStore s{dir.path};
  void completion(const std::string& id, const std::string& kind, std::optional<std::string> req, std::optional<std::string> ans,
                  const std::string& adapter = "", const std::string& model = "base",
                  std::optional<std::string> retrieval = std::nullopt) {
    CompletionRecord r;
    r.id = id;
    r.created = 1700000000;
    r.model = model;
    r.adapter = adapter;
    r.kind = kind;
    r.request_json = std::move(req);
    r.answer = std::move(ans);
    r.retrieval_json = std::move(retrieval);
    s.add_completion(r);
  }
  void rate(const std::string& id, int rating, const char* correction = nullptr) {
    FeedbackRecord f;
    f.completion_id = id;
    f.rating = rating;
    f.created = 1700000100;
    if (correction) f.correction = correction;
    s.add_feedback(f);
  }
  std::vector<json> lines(const ExportOptions& o, ExportSummary* sum = nullptr) {
    std::string out;
    ExportSummary x = s.export_jsonl(o, &out);
    EXPECT_TRUE(x.reconciles()) << x.to_json().dump();
    if (sum) *sum = x;
    std::vector<json> v;
    size_t p = 0;
    while (p < out.size()) {
      size_t e = out.find('\n', p);
      v.push_back(json::parse(out.substr(p, e - p)));
      p = e + 1;
    }
    EXPECT_EQ(int(v.size()), x.written);
    return v;
  }
};

const char* kQ1 = R"([{"role":"system","content":"Be brief."},{"role":"user","content":"q1"}])";

// Thumbs deployment: one of each case.
void fill_thumbs(Store& st) {
  st.completion("c1", "chat", kQ1, "a1");
  st.rate("c1", 1);                                            // liked, no correction
  st.completion("c2", "chat", R"([{"role":"user","content":"q2"}])", "a2", "tuned");
  st.rate("c2", -1, "fixed2");                                 // disliked and corrected (adapter "tuned")
  st.completion("c3", "text", R"("Once")", " upon");
  st.rate("c3", 1, " upon a time");                            // liked, improved by a correction
  st.completion("c4", "chat", std::nullopt, std::nullopt);
  st.rate("c4", -1, "unseen");                                 // served with --log-prompts off
  st.completion("c5", "chat", R"([{"role":"user","content":"q5"}])", "a5");
  st.rate("c5", 1, "a5");                                      // a "correction" that confirms the answer
  st.completion("c6", "chat", R"([{"role":"user","content":"q6"}])", "a6", "", "other");
  st.rate("c6", -1);                                           // another served model
}

TEST(FeedbackExport, DpoPairsFromCorrections) {
  Store st;
  fill_thumbs(st);
  ExportOptions o;
  o.format = ExportFormat::Dpo;
  ExportSummary sum;
  auto v = st.lines(o, &sum);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], json::parse(R"({"prompt":[{"role":"user","content":"q2"}],
                                  "chosen":[{"role":"assistant","content":"fixed2"}],
                                  "rejected":[{"role":"assistant","content":"a2"}],
                                  "completion_id":"c2","model":"base","adapter":"tuned"})"));
  // A text completion: TRL's standard (string) form.
  EXPECT_EQ(v[1], json::parse(R"({"prompt":"Once","chosen":" upon a time","rejected":" upon",
                                  "completion_id":"c3","model":"base","adapter":""})"));
  for (auto& r : v) {
    EXPECT_EQ(preference_shape_of(r), PreferenceShape::Paired);
    EXPECT_NO_THROW(preference_messages(r, PreferenceShape::Paired));
  }
  EXPECT_EQ(sum.rated, 6);
  EXPECT_EQ(sum.used, 2);
  EXPECT_EQ(sum.skipped, (std::map<std::string, int>{{"no correction", 2}, {"no logged request", 1},
                                                     {"correction equals the answer", 1}}));
  // Record fields in a fixed order: prompt, chosen, rejected, then the metadata.
  std::string out;
  st.s.export_jsonl(o, &out);
  EXPECT_EQ(out.rfind("{\"prompt\":[{\"role\":\"user\",\"content\":\"q2\"}],\"chosen\":", 0), 0u) << out;
}

TEST(FeedbackExport, KtoLabelsFromThumbsAndCorrections) {
  Store st;
  fill_thumbs(st);
  ExportOptions o;
  o.format = ExportFormat::Kto;
  ExportSummary sum;
  auto v = st.lines(o, &sum);
  EXPECT_EQ(sum.scale, "thumbs");  // automatic: no rating in 2..5
  std::vector<std::tuple<std::string, json, bool>> got;
  for (auto& r : v) {
    ASSERT_EQ(preference_shape_of(r), PreferenceShape::Unpaired) << r;
    got.emplace_back(r["completion_id"], r["completion"], r["label"]);
  }
  auto a = [](const char* s) { return json::array({{{"role", "assistant"}, {"content", s}}}); };
  std::vector<std::tuple<std::string, json, bool>> want{
      {"c1", a("a1"), true},                                  // thumbs up
      {"c2", a("fixed2"), true}, {"c2", a("a2"), false},      // the correction, and the disliked answer
      {"c3", " upon a time", true}, {"c3", " upon", true},    // liked answer stays desirable beside its improvement
      {"c5", a("a5"), true},                                  // confirmed: the answer by its rating
      {"c6", a("a6"), false}};                                // thumbs down
  EXPECT_EQ(got, want);
  EXPECT_EQ(v[0]["prompt"], json::parse(kQ1));
  EXPECT_EQ(sum.desirable, 5);
  EXPECT_EQ(sum.undesirable, 2);
  EXPECT_EQ(sum.used, 5);
  EXPECT_EQ(sum.skipped, (std::map<std::string, int>{{"no logged request", 1}}));
}

TEST(FeedbackExport, FiltersByModelAndAdapter) {
  Store st;
  fill_thumbs(st);
  ExportOptions o;
  o.format = ExportFormat::Kto;
  o.model = "base";
  o.adapter = "";  // the base model alone
  ExportSummary sum;
  auto v = st.lines(o, &sum);
  std::set<std::string> ids;
  for (auto& r : v) ids.insert(r["completion_id"]);
  EXPECT_EQ(ids, (std::set<std::string>{"c1", "c3", "c5"}));
  EXPECT_EQ(sum.skipped["other model"], 1);
  EXPECT_EQ(sum.skipped["other adapter"], 1);
  o.adapter = "tuned";
  v = st.lines(o, &sum);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0]["adapter"], "tuned");
  EXPECT_EQ(sum.skipped["other adapter"], 4);
  // The filters apply to SFT too; without them SFT bytes are what they always were (serve_unit).
  o = {};
  o.model = "other";
  v = st.lines(o, &sum);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0], json::parse(R"({"messages":[{"role":"user","content":"q6"},{"role":"assistant","content":"a6"}]})"));
}

TEST(FeedbackExport, KtoStarsThresholdAndScaleErrors) {
  Store st;
  for (int r = 1; r <= 5; r++) {
    std::string id = "s" + std::to_string(r);
    st.completion(id, "chat", R"([{"role":"user","content":"q"}])", "answer " + std::to_string(r));
    st.rate(id, r);
  }
  ExportOptions o;
  o.format = ExportFormat::Kto;
  ExportSummary sum;
  auto v = st.lines(o, &sum);
  EXPECT_EQ(sum.scale, "stars");
  std::vector<std::pair<std::string, bool>> got;
  for (auto& r : v) got.emplace_back(r["completion_id"], r["label"]);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, bool>>{{"s1", false}, {"s2", false}, {"s4", true}, {"s5", true}}));
  EXPECT_EQ(sum.skipped, (std::map<std::string, int>{{"neutral rating (3 of 5)", 1}}));
  // Forced thumbs: every positive rating is desirable.
  o.scale = RatingScale::Thumbs;
  v = st.lines(o, &sum);
  EXPECT_EQ(sum.desirable, 5);
  // A thumbs-down beside star ratings: 1 could mean either, so auto refuses.
  st.completion("t", "chat", R"([{"role":"user","content":"q"}])", "bad");
  st.rate("t", -1);
  o.scale = RatingScale::Auto;
  std::string out;
  try {
    st.s.export_jsonl(o, &out);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("give --rating-scale"), std::string::npos) << e.what();
  }
  o.scale = RatingScale::Stars;
  v = st.lines(o, &sum);
  EXPECT_EQ(sum.undesirable, 3);  // 1, 2 and the thumbs-down
}

TEST(FeedbackExport, WithContextAndCorrectionsOnly) {
  Store st;
  st.completion("r1", "chat", R"([{"role":"user","content":"When?"}])", "Monday", "", "base",
                R"({"message_index":0,"user_message":"[1] doc: Tuesday\n\nQuestion: When?"})");
  st.rate("r1", -1, "Tuesday");
  st.completion("r2", "chat", R"([{"role":"user","content":"Hi"}])", "Hello");
  st.rate("r2", 1);
  ExportOptions o;
  o.format = ExportFormat::Dpo;
  auto asked = st.lines(o);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0]["prompt"][0]["content"], "When?");
  o.with_context = true;
  auto seen = st.lines(o);
  EXPECT_EQ(seen[0]["prompt"][0]["content"], "[1] doc: Tuesday\n\nQuestion: When?");
  o = {};
  o.format = ExportFormat::Kto;
  o.corrections_only = true;
  ExportSummary sum;
  auto v = st.lines(o, &sum);
  EXPECT_EQ(v.size(), 2u);  // Tuesday (desirable), Monday (undesirable)
  EXPECT_EQ(sum.skipped, (std::map<std::string, int>{{"no correction (--corrections-only)", 1}}));
}

}  // namespace
}  // namespace lathe::serve
