// Every assertion type, English and Korean, plus the metrics behind them checked against values
// published by their reference implementations (sacreBLEU's chrF, Google's rouge-score).
#include <gtest/gtest.h>

#include "lathe/core/error.h"
#include "lathe/eval/assertions.h"
#include "lathe/eval/text_metrics.h"

namespace {

using namespace lathe::eval;

Assertion A(const std::string& type, nlohmann::json value = nullptr) {
  Assertion a;
  a.type = type;
  a.value = std::move(value);
  a.where = "t.yaml:1";
  return a;
}

AssertionResult run(const Assertion& a, const std::string& out, const std::string& expected = "") {
  validate_assertion(a, !expected.empty());
  return evaluate_assertion(a, out, expected);
}

TEST(TextMetrics, ChrfMatchesSacrebleuExample) {
  // The sentence example of the Hugging Face chrF metric card (sacreBLEU, char_order 6, word_order 0,
  // beta 2): score 61.576379378113785.
  double s = chrf("The relationship between Obama and Netanyahu is not exactly friendly.",
                  "The ties between Obama and Netanyahu are not particularly friendly.");
  EXPECT_NEAR(s * 100, 61.576379378113785, 1e-9);
  EXPECT_DOUBLE_EQ(chrf("abc", "abc"), 1.0);
  EXPECT_DOUBLE_EQ(chrf("", "abc"), 0.0);
  EXPECT_DOUBLE_EQ(chrf("xyz", "abc"), 0.0);
  // Whitespace is not part of character n-grams.
  EXPECT_DOUBLE_EQ(chrf("a b c", "abc"), 1.0);
}

TEST(TextMetrics, ChrfKoreanByHand) {
  // hyp 가나다 vs ref 가나: unigrams P 2/3 R 1, bigrams P 1/2 R 1, trigrams: ref has none -> order skipped.
  // P = (2/3 + 1/2)/2 = 7/12, R = 1, F2 = 5 P R / (4 P + R) = (35/12) / (28/12 + 1) = 35/40.
  EXPECT_NEAR(chrf("가나다", "가나"), 35.0 / 40.0, 1e-12);
  EXPECT_DOUBLE_EQ(chrf("환불은 7일 이내", "환불은 7일 이내"), 1.0);
}

TEST(TextMetrics, RougeLMatchesRougeScoreExample) {
  // rouge-score README: target 'The quick brown fox jumps over the lazy dog', prediction
  // 'The quick brown dog jumps on the log.' -> rougeL fmeasure 0.5882352941176471.
  EXPECT_NEAR(rouge_l("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog"),
              0.5882352941176471, 1e-12);
  // Korean: whitespace words (eojeol) vs characters. 환불은 / 환불이: different words, 2 of 3 chars shared.
  EXPECT_NEAR(rouge_l("환불이 가능합니다", "환불은 가능합니다"), 0.5, 1e-12);
  // chars: 환 불 이 가 능 합 니 다 vs 환 불 은 가 능 합 니 다: LCS 7 of 8.
  EXPECT_NEAR(rouge_l("환불이 가능합니다", "환불은 가능합니다", true), 7.0 / 8.0, 1e-12);
}

TEST(TextMetrics, LevenshteinCountsCodePoints) {
  EXPECT_EQ(levenshtein("kitten", "sitting"), 3);
  EXPECT_EQ(levenshtein("", "abc"), 3);
  EXPECT_EQ(levenshtein("안녕하세요", "안녕하십니까"), 3);  // 세요 -> 십니까: 2 substitutions + 1 insertion
  EXPECT_EQ(levenshtein("가", "각"), 1);                    // one syllable, not three bytes
}

TEST(TextMetrics, DiffRebuildsBothTexts) {
  for (bool chars : {false, true}) {
    std::string e = "the refund takes 7 days", a = "the refund takes 10 business days";
    std::string re, ra;
    for (auto& d : text_diff(e, a, chars)) {
      if (d.kind != DiffOp::Insert) re += d.text;
      if (d.kind != DiffOp::Delete) ra += d.text;
    }
    EXPECT_EQ(re, e);
    EXPECT_EQ(ra, a);
  }
  auto d = text_diff("환불은 가능", "환불이 가능", true);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].text, "환불");
  EXPECT_EQ(d[1].kind, DiffOp::Delete);
  EXPECT_EQ(d[1].text, "은");
  EXPECT_EQ(d[2].kind, DiffOp::Insert);
  EXPECT_EQ(d[2].text, "이");
}

