// A reviewer's edit is text typed after the personal-data stage: `lathe data prepare --review` runs
// that stage on edited records ("review pii"), so a phone number typed into an answer is redacted or
// the record dropped by the same policy as the inputs, and the counts still reconcile.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

using lathe::test::run_lathe;
using nlohmann::json;

namespace {

json read_json(const std::string& p) { return json::parse(std::ifstream(p)); }

std::vector<json> read_records(const std::string& p) {
  std::vector<json> v;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) v.push_back(json::parse(l));
  return v;
}

TEST(ReviewPii, EditedRecordsGoThroughThePersonalDataStage) {
  lathe::test::TempDir d;
  std::ofstream(d / "qa.jsonl") << json{{"instruction", "How do I apply for leave?"}, {"input", ""}, {"output", "Use the HR portal."}}.dump() << "\n"
                                << json{{"instruction", "Where is the office?"}, {"input", ""}, {"output", "In Seoul."}}.dump() << "\n";
  std::string out;
  ASSERT_EQ(run_lathe("data prepare --input " + d / "qa.jsonl" + " --output " + d / "ds --pii redact", &out, true), 0) << out;
  auto recs = read_records(d / "ds/train.records.jsonl");
  ASSERT_EQ(recs.size(), 2u);
  const std::string id = recs[0]["_id"];
  json edited = recs[0];
  edited["messages"][1]["content"] = "Call HR at 010-2345-6789 or mail hr.kim@example.com.";
  std::ofstream(d / "review.json") << json{{"format", "lathe-data-review-v1"},
                                           {"decisions", {{id, {{"action", "edit"}, {"record", edited}, {"reviewer", "Lee"}}}}}}.dump();
  for (const std::string policy : {"redact", "drop"}) {
    const std::string ds = d / ("ds_" + policy);
    ASSERT_EQ(run_lathe("data prepare --input " + d / "qa.jsonl" + " --output " + ds + " --pii " + policy + " --review " +
                            d / "review.json",
                        &out, true),
              0)
        << out;
    const json report = read_json(ds + "/report.json");
    const json* stage = nullptr;
    for (auto& s : report["stages"])
      if (s["stage"] == "review pii") stage = &s;
    ASSERT_NE(stage, nullptr) << report["stages"].dump();
    EXPECT_EQ((*stage)["in"], 2);
    EXPECT_TRUE(report["totals"]["reconciles"].get<bool>());
    auto got = read_records(ds + "/train.records.jsonl");
    std::string all;
    for (auto& r : got) all += r.dump();
    EXPECT_EQ(all.find("010-2345-6789"), std::string::npos) << policy << ": " << all;
    EXPECT_EQ(all.find("hr.kim@example.com"), std::string::npos) << policy << ": " << all;
    if (policy == "redact") {
      ASSERT_EQ(got.size(), 2u);
      EXPECT_NE(all.find("Call HR at"), std::string::npos);
      EXPECT_EQ((*stage)["out"], 2);
    } else {
      EXPECT_EQ(got.size(), 1u);
      EXPECT_EQ((*stage)["out"], 1);
      EXPECT_EQ((*stage)["dropped"].size(), 1u) << stage->dump();
    }
  }
}

}  // namespace
