// Test-file parsers (YAML suites and JSONL cases): every key read, and malformed files rejected with
// the file and line of the problem. The report: escaping, gates, and the JSON/HTML agreeing.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

#include "lathe/core/error.h"
#include "lathe/eval/report.h"
#include "lathe/eval/runner.h"
#include "lathe/eval/test_suite.h"

namespace {

using namespace lathe::eval;

using ::lathe::test::error_of;

const char* kSuite = R"(name: 환불 상담
generation:
  max_new_tokens: 32
  temperature: 0
  seed: 7
  stop: ["\n\n", "Q:"]
  template: plain
baseline:
  system: 당신은 친절한 상담원입니다.
  few_shot:
    - prompt: "Q: 교환 되나요?\nA:"
      response: " 네, 7일 이내에 가능합니다."
gates:
  min_pass_rate: 0.8
  max_forgetting: 0.1
cases:
  - id: refund
    prompt: "Q: 환불 되나요?\nA:"
    expected: 네, 가능합니다.
    tags: [refund, ko]
    weight: 2
    assert:
      - type: icontains
        value: 가능
      - {type: chrf, threshold: 0.4, weight: 3}
  - messages:
      - {role: system, content: Be brief.}
      - {role: user, content: "Hi"}
    expected: "Hello"
)";

TEST(SuiteParse, YamlReadsEveryKey) {
  EvalSuite s = parse_suite_yaml(kSuite, "s.yaml", ".");
  EXPECT_EQ(s.name, "환불 상담");
  EXPECT_EQ(s.generation.max_new_tokens, 32);
  EXPECT_EQ(s.generation.seed, 7u);
  EXPECT_EQ(s.generation.stop, (std::vector<std::string>{"\n\n", "Q:"}));
  EXPECT_EQ(s.generation.template_name, "plain");
  EXPECT_EQ(s.baseline.system, "당신은 친절한 상담원입니다.");
  ASSERT_EQ(s.baseline.few_shot.size(), 1u);
  EXPECT_EQ(s.baseline.few_shot[0].response, " 네, 7일 이내에 가능합니다.");
  EXPECT_DOUBLE_EQ(s.gates.min_pass_rate, 0.8);
  EXPECT_DOUBLE_EQ(s.gates.max_forgetting, 0.1);
  ASSERT_EQ(s.cases.size(), 2u);
  const EvalCase& c = s.cases[0];
  EXPECT_EQ(c.id, "refund");
  EXPECT_EQ(c.prompt, "Q: 환불 되나요?\nA:");
  EXPECT_EQ(c.expected, "네, 가능합니다.");
  EXPECT_EQ(c.tags, (std::vector<std::string>{"refund", "ko"}));
  EXPECT_EQ(c.weight, 2);
  ASSERT_EQ(c.asserts.size(), 2u);
  EXPECT_EQ(c.asserts[0].value, "가능");
  EXPECT_EQ(c.asserts[0].where, "s.yaml:23");
  EXPECT_EQ(c.asserts[1].threshold, 0.4);
  EXPECT_EQ(c.asserts[1].weight, 3);
  EXPECT_EQ(c.where, "s.yaml:17");
  // The second case: generated id, messages, and a default equals assertion from `expected`.
  EXPECT_EQ(s.cases[1].id, "case-2");
  EXPECT_EQ(s.cases[1].messages.size(), 2u);
  ASSERT_EQ(s.cases[1].asserts.size(), 1u);
  EXPECT_EQ(s.cases[1].asserts[0].type, "equals");
}

TEST(SuiteParse, QuotedScalarsStayStrings) {
  EvalSuite s = parse_suite_yaml("cases:\n  - prompt: \"1\"\n    expected: \"007\"\n  - prompt: x\n    expected: 7\n", "q.yaml", ".");
  EXPECT_EQ(s.cases[0].prompt, "1");
  EXPECT_EQ(s.cases[0].expected, "007");
  EXPECT_EQ(s.cases[1].expected, "7");
}