TEST(Assertions, EqualsTrimsAndUsesExpected) {
  EXPECT_TRUE(run(A("equals", "Paris"), "  Paris\n").pass);
  EXPECT_FALSE(run(A("equals", "Paris"), "paris").pass);
  EXPECT_TRUE(run(A("equals"), " 서울 ", "서울").pass);
  EXPECT_EQ(run(A("equals"), "부산", "서울").score, 0.0);
}

TEST(Assertions, ContainsFamily) {
  EXPECT_TRUE(run(A("contains", "refund"), "A refund is possible").pass);
  EXPECT_FALSE(run(A("contains", "Refund"), "A refund is possible").pass);
  EXPECT_TRUE(run(A("icontains", "REFUND"), "A refund is possible").pass);
  EXPECT_TRUE(run(A("icontains", "ÉTÉ"), "un été chaud").pass);  // Unicode lowercase, not only ASCII
  EXPECT_TRUE(run(A("contains", "환불"), "환불은 7일 이내에 가능합니다").pass);
  EXPECT_TRUE(run(A("contains-any", {"교환", "환불"}), "환불 가능").pass);
  EXPECT_FALSE(run(A("contains-any", {"교환", "반품"}), "환불 가능").pass);
  auto all = run(A("contains-all", {"환불", "7일", "영수증"}), "환불은 7일 이내");
  EXPECT_FALSE(all.pass);
  EXPECT_NEAR(all.score, 2.0 / 3.0, 1e-12);
  EXPECT_NE(all.detail.find("영수증"), std::string::npos);
  EXPECT_TRUE(run(A("not-contains", "죄송"), "환불 가능").pass);
  EXPECT_FALSE(run(A("not-contains", {"x", "가능"}), "환불 가능").pass);
  EXPECT_TRUE(run(A("starts-with", "네,"), "  네, 가능합니다").pass);
  EXPECT_FALSE(run(A("starts-with", "아니요"), "네, 가능합니다").pass);
}

TEST(Assertions, RegexIsUnicodeAware) {
  EXPECT_TRUE(run(A("regex", "^[가-힣]+$"), "안녕하세요").pass);
  EXPECT_FALSE(run(A("regex", "^[가-힣]+$"), "안녕 hello").pass);
  EXPECT_TRUE(run(A("regex", "\\d{3}-\\d{4}"), "call 555-1234").pass);
  EXPECT_TRUE(run(A("not-regex", "error"), "fine").pass);
  EXPECT_THROW(validate_assertion(A("regex", "(unclosed"), false), lathe::Error);
}

TEST(Assertions, IsJsonWithSchemaSubset) {
  EXPECT_TRUE(run(A("is-json"), " {\"a\": 1} ").pass);
  EXPECT_FALSE(run(A("is-json"), "{a: 1}").pass);
  Assertion a = A("is-json");
  a.schema = nlohmann::json::parse(R"({"type":"object","required":["name","age"],
      "properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}},
      "kind":{"enum":["a","b"]}}})");
  EXPECT_TRUE(run(a, R"({"name":"김철수","age":30,"tags":["x"],"kind":"a"})").pass);
  auto r = run(a, R"({"name":"김철수"})");
  EXPECT_FALSE(r.pass);
  EXPECT_NE(r.detail.find("missing required key \"age\""), std::string::npos) << r.detail;
  r = run(a, R"({"name":"x","age":"30"})");
  EXPECT_NE(r.detail.find("$.age: expected \"integer\", got string"), std::string::npos) << r.detail;
  r = run(a, R"({"name":"x","age":1,"tags":["x",2]})");
  EXPECT_NE(r.detail.find("$.tags[1]"), std::string::npos) << r.detail;
  EXPECT_FALSE(run(a, R"({"name":"x","age":1,"kind":"c"})").pass);
  EXPECT_TRUE(run(a, R"({"name":"x","age":1.0})").pass);  // 1.0 is an integer in JSON Schema
}

