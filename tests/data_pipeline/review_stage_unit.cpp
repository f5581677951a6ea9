// A reviewer's decisions (data/review_stage.h) on records: rejected ones are dropped with their reason
// and the stage reconciles, edited ones replaced, approvals and labels counted, decisions that match no
// record listed; malformed files are errors naming the decision.
#include <gtest/gtest.h>

#include "lathe/core/file_io.h"
#include "lathe/data/review_stage.h"
#include "test_util.h"

namespace {

using namespace lathe::data;
using nlohmann::json;

Record rec(const std::string& id, int line, const std::string& answer) {
  Record r;
  r.id = id;
  r.source.file = "qa.jsonl";
  r.source.line = line;
  r.json = {{"messages", {{{"role", "user"}, {"content", "q" + id}}, {{"role", "assistant"}, {"content", answer}}}}};
  return r;
}

TEST(ReviewStage, AppliesDecisions) {
  std::vector<Record> recs = {rec("a", 1, "one"), rec("b", 2, "two"), rec("c", 3, "three"), rec("d", 4, "four")};
  json edited = {{"messages", {{{"role", "user"}, {"content", "qc"}}, {{"role", "assistant"}, {"content", "THREE"}}}}, {"_id", "c"}};
  json review{{"format", "lathe-data-review-v1"},
              {"decisions",
               {{"a", {{"action", "reject"}, {"reason", "wrong"}, {"reviewer", "Kim"}}},
                {"b", {{"action", "approve"}, {"labels", {"hr", "ok"}}}},
                {"c", {{"action", "edit"}, {"record", edited}}},
                {"zz", {{"action", "reject"}}}}}};
  json summary;
  StageCounts c = review_stage(recs, review, "review.json", summary);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].id, "b");
  EXPECT_EQ(recs[1].json["messages"][1]["content"], "THREE");
  EXPECT_FALSE(recs[1].json.contains("_id"));
  EXPECT_EQ(c.in, 4u);
  EXPECT_EQ(c.out, 3u);
  EXPECT_EQ(c.dropped.at("rejected by reviewer"), 1u);
  EXPECT_TRUE(c.reconciles());
  EXPECT_EQ(c.examples.at("rejected by reviewer")[0], "qa.jsonl:1: Kim: wrong");
  EXPECT_EQ(summary["rejected"], 1);
  EXPECT_EQ(summary["approved"], 1);
  EXPECT_EQ(summary["edited"], 1);
  EXPECT_EQ(summary["labelled"], 1);
  EXPECT_EQ(summary["labels"]["hr"], 1);
  EXPECT_EQ(summary["unmatched"], json::array({"zz"}));
}

TEST(ReviewStage, MalformedFilesNameTheDecision) {
  lathe::test::TempDir d;
  lathe::write_file_atomic(d / "r.json", R"({"format":"lathe-data-review-v1","decisions":{"x1":{"action":"delete"}}})");
  EXPECT_NE(lathe::test::error_of([&] { load_review(d / "r.json"); }).find("decision x1"), std::string::npos);
  lathe::write_file_atomic(d / "e.json", R"({"format":"lathe-data-review-v1","decisions":{"x2":{"action":"edit","record":{"foo":1}}}})");
  EXPECT_NE(lathe::test::error_of([&] { load_review(d / "e.json"); }).find("x2"), std::string::npos);
  lathe::write_file_atomic(d / "f.json", "[1]");
  EXPECT_NE(lathe::test::error_of([&] { load_review(d / "f.json"); }).find("not a review file"), std::string::npos);
}

}  // namespace