TEST(SuiteParse, YamlErrorsNameFileAndLine) {
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - prompt: [unclosed\n", "a.yaml", "."); }).find("a.yaml:"), std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - prompt: x\n    expectd: y\n", "b.yaml", "."); })
                .find("b.yaml:2: unknown key 'expectd' in a test case"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - id: a\n    prompt: x\n    assert:\n      - type: regex\n        value: \"(\"\n", "c.yaml", "."); })
                .find("c.yaml:5: regex '('"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - id: a\n    prompt: x\n    expected: y\n  - id: a\n    prompt: z\n    expected: y\n", "d.yaml", "."); })
                .find("d.yaml:5: duplicate case id 'a' (first at d.yaml:2)"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - prompt: x\n", "e.yaml", "."); })
                .find("e.yaml:2: a case needs 'expected' or at least one assertion"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("generation:\n  max_new_tokens: many\ncases: []\n", "f.yaml", "."); })
                .find("f.yaml:2: 'max_new_tokens' must be a number"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - prompt: x\n    messages: [{role: user, content: y}]\n    expected: z\n", "g.yaml", "."); })
                .find("g.yaml:2: give exactly one of 'prompt' or 'messages'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - messages: [{role: assistant, content: y}]\n    expected: z\n", "h.yaml", "."); })
                .find("h.yaml:2: the last message must be a user turn"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("name: x\n", "i.yaml", "."); }).find("i.yaml: the suite has no 'cases'"),
            std::string::npos);
  // Complex keys are valid YAML but name no field (yaml-cpp threw its bad-conversion exception here).
  EXPECT_NE(error_of([] { parse_suite_yaml("cases:\n  - prompt: x\n    ? [a, b]\n    : y\n", "j.yaml", "."); })
                .find("j.yaml:3: a mapping key must be a plain name"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_suite_yaml("{a: 1}: x\ncases: []\n", "k.yaml", "."); })
                .find("k.yaml:1: a mapping key must be a plain name"),
            std::string::npos);
}

TEST(SuiteParse, JsonlCasesAndErrors) {
  auto cases = parse_cases_jsonl(
      "{\"id\":\"k\",\"prompt\":\"서울은?\",\"expected\":\"수도\",\"assert\":[{\"type\":\"contains\"}],\"tags\":[\"geo\"]}\n\n"
      "{\"prompt\":\"x\",\"assert\":[{\"type\":\"length\",\"max\":3}]}\n",
      "c.jsonl");
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_EQ(cases[0].where, "c.jsonl:1");
  EXPECT_EQ(cases[1].where, "c.jsonl:3");
  EXPECT_EQ(cases[1].id, "case-2");
  EXPECT_EQ(cases[1].asserts[0].max, 3);
  EXPECT_NE(error_of([] { parse_cases_jsonl("{\"prompt\":\"x\",\"expected\":\"y\"}\n{oops\n", "bad.jsonl"); })
                .find("bad.jsonl:2: invalid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_cases_jsonl("{\"prompt\":\"x\",\"assert\":[{\"type\":\"chrf\"}]}\n", "bad.jsonl"); })
                .find("bad.jsonl:1: assertion 'chrf' needs a value"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_cases_jsonl("{\"prompt\":\"x\",\"expected\":\"y\",\"weight\":\"heavy\"}\n", "w.jsonl"); })
                .find("w.jsonl:1: 'weight' must be a number"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_cases_jsonl("\n", "empty.jsonl"); }).find("empty.jsonl: no test cases"), std::string::npos);
}

TEST(SuiteParse, CasesFileIsRelativeToTheSuite) {
  lathe::test::TempDir d;
  std::ofstream(d.path + "/cases.jsonl") << "{\"id\":\"a\",\"prompt\":\"p\",\"expected\":\"e\"}\n";
  std::ofstream(d.path + "/s.yaml") << "name: n\ngeneration: {max_new_tokens: 5}\ncases_file: cases.jsonl\n";
  EvalSuite s = load_suite(d.path + "/s.yaml");
  ASSERT_EQ(s.cases.size(), 1u);
  EXPECT_EQ(s.cases[0].where, d.path + "/cases.jsonl:1");
  EXPECT_EQ(s.generation.max_new_tokens, 5);
  std::ofstream(d.path + "/t.txt") << "x";
  EXPECT_NE(error_of([&] { load_suite(d.path + "/t.txt"); }).find("must be .yaml, .yml or .jsonl"), std::string::npos);
  std::ofstream(d.path + "/m.yaml") << "cases_file: missing.jsonl\n";
  EXPECT_NE(error_of([&] { load_suite(d.path + "/m.yaml"); }).find("m.yaml:1: cases_file"), std::string::npos);
}