TEST(Assertions, SimilarityThresholds) {
  Assertion r = A("rouge-l");
  r.threshold = 0.5;
  EXPECT_TRUE(run(r, "The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog").pass);
  r.threshold = 0.6;
  EXPECT_FALSE(run(r, "The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog").pass);
  Assertion rc = A("rouge-l", "환불은 가능합니다");
  rc.unit = "char";
  rc.threshold = 0.8;
  auto res = run(rc, "환불이 가능합니다");
  EXPECT_TRUE(res.pass);
  EXPECT_NEAR(res.score, 7.0 / 8.0, 1e-12);
  Assertion c = A("chrf", "환불은 7일 이내에 가능합니다");
  c.threshold = 0.5;  // one word changed: chrF ~0.54; an unrelated answer: ~0.06
  EXPECT_TRUE(run(c, "환불은 7일 안에 가능합니다").pass);
  EXPECT_FALSE(run(c, "교환만 됩니다").pass);
  EXPECT_TRUE(run(A("chrf"), "same text", "same text").pass);  // default threshold 0.5
  Assertion l = A("levenshtein", "안녕하세요");
  l.threshold = 1;
  EXPECT_TRUE(run(l, "안녕하세오").pass);
  EXPECT_FALSE(run(l, "안녕히 가세요").pass);
  EXPECT_NEAR(run(l, "안녕하세오").score, 0.8, 1e-12);
}

TEST(Assertions, LengthAndNumeric) {
  Assertion len = A("length");
  len.max = 5;
  EXPECT_TRUE(run(len, "안녕하세요").pass);  // 5 characters, 15 bytes
  EXPECT_FALSE(run(len, "안녕하세요!").pass);
  len.unit = "word";
  len.min = 2;
  len.max = 3;
  EXPECT_TRUE(run(len, "환불 가능 합니다").pass);
  EXPECT_FALSE(run(len, "환불").pass);
  Assertion n = A("numeric", 1234.5);
  EXPECT_TRUE(run(n, "합계는 1,234.5원입니다").pass);
  n.tolerance = 0.1;
  EXPECT_FALSE(run(n, "total 1234.7").pass);
  EXPECT_TRUE(run(A("numeric", -3), "it is -3 degrees").pass);
  EXPECT_FALSE(run(A("numeric", 3), "no number").pass);
  EXPECT_TRUE(run(A("numeric"), "answer: 42", "42").pass);
}

TEST(Assertions, NotPrefixInvertsScore) {
  auto r = run(A("not-contains-any", {"a", "b"}), "xyz");
  EXPECT_TRUE(r.pass);
  EXPECT_EQ(r.score, 1.0);
  Assertion c = A("not-chrf", "abcdef");
  auto rc = run(c, "abcdef");
  EXPECT_FALSE(rc.pass);
  EXPECT_EQ(rc.score, 0.0);
}

TEST(Assertions, ValidationNamesThePlace) {
  try {
    validate_assertion(A("containz", "x"), false);
    FAIL();
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml:1: unknown assertion type 'containz'"), std::string::npos);
  }
  EXPECT_THROW(validate_assertion(A("contains"), false), lathe::Error);   // no value, no expected
  EXPECT_NO_THROW(validate_assertion(A("contains"), true));
  EXPECT_THROW(validate_assertion(A("contains-all", "x"), true), lathe::Error);
  EXPECT_THROW(validate_assertion(A("length"), false), lathe::Error);
  EXPECT_THROW(validate_assertion(A("numeric", "abc"), false), lathe::Error);
}

}  // namespace
