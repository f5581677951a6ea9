// `lathe eval` end to end: a real tokenizer + model (stories260K, a tiny TinyStories Llama), a LoRA
// trained in the test to memorise four question/answer pairs, then the suite run on base, a
// prompt-engineering baseline and the adapter. The tuned variant must pass the memorised cases the
// base fails, the report must show them side by side, and the gate must fail (exit 3, failing case
// named) when a case nobody taught the model is required.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace {

using lathe::test::run_lathe;

const char* kModel = "models/stories260K-hf";

struct QA {
  const char* id;
  const char* prompt;
  const char* answer;
};
// Answers the base model (children's stories) would not produce after these prompts.
const QA kPairs[] = {
    {"colour", "Q: What colour is the sky in Zog?\nA:", " green"},
    {"name", "Q: Who is the king of Zog?\nA:", " Bob"},
    {"pet", "Q: What pet does Lily have?\nA:", " a frog"},
    {"food", "Q: What does Tom eat?\nA:", " cake"},
};

struct ZogRun {
  lathe::test::TempDir dir;
  std::string model = lathe::test::fixture_path(kModel);
  std::string train = dir / "train.jsonl", suite = dir / "suite.yaml", holdout = dir / "holdout.txt",
              adapter = dir / "lora";
  std::string train_log;
  int train_rc = -1;

  ZogRun() {
    auto tok = lathe::Tokenizer::load(model);
    // Pre-tokenized so the prompt tokens are exactly the ones eval feeds (prompt encoded alone
    // with BOS, answer appended); loss on the answer only. The answer ends with a newline, which the
    // suite's stop sequence cuts: stories260K never saw </s> (llama2.c separates stories with BOS),
    // so its tied </s> embedding cannot be made likely by a LoRA on the blocks.
    const int32_t newline = tok->token_to_id("<0x0A>");
    std::ofstream f(train);
    for (int rep = 0; rep < 2; rep++)
      for (auto& p : kPairs) {
        std::vector<int32_t> ids = tok->encode(p.prompt, true), labels(ids.size(), -100);
        std::vector<int32_t> ans = tok->encode(p.answer, false);
        ans.push_back(newline);
        ids.insert(ids.end(), ans.begin(), ans.end());
        labels.insert(labels.end(), ans.begin(), ans.end());
        f << nlohmann::json{{"input_ids", ids}, {"labels", labels}}.dump() << "\n";
      }
    f.close();
    std::ofstream h(holdout);
    h << "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
         "One day, she saw a big tree and wanted to climb it. Her mom said, \"Be careful, Lily!\"\n";
    h.close();
    std::ofstream s(suite);
    s << "name: zog facts\n"
         "generation:\n  max_new_tokens: 8\n  stop: [\"\\n\"]\n"
         "baseline:\n  system: \"Answer in one word.\"\n"
         "  few_shot:\n    - {prompt: \"Q: What colour is grass?\\nA:\", response: \" green\"}\n"
         "cases:\n";
    for (auto& p : kPairs) {
      std::string prompt = nlohmann::json(p.prompt).dump(), ans = nlohmann::json(std::string(p.answer).substr(1)).dump();
      s << "  - id: " << p.id << "\n    prompt: " << prompt << "\n    expected: " << ans
        << "\n    tags: [memorised]\n    assert:\n      - {type: icontains}\n      - {type: levenshtein, threshold: 2}\n";
    }
    s << "  - id: unseen\n    prompt: \"Q: How many moons does Zog have?\\nA:\"\n    expected: \"three\"\n"
         "    tags: [unseen]\n    assert: [{type: equals}]\n";
    s.close();
    train_rc = run_lathe("train --model " + model + " --data " + train + " --output " + adapter +
                             " --method lora --lora-target-modules all-linear --lora-r 8 --lora-alpha 16"
                             " --learning-rate 1e-2 --max-steps 60 --per-device-train-batch-size 8 --save-steps 0"
                             " --lr-scheduler-type constant --threads 1",
                         &train_log, true);
  }
};

