// The decision box's rules on hand-made variant results: the cheapest variant at or above the gate
// overall and per tag, none when nothing passes, the highest pass rate without a gate, and the
// cases only retrieval / only tuning fixes; what a later round (tuned+dpo on tuned) fixed and broke.
#include <gtest/gtest.h>

#include "lathe/eval/decision.h"

namespace {

using namespace lathe::eval;

// pass: one char per case ('1' pass); tokens: prompt tokens per answer.
VariantResult variant(const std::string& name, const std::string& kind, const std::string& pass, int tokens) {
  VariantResult v;
  v.name = name;
  v.kind = kind;
  for (char c : pass) {
    CaseOutput o;
    o.pass = c == '1';
    o.prompt_tokens = tokens;
    o.new_tokens = 5;
    v.passed += o.pass;
    v.cases.push_back(o);
  }
  v.pass_rate = double(v.passed) / double(pass.size());
  return v;
}

EvalRun run_of(std::vector<VariantResult> vs) {
  EvalRun r;
  const char* tags[] = {"ko", "ko", "en", "en"};
  for (int i = 0; i < 4; i++) {
    EvalCase c;
    c.id = "c" + std::to_string(i);
    c.tags = {tags[i]};
    r.suite.cases.push_back(c);
  }
  r.variants = std::move(vs);
  return r;
}

TEST(Decision, CheapestAtTheGateOverallAndPerTag) {
  EvalRun r = run_of({variant("base", "base", "0000", 20), variant("prompt", "prompt", "1000", 120),
                      variant("rag", "rag", "1101", 400), variant("tuned", "adapter", "0011", 20),
                      variant("tuned+rag", "adapter+rag", "1111", 400)});
  Gates g;
  g.min_pass_rate = 0.75;
  auto d = decision_json(r, g);
  EXPECT_EQ(d["overall"]["choice"], "rag");  // rag and tuned+rag tie on tokens; rag comes first
  EXPECT_EQ(d["overall"]["passing"], nlohmann::ordered_json::array({"rag", "tuned+rag"}));
  EXPECT_EQ(d["per_tag"]["en"]["choice"], "tuned");  // en: tuned 2/2 at 25 tokens
  EXPECT_EQ(d["per_tag"]["ko"]["choice"], "rag");    // ko: rag 2/2, tuned 0/2
  EXPECT_EQ(d["per_tag"]["ko"]["cases"], 2);
  // c0, c1: base fails, rag passes, tuned fails; c2 (tuned passes, rag fails): only tuning; c3: both.
  EXPECT_EQ(d["only_retrieval_fixes"], nlohmann::ordered_json::array({"c0", "c1"}));
  EXPECT_EQ(d["only_tuning_fixes"], nlohmann::ordered_json::array({"c2"}));
  EXPECT_EQ(d["both_fix"], 1);
  EXPECT_EQ(d["still_failing"], 0);
  EXPECT_NE(d["summary"].get<std::string>().find("Retrieval alone fixes 2"), std::string::npos);
  // tuned 0011 vs tuned+rag 1111: retrieval fixes c0 and c1 on top of tuning, breaks nothing.
  ASSERT_EQ(d["retrieval_with_adapter"].size(), 1u);
  EXPECT_EQ(d["retrieval_with_adapter"][0]["adapter"], "tuned");
  EXPECT_EQ(d["retrieval_with_adapter"][0]["fixes"], nlohmann::ordered_json::array({"c0", "c1"}));
  EXPECT_TRUE(d["retrieval_with_adapter"][0]["breaks"].empty());

  g.min_pass_rate = 1.0;
  d = decision_json(r, g);
  EXPECT_EQ(d["overall"]["choice"], "tuned+rag");
  g.min_pass_rate = -1;  // no gate: the highest pass rate, then the cheapest
  d = decision_json(r, g);
  EXPECT_EQ(d["overall"]["choice"], "tuned+rag");
  EXPECT_TRUE(d["gate"].is_null());
}

TEST(Decision, NothingPassesAndNoRetrieval) {
  EvalRun r = run_of({variant("base", "base", "0000", 20), variant("tuned", "adapter", "1000", 20)});
  Gates g;
  g.min_pass_rate = 0.5;
  auto d = decision_json(r, g);
  EXPECT_TRUE(d["overall"]["choice"].is_null());
  EXPECT_DOUBLE_EQ(d["overall"]["best_pass_rate"].get<double>(), 0.25);
  EXPECT_TRUE(d["only_retrieval_fixes"].empty());
  EXPECT_NE(d["summary"].get<std::string>().find("No retrieval index"), std::string::npos);
}

// A feedback round is named after its parent: tuned+dpo continues tuned, tuned+dpo+rag is compared
// with tuned+rag. Cases: c0 ko, c1 ko, c2 en, c3 en (run_of).
TEST(Decision, FeedbackRoundsListFixedAndBrokenCases) {
  EvalRun r = run_of({variant("base", "base", "0000", 20), variant("tuned", "adapter", "0110", 20),
                      variant("tuned+rag", "adapter+rag", "0100", 400), variant("tuned+dpo", "adapter", "1011", 20),
                      variant("tuned+dpo+rag", "adapter+rag", "0100", 400), variant("other", "adapter", "1111", 20)});
  Gates g;
  g.min_pass_rate = 0.75;
  auto d = decision_json(r, g);
  const auto& rounds = d["feedback_rounds"];
  ASSERT_EQ(rounds.size(), 2u) << rounds.dump();
  // tuned 0110 -> tuned+dpo 1011: fixed c0 and c3, broke c1.
  EXPECT_EQ(rounds[0]["variant"], "tuned+dpo");
  EXPECT_EQ(rounds[0]["parent"], "tuned");
  EXPECT_EQ(rounds[0]["fixed"], nlohmann::ordered_json::array({"c0", "c3"}));
  EXPECT_EQ(rounds[0]["broken"], nlohmann::ordered_json::array({"c1"}));
  EXPECT_EQ(rounds[0]["parent_passed"], 2);
  EXPECT_EQ(rounds[0]["passed"], 3);
  EXPECT_EQ(rounds[0]["per_tag"]["ko"]["fixed"], nlohmann::ordered_json::array({"c0"}));
  EXPECT_EQ(rounds[0]["per_tag"]["ko"]["broken"], nlohmann::ordered_json::array({"c1"}));
  EXPECT_EQ(rounds[0]["per_tag"]["en"]["fixed"], nlohmann::ordered_json::array({"c3"}));
  EXPECT_TRUE(rounds[0]["per_tag"]["en"]["broken"].empty());
  // With retrieval the round is compared with its parent's retrieval variant: nothing changed.
  EXPECT_EQ(rounds[1]["variant"], "tuned+dpo+rag");
  EXPECT_EQ(rounds[1]["parent"], "tuned+rag");
  EXPECT_TRUE(rounds[1]["fixed"].empty());
  EXPECT_TRUE(rounds[1]["broken"].empty());
  EXPECT_TRUE(rounds[1]["per_tag"].empty());
  // The round is a candidate like the others: at 0.75 tuned+dpo and other pass, other comes later.
  EXPECT_EQ(d["overall"]["passing"], nlohmann::ordered_json::array({"tuned+dpo", "other"}));
  EXPECT_EQ(d["overall"]["choice"], "tuned+dpo");
  EXPECT_NE(d["summary"].get<std::string>().find("tuned+dpo fixes 2 case(s) tuned failed and breaks 1"),
            std::string::npos) << d["summary"];

  // The longest parent wins; a name whose prefix is no adapter variant is no round.
  r = run_of({variant("tuned", "adapter", "0000", 20), variant("tuned+dpo", "adapter", "1000", 20),
              variant("tuned+dpo+kto", "adapter", "1100", 20), variant("x+dpo", "adapter", "1111", 20)});
  d = decision_json(r, g);
  ASSERT_EQ(d["feedback_rounds"].size(), 2u) << d["feedback_rounds"].dump();
  EXPECT_EQ(d["feedback_rounds"][1]["variant"], "tuned+dpo+kto");
  EXPECT_EQ(d["feedback_rounds"][1]["parent"], "tuned+dpo");
  EXPECT_EQ(d["feedback_rounds"][1]["fixed"], nlohmann::ordered_json::array({"c1"}));
}

}  // namespace
