// Reviewers' overrules (eval/overrules.h) on hand-made results: the verdict flips, every count that
// follows from pass/fail is recomputed (passed, pass rates, tags, fixed/broken against the reference),
// the assertions' own verdict is kept, the latest entry wins, unmatched entries change nothing, and a
// malformed file is an error naming the entry.
#include <gtest/gtest.h>

#include "lathe/core/file_io.h"
#include "lathe/eval/overrules.h"
#include "test_util.h"

namespace {

using namespace lathe::eval;
using nlohmann::json;

VariantResult variant(const std::string& name, const std::string& pass) {
  VariantResult v;
  v.name = name;
  for (char c : pass) {
    CaseOutput o;
    o.pass = c == '1';
    v.passed += o.pass;
    v.cases.push_back(o);
  }
  v.pass_rate = double(v.passed) / double(pass.size());
  return v;
}

EvalRun run_of() {
  EvalRun r;
  const char* tags[] = {"ko", "ko", "en", "en"};
  for (int i = 0; i < 4; i++) {
    EvalCase c;
    c.id = "c" + std::to_string(i);
    c.tags = {tags[i]};
    c.weight = i == 0 ? 3 : 1;
    r.suite.cases.push_back(c);
  }
  r.variants = {variant("base", "1100"), variant("tuned", "0110")};
  r.reference = "base";
  return r;
}

TEST(Overrules, FlipVerdictsAndRecomputeCounts) {
  EvalRun r = run_of();
  json o{{"format", "lathe-eval-overrules-v1"},
         {"overrules",
          {{{"case", "c0"}, {"variant", "tuned"}, {"pass", false}, {"reason", "first"}, {"reviewer", "A"}},
           {{"case", "c0"}, {"variant", "tuned"}, {"pass", true}, {"reason", "right after all"}, {"reviewer", "B"}},
           {{"case", "c3"}, {"variant", "tuned"}, {"pass", true}, {"reason", "paraphrase"}, {"reviewer", "B"}},
           {{"case", "nope"}, {"variant", "tuned"}, {"pass", true}},
           {{"case", "c1"}, {"variant", "other"}, {"pass", true}}}}};
  json unmatched = apply_overrules(r, o);
  EXPECT_EQ(unmatched.size(), 2u);
  const VariantResult& t = r.variants[1];
  EXPECT_TRUE(t.cases[0].pass);
  EXPECT_TRUE(t.cases[3].pass);
  EXPECT_EQ(t.cases[0].overrule["reviewer"], "B") << "the latest entry wins";
  EXPECT_EQ(t.cases[0].overrule["assertions_pass"], false);
  EXPECT_TRUE(t.cases[1].overrule.is_null());
  EXPECT_EQ(t.passed, 4);
  EXPECT_DOUBLE_EQ(t.pass_rate, 1.0);
  EXPECT_DOUBLE_EQ(t.weighted_pass_rate, 1.0);
  EXPECT_EQ(t.tags.at("en").passed, 2);
  EXPECT_EQ(t.fixed, 2);  // c2, c3 failed in base
  EXPECT_EQ(t.broken, 0);
  // The base is untouched.
  EXPECT_EQ(r.variants[0].passed, 2);
  EXPECT_DOUBLE_EQ(r.variants[0].weighted_pass_rate, 4.0 / 6.0);
}

TEST(Overrules, MalformedFilesNameTheEntry) {
  lathe::test::TempDir d;
  lathe::write_file_atomic(d / "o.json", R"({"format":"lathe-eval-overrules-v1","overrules":[{"case":"c0","variant":"t","pass":true},{"case":"c1","pass":"yes"}]})");
  EXPECT_NE(lathe::test::error_of([&] { load_overrules(d / "o.json"); }).find("overrules[1]"), std::string::npos);
  lathe::write_file_atomic(d / "p.json", R"({"overrules":[]})");
  EXPECT_NE(lathe::test::error_of([&] { load_overrules(d / "p.json"); }).find("not an overrules file"), std::string::npos);
}

}  // namespace