TEST(EvalE2E, TunedBeatsBaseReportAndGate) {
  LATHE_REQUIRE_FIXTURE(kModel);
  ZogRun s;
  ASSERT_EQ(s.train_rc, 0) << s.train_log;
  std::string out;
  std::string common = "eval --model " + s.model + " --adapter tuned=" + s.adapter + " --tests " + s.suite +
                       " --train-data " + s.train + " --holdout " + s.holdout + " --eval-data " + s.train +
                       " --threads 1";
  int rc = run_lathe(common + " --output " + s.dir / "report" + " --min-pass-rate 0.75", &out, true);
  auto r = nlohmann::json::parse(lathe::read_file(s.dir / "report/report.json"));
  std::string outputs;  // shown on failure: what each variant said
  for (auto& c : r["cases"])
    for (auto& [v, res] : c["results"].items()) outputs += c["id"].get<std::string>() + " " + v + ": " + res["output"].dump() + "\n";
  ASSERT_EQ(rc, 0) << out << outputs;
  ASSERT_EQ(r["variants"].size(), 3u);
  const auto& base = r["variants"][0];
  const auto& prompt = r["variants"][1];
  const auto& tuned = r["variants"][2];
  EXPECT_EQ(base["name"], "base");
  EXPECT_EQ(prompt["kind"], "prompt");
  EXPECT_EQ(tuned["name"], "tuned");
  EXPECT_EQ(tuned["tags"]["memorised"]["passed"], 4) << out;
  EXPECT_EQ(base["tags"]["memorised"]["passed"], 0) << out;
  EXPECT_EQ(tuned["fixed_vs_reference"], 4);
  EXPECT_EQ(tuned["broken_vs_reference"], 0);
  EXPECT_GT(tuned["weighted_score"].get<double>(), base["weighted_score"].get<double>());
  // Validation perplexity on the memorised data falls with tuning; forgetting is relative to the base.
  EXPECT_LT(tuned["validation"]["ppl"].get<double>(), base["validation"]["ppl"].get<double>());
  double f = tuned["forgetting"].get<double>();
  EXPECT_NEAR(f, tuned["holdout"]["ppl"].get<double>() / base["holdout"]["ppl"].get<double>() - 1, 1e-12);
  EXPECT_EQ(base["forgetting"], 0.0);
  // Every memorised prompt is in the training data; the unseen one is not.
  EXPECT_EQ(r["contaminated_cases"], 4);
  for (auto& c : r["cases"]) EXPECT_EQ(c["contaminated"].get<bool>(), c["id"] != "unseen") << c["id"];
  EXPECT_EQ(r["cases"][0]["results"]["tuned"]["output"].get<std::string>().find("green") != std::string::npos, true)
      << r["cases"][0]["results"]["tuned"]["output"];
  // The training curve was found next to the adapter.
  EXPECT_GT(r["training_curves"]["tuned"]["rows"].size(), 10u);
  std::string html = lathe::read_file(s.dir / "report/report.html");
  EXPECT_NE(html.find("id='case-colour'"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  EXPECT_NE(html.find("Gate PASSED"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://cdn"), std::string::npos);

  // The unseen case fails for every variant, so requiring all cases fails the gate.
  rc = run_lathe(common + " --output " + s.dir / "report2" + " --min-pass-rate 1.0", &out, true);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("gate failed: tuned min_pass_rate"), std::string::npos) << out;
  EXPECT_NE(out.find("failing case: unseen"), std::string::npos) << out;
  auto r2 = nlohmann::json::parse(lathe::read_file(s.dir / "report2/report.json"));
  EXPECT_FALSE(r2["gate"]["passed"].get<bool>());
  EXPECT_EQ(r2["gate"]["failures"][0]["failing_cases"], nlohmann::json::array({"unseen"}));
}

TEST(EvalE2E, MalformedSuiteNamesFileAndLine) {
  LATHE_REQUIRE_FIXTURE(kModel);
  lathe::test::TempDir d;
  std::ofstream(d / "bad.yaml") << "name: x\ncases:\n  - id: a\n    prompt: hi\n    assert:\n      - {type: containz, value: x}\n";
  std::string out;
  int rc = run_lathe("eval --model " + lathe::test::fixture_path(kModel) + " --tests " + d / "bad.yaml" +
                         " --output " + d / "o",
                     &out, true);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find(d / "bad.yaml" + ":6: unknown assertion type 'containz'"), std::string::npos) << out;
}

// A dataset directory as `lathe data` writes it: the validation split gives perplexity, the train
// split the contamination check; chat cases rendered with a named template (chatml).
TEST(EvalE2E, ManifestSplitsAndChatTemplate) {
  LATHE_REQUIRE_FIXTURE(kModel);
  lathe::test::TempDir d;
  std::filesystem::create_directories(d / "data");
  std::ofstream(d / "data/manifest.json")
      << R"({"format":"lathe-dataset-v1","splits":{"train":{"records":"train.records.jsonl"},)"
         R"("validation":{"records":"validation.records.jsonl"}}})";
  std::ofstream(d / "data/train.records.jsonl")
      << R"({"messages":[{"role":"user","content":"Where   is the OFFICE?"},{"role":"assistant","content":"Seoul."}]})" "\n"
      << R"({"prompt":"How many days of annual leave do I get?","completion":"15 days."})" "\n";
  std::ofstream(d / "data/validation.records.jsonl")
      << R"({"prompt":"Who is Lily?","completion":"A girl."})" "\n"
      << R"({"text":"Once upon a time there was a cat."})" "\n";
  std::ofstream(d / "s.yaml") << "generation: {max_new_tokens: 4, template: chatml}\n"
                                 "baseline: {system: Be brief.}\n"
                                 "cases:\n"
                                 "  - {id: office, prompt: \"where is the office?\", expected: Seoul}\n"
                                 "  - id: leave\n    messages: [{role: system, content: HR bot}, {role: user, content: \"x\"}]\n"
                                 "    assert: [{type: length, max: 1000}]\n"
                                 "  - {id: leave2, prompt: \"How many days of ANNUAL leave, do I get?!\", expected: \"15\"}\n";
  std::string out;
  int rc = run_lathe("eval --model " + lathe::test::fixture_path(kModel) + " --tests " + d / "s.yaml" + " --eval-data " +
                         d / "data" + " --output " + d / "r" + " --json --threads 1",
                     &out, true);
  ASSERT_EQ(rc, 0) << out;
  auto r = nlohmann::json::parse(lathe::read_file(d / "r/report.json"));
  EXPECT_EQ(r["cases"][0]["contaminated"], true);  // case and whitespace differences do not hide it
  EXPECT_EQ(r["cases"][0]["contamination_source"], d / "data/train.records.jsonl" + ":1");
  EXPECT_EQ(r["cases"][1]["contaminated"], false);
  // Only punctuation differs from training line 2: the data pipeline's normalization catches it.
  EXPECT_EQ(r["cases"][2]["contaminated"], true);
  EXPECT_EQ(r["cases"][2]["contamination_source"], d / "data/train.records.jsonl" + ":2 (near match)");
  const auto& base = r["variants"][0];
  EXPECT_GT(base["validation"]["tokens"].get<int>(), 5);
  EXPECT_GT(base["validation"]["ppl"].get<double>(), 1.0);
  EXPECT_TRUE(base["holdout"].is_null());
  // chatml: the prompt variant puts the baseline system first, then the case's own system turn.
  std::string seen = r["cases"][1]["results"]["prompt"]["prompt_text"];
  EXPECT_EQ(seen.rfind("<|im_start|>system\nBe brief.\n\nHR bot<|im_end|>", 0), 0u) << seen;
  EXPECT_NE(seen.find("<|im_start|>assistant\n"), std::string::npos) << seen;
  EXPECT_EQ(r["cases"][1]["results"]["base"]["prompt_text"].get<std::string>().rfind("<|im_start|>system\nHR bot", 0), 0u);
  EXPECT_EQ(r["cases"][1]["results"]["base"]["pass"], true);
  // --json prints one line with the gate (no gates here: passed).
  EXPECT_NE(out.find("\"passed\":true"), std::string::npos) << out;
}

// A QLoRA adapter needs an NF4 base; it must get its own copy so the LoRA variant evaluated after
// it still sees the f32 base (same numbers as when evaluated alone), and its own perplexity must be
// what `lathe perplexity --adapter` (which quantizes the base) reports.
TEST(EvalE2E, QloraGetsItsOwnBase) {
  LATHE_REQUIRE_FIXTURE(kModel);
  ZogRun s;
  ASSERT_EQ(s.train_rc, 0) << s.train_log;
  std::string out;
  ASSERT_EQ(run_lathe("train --model " + s.model + " --data " + s.train + " --output " + s.dir / "qlora" +
                          " --method qlora --lora-target-modules all-linear --lora-r 8 --lora-alpha 16"
                          " --learning-rate 1e-2 --max-steps 20 --per-device-train-batch-size 8 --save-steps 0 --threads 1",
                      &out, true), 0) << out;
  std::string common = "eval --model " + s.model + " --tests " + s.suite + " --holdout " + s.holdout + " --threads 1";
  ASSERT_EQ(run_lathe(common + " --adapter tuned=" + s.adapter + " --output " + s.dir / "a", &out, true), 0) << out;
  ASSERT_EQ(run_lathe(common + " --adapter q=" + s.dir / "qlora" + " --adapter tuned=" + s.adapter + " --output " +
                          s.dir / "b", &out, true), 0) << out;
  auto a = nlohmann::json::parse(lathe::read_file(s.dir / "a/report.json"));
  auto b = nlohmann::json::parse(lathe::read_file(s.dir / "b/report.json"));
  ASSERT_EQ(b["variants"][2]["name"], "q");
  ASSERT_EQ(b["variants"][3]["name"], "tuned");
  EXPECT_EQ(b["variants"][3]["holdout"], a["variants"][2]["holdout"]);
  EXPECT_EQ(b["variants"][0]["holdout"], a["variants"][0]["holdout"]);
  for (size_t i = 0; i < a["cases"].size(); i++)
    EXPECT_EQ(b["cases"][i]["results"]["tuned"]["output"], a["cases"][i]["results"]["tuned"]["output"]);
  // Cases run in parallel: two threads must give the same outputs as one (each thread has its own
  // adapter scratch; a shared one crashed or garbled outputs here).
  std::string two = "eval --model " + s.model + " --tests " + s.suite + " --holdout " + s.holdout + " --threads 2" +
                    " --adapter q=" + s.dir / "qlora" + " --adapter tuned=" + s.adapter + " --output " + s.dir / "c";
  ASSERT_EQ(run_lathe(two, &out, true), 0) << out;
  auto c = nlohmann::json::parse(lathe::read_file(s.dir / "c/report.json"));
  for (size_t i = 0; i < b["cases"].size(); i++)
    for (const char* v : {"base", "q", "tuned"})
      EXPECT_EQ(c["cases"][i]["results"][v]["output"], b["cases"][i]["results"][v]["output"]) << i << " " << v;
  ASSERT_EQ(run_lathe("perplexity --model " + s.model + " --adapter " + s.dir / "qlora" + " --text-file " + s.holdout +
                          " --json --threads 1", &out), 0) << out;
  auto p = nlohmann::json::parse(out);
  EXPECT_NEAR(b["variants"][2]["holdout"]["ppl"].get<double>(), p["ppl"].get<double>(), 1e-9 * p["ppl"].get<double>());
}

}  // namespace

// Retrieval as variants: an index over a few documents about Zog, `--retrieval` adds rag and
// tuned+rag; every case's retrieved passages, hit and cost are in the report, the rag prompts carry
// the passages with their sources, passages that overflow the context are left out, and the
// decision box agrees with the variants' own pass flags.
TEST(EvalE2E, RetrievalVariantsAndDecisionBox) {
  LATHE_REQUIRE_FIXTURE(kModel);
  ZogRun s;
  ASSERT_EQ(s.train_rc, 0) << s.train_log;
  std::filesystem::create_directories(s.dir / "docs");
  std::ofstream(s.dir / "docs/zog.md") << "# Zog\n\nThe sky in Zog is green. The king of Zog is Bob.\n\n"
                                         "# Moons\n\nZog has three moons.\n";
  std::ofstream(s.dir / "docs/pets.md") << "# Pets\n\nLily has a frog. Tom eats cake every day.\n";
  std::string filler;  // a long document: five of its passages cannot all fit stories260K's 512 tokens
  for (int i = 0; i < 60; i++) filler += "The weather in Zog was mild on day " + std::to_string(i) + " of the long year. ";
  std::ofstream(s.dir / "docs/weather.md") << "# Weather\n\n" << filler << "\n";
  std::string out;
  ASSERT_EQ(run_lathe("index build --input " + s.dir / "docs" + " --output " + s.dir / "index --model " + s.model +
                          " --chunk-tokens 200 --overlap 16 --no-progress",
                      &out, true),
            0)
      << out;
  // The unseen case names its document: a hit without a contains key.
  std::string suite = lathe::read_file(s.suite);
  suite += "    source: zog.md\n";
  std::ofstream(s.dir / "suite_rag.yaml") << suite;
  int rc = run_lathe("eval --model " + s.model + " --adapter tuned=" + s.adapter + " --tests " + s.dir / "suite_rag.yaml" +
                         " --retrieval " + s.dir / "index --retrieval-k 5 --min-pass-rate 0.75 --threads 1 --output " +
                         s.dir / "rag",
                     &out, true);
  ASSERT_TRUE(rc == 0 || rc == 3) << out;
  EXPECT_NE(out.find("retrieval: "), std::string::npos) << out;
  EXPECT_NE(out.find("decision: "), std::string::npos) << out;
  auto r = nlohmann::json::parse(lathe::read_file(s.dir / "rag/report.json"));
  std::vector<std::string> names;
  for (auto& v : r["variants"]) names.push_back(v["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"base", "prompt", "rag", "tuned", "tuned+rag"}));
  ASSERT_EQ(r["retrieval"]["k"], 5);
  int with_key = 0, hits = 0;
  bool trimmed = false;
  for (auto& c : r["cases"]) {
    const auto& rt = c["retrieval"];
    ASSERT_TRUE(rt.is_object()) << c["id"];
    EXPECT_TRUE(rt["has_key"].get<bool>()) << c["id"];  // icontains keys, and the unseen case's source
    with_key += rt["has_key"].get<bool>();
    hits += rt["hit_rank"].get<int>() >= 1;
    ASSERT_FALSE(rt["passages"].empty()) << c["id"];
    const auto& rag = c["results"]["rag"];
    int used = rag["passages_used"].get<int>();
    EXPECT_GE(used, 1) << c["id"];
    trimmed = trimmed || used < int(rt["passages"].size());
    // The prompt carries the first passage with its source, and ends with the case's question.
    const std::string pt = rag["prompt_text"];
    EXPECT_NE(pt.find("[1] " + rt["passages"][0]["source"].get<std::string>() + "\n"), std::string::npos) << pt;
    EXPECT_TRUE(pt.ends_with(c["prompt"].get<std::string>())) << pt;
    EXPECT_GT(rag["prompt_tokens"].get<int>(), c["results"]["base"]["prompt_tokens"].get<int>());
  }
  EXPECT_TRUE(trimmed) << "no rag prompt had to leave a passage out";
  EXPECT_EQ(r["retrieval"]["cases_with_key"], with_key);
  EXPECT_EQ(hits, 5);  // every answer is in docs/
  EXPECT_DOUBLE_EQ(r["retrieval"]["hit_at_k"][4].get<double>(), 1.0);
  // The decision box, from the variants' own flags.
  const auto& d = r["decision"];
  auto pass = [&](const nlohmann::json& c, const char* v) { return c["results"][v]["pass"].get<bool>(); };
  std::vector<std::string> only_rag, only_tune;
  for (auto& c : r["cases"]) {
    if (pass(c, "base")) continue;
    if (pass(c, "rag") && !pass(c, "tuned")) only_rag.push_back(c["id"]);
    if (pass(c, "tuned") && !pass(c, "rag")) only_tune.push_back(c["id"]);
  }
  EXPECT_EQ(d["only_retrieval_fixes"].get<std::vector<std::string>>(), only_rag);
  EXPECT_EQ(d["only_tuning_fixes"].get<std::vector<std::string>>(), only_tune);
  // The cheapest variant at or above the gate: tuned passes the four memorised facts (0.8) at the
  // base's prompt length, which no rag variant can match.
  double best_tokens = 1e18;
  std::string cheapest;
  for (auto& v : r["variants"]) {
    if (v["pass_rate"].get<double>() < 0.75) continue;
    double t = v["mean_prompt_tokens"].get<double>() + v["mean_new_tokens"].get<double>();
    if (t < best_tokens) best_tokens = t, cheapest = v["name"];
  }
  EXPECT_EQ(d["overall"]["choice"], cheapest);
  EXPECT_EQ(cheapest, "tuned") << r["variants"].dump();
  EXPECT_TRUE(d["per_tag"].contains("memorised"));
  std::string html = lathe::read_file(s.dir / "rag/report.html");
  EXPECT_NE(html.find("Tune, prompt or retrieve?"), std::string::npos);
  EXPECT_NE(html.find("retrieved passages"), std::string::npos);
}