TEST(Contamination, Normalization) {
  EXPECT_EQ(contamination_normalize("  Hello\n\tWORLD  "), "hello world");
  EXPECT_EQ(contamination_normalize("환불\u3000되나요"), "환불 되나요");  // ideographic space
}

// A run built by hand: two variants, two cases, so gates and the report can be checked exactly.
EvalRun fake_run() {
  EvalRun run;
  run.suite = parse_suite_yaml("name: \"<b>x</b>\"\ncases:\n  - id: a\n    prompt: \"<script>alert(1)</script>\"\n    expected: \"y & z\"\n"
                               "  - id: b\n    prompt: q\n    expected: w\n",
                               "s.yaml", ".");
  run.options.model_path = "m";
  run.options.adapters = {{"tuned", "/nonexistent"}};
  run.reference = "base";
  run.contamination = {{true, "train.jsonl:3"}, {}};
  for (const char* name : {"base", "tuned"}) {
    VariantResult v;
    v.name = name;
    v.kind = std::string(name) == "base" ? "base" : "adapter";
    for (int i = 0; i < 2; i++) {
      CaseOutput o;
      o.output = i == 0 ? "y & <z>" : "w";
      o.pass = v.kind == "adapter" ? i == 1 : false;
      o.results.push_back({"equals", o.pass, double(o.pass), o.pass ? "equal" : "differs"});
      o.score = o.pass;
      v.passed += o.pass;
      v.cases.push_back(o);
    }
    v.pass_rate = v.passed / 2.0;
    v.holdout = PerplexityResult{10, 1.0, v.kind == "base" ? 2.0 : 2.5};
    v.forgetting = v.holdout->ppl / 2.0 - 1;
    v.fixed = v.kind == "adapter";
    run.variants.push_back(v);
  }
  return run;
}

TEST(Report, GatesApplyToAdaptersAndListFailingCases) {
  EvalRun run = fake_run();
  Gates g;
  g.min_pass_rate = 0.5;
  EXPECT_TRUE(evaluate_gates(run, g).empty());  // tuned passes 1/2; the base is not a candidate
  g.min_pass_rate = 0.75;
  auto f = evaluate_gates(run, g);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].variant, "tuned");
  EXPECT_EQ(f[0].failing_cases, std::vector<std::string>{"a"});
  g.min_pass_rate = -1;
  g.max_forgetting = 0.2;  // tuned: 2.5 / 2.0 - 1 = 0.25
  f = evaluate_gates(run, g);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].gate, "max_forgetting");
  EXPECT_DOUBLE_EQ(f[0].value, 0.25);
}

TEST(Report, JsonAndHtmlCarryTheSameNumbersEscaped) {
  EvalRun run = fake_run();
  ReportInputs in;
  in.gates.min_pass_rate = 0.75;
  in.gate_failures = evaluate_gates(run, in.gates);
  auto j = report_json(run, in);
  EXPECT_EQ(j["variants"][1]["pass_rate"], 0.5);
  EXPECT_EQ(j["variants"][1]["fixed_vs_reference"], 1);
  EXPECT_TRUE(j["variants"][0]["fixed_vs_reference"].is_null());
  EXPECT_EQ(j["cases"][0]["contaminated"], true);
  EXPECT_EQ(j["contaminated_cases"], 1);
  EXPECT_EQ(j["gate"]["passed"], false);
  std::string html = report_html(j);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;x&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(html.find("Gate FAILED"), std::string::npos);
  EXPECT_NE(html.find("+25.0%"), std::string::npos);  // forgetting of tuned
  EXPECT_NE(html.find("train.jsonl:3"), std::string::npos);
  // The diff of "y & <z>" against "y & z" marks the inserted/deleted pieces, escaped.
  EXPECT_NE(html.find("<ins>"), std::string::npos);
  EXPECT_EQ(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

TEST(Report, TrainingCurveReadsMetricsRows) {
  auto rows = read_training_curve("/nonexistent/metrics.jsonl");
  EXPECT_TRUE(rows.empty());
}

}  // namespace
