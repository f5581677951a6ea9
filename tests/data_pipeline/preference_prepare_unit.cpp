// `lathe data prepare` on preference records, stage by stage: mapping to the stored form (explicit
// prompt, form kept) and refusing a mix of kinds by line; cleaning per sequence; dedup keyed by the
// pair or the prompt; records that share a prompt kept in one split; the whole pipeline's counts.
#include <fstream>
#include <set>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/data/clean.h"
#include "lathe/data/mapping.h"
#include "lathe/data/pipeline.h"
#include "lathe/data/preference_stage.h"
#include "lathe/formats/dataset_manifest.h"
#include "test_util.h"

namespace lathe::data {
namespace {

using nlohmann::json;

Record rec(const std::string& text, int line) {
  Record r;
  r.json = json::parse(text);
  r.source.file = "in.jsonl";
  r.source.line = line;
  r.id = "id" + std::to_string(line);
  return r;
}

std::vector<Record> recs(const std::vector<std::string>& lines) {
  std::vector<Record> v;
  for (size_t i = 0; i < lines.size(); i++) v.push_back(rec(lines[i], int(i) + 1));
  return v;
}

TEST(PreferencePrepare, MapsToTheStoredForm) {
  auto v = recs({R"({"prompt":"q1","chosen":"good","rejected":"bad","score":3})",
                 R"({"chosen":[{"role":"user","content":"q2"},{"role":"assistant","content":"yes"}],
                     "rejected":[{"role":"user","content":"q2"},{"role":"assistant","content":"no"}]})",
                 R"({"prompt":"q3","chosen":"only"})",  // malformed: dropped with its reason
                 R"({"unknown":1})"});
  StageCounts c("map");
  std::map<std::string, size_t> shapes;
  MappingOptions o;
  o.system_prompt = "Be kind.";
  EXPECT_EQ(map_records(v, o, c, shapes), DatasetKind::Paired);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].json, json::parse(R"({"prompt":"q1","chosen":"good","rejected":"bad"})"));  // extra fields go
  // The implicit prompt becomes explicit; a message-list prompt gets the system prompt.
  EXPECT_EQ(v[1].json, json::parse(R"({"prompt":[{"role":"system","content":"Be kind."},{"role":"user","content":"q2"}],
                                       "chosen":[{"role":"assistant","content":"yes"}],
                                       "rejected":[{"role":"assistant","content":"no"}]})"));
  EXPECT_EQ(shapes, (std::map<std::string, size_t>{{"paired", 1}, {"paired_implicit", 1}}));
  EXPECT_TRUE(c.reconciles());
  EXPECT_EQ(c.dropped["malformed paired preference record"], 1u);
  EXPECT_EQ(c.dropped["no known shape"], 1u);
  EXPECT_NE(c.examples["malformed paired preference record"][0].find("in.jsonl:3: malformed paired preference record: "
                                                                     "[record] paired preference record has no \"rejected\""),
            std::string::npos)
      << c.examples["malformed paired preference record"][0];

  auto k = recs({R"({"prompt":"q","completion":"c","label":1})", R"({"prompt_input_ids":[1],"completion_input_ids":[2],"label":false})"});
  StageCounts ck("map");
  EXPECT_EQ(map_records(k, {}, ck, shapes), DatasetKind::Unpaired);
  EXPECT_EQ(k[0].json["label"], true);
  auto s = recs({R"({"prompt":"q","completion":"c"})"});
  EXPECT_EQ(map_records(s, {}, ck, shapes), DatasetKind::Sft);
}

TEST(PreferencePrepare, AMixOfKindsIsAnErrorNamingTheLine) {
  auto err = [](const std::vector<std::string>& lines) {
    auto v = recs(lines);
    StageCounts c("map");
    std::map<std::string, size_t> shapes;
    return test::error_of([&] { map_records(v, {}, c, shapes); });
  };
  EXPECT_EQ(err({R"({"prompt":"q","chosen":"a","rejected":"b"})", R"({"x":1})",
                 R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})"}),
            "[data] in.jsonl:3: an SFT record among records of another kind (a paired preference record (chosen/rejected) "
            "at in.jsonl:1): a prepared dataset holds SFT records or one kind of preference records, not a mix; prepare "
            "them separately");
  EXPECT_NE(err({R"({"prompt":"q","chosen":"a","rejected":"b"})", R"({"prompt":"q","completion":"a","label":true})"})
                .find("in.jsonl:2: an unpaired preference record (completion/label) among"),
            std::string::npos);
  // A KTO record whose label is no boolean is prompt/completion SFT: the mix names it.
  EXPECT_NE(err({R"({"prompt":"q","completion":"a","label":true})", R"({"prompt":"q","completion":"a","label":"yes"})"})
                .find("in.jsonl:2: an SFT record among"),
            std::string::npos);
}

TEST(PreferencePrepare, CleaningWorksPerSequence) {
  CleanOptions o;
  // Texts of every part are normalised (zero-width characters, whitespace).
  auto v = recs({R"({"prompt":[{"role":"user","content":"Hello\u200b  there"}],
                     "chosen":[{"role":"assistant","content":"fine\u200b"}],"rejected":[{"role":"assistant","content":"bad"}]})"});
  StageCounts c("clean");
  clean_records(v, o, c);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].json["prompt"][0]["content"], "Hello there");
  EXPECT_EQ(v[0].json["chosen"][0]["content"], "fine");
  // A correction that repeats most of the served answer is no repetition: each sequence alone is fine,
  // though prompt + chosen + rejected together repeat two 30-word runs.
  std::string answer;
  for (int i = 0; i < 30; i++) answer += "word" + std::to_string(i) + " ";
  json pair{{"prompt", "Explain it."}, {"chosen", answer + "and more."}, {"rejected", answer}};
  EXPECT_EQ(filter_record(pair, o), std::nullopt);
  json joined{{"text", "Explain it.\n" + answer + "and more.\n" + answer}};
  EXPECT_NE(filter_record(joined, o), std::nullopt);  // what the whole text would have hit
  // Equal answers, an empty answer, an empty KTO completion.
  EXPECT_EQ(filter_record(json::parse(R"({"prompt":"q","chosen":"same","rejected":"same"})"), o), "chosen equals rejected");
  EXPECT_EQ(filter_record(json::parse(R"({"prompt":"q","chosen":"fine","rejected":"  "})"), o), "empty answer");
  EXPECT_EQ(filter_record(json::parse(R"({"prompt":"q","completion":"","label":true})"), o), "empty answer");
  EXPECT_EQ(filter_record(json::parse(R"({"prompt_input_ids":[1],"chosen_input_ids":[2],"rejected_input_ids":[2]})"), o),
            std::nullopt);
}

TEST(PreferencePrepare, DedupTextByPairOrPrompt) {
  json a = json::parse(R"({"prompt":[{"role":"user","content":"Q"}],"chosen":[{"role":"assistant","content":"A"}],
                           "rejected":[{"role":"assistant","content":"B"}]})");
  EXPECT_EQ(preference_dedup_text(a, false), "Q\nA\nB");
  EXPECT_EQ(preference_dedup_text(a, true), "Q");
  json k = json::parse(R"({"prompt":"Q","completion":"A","label":false})");
  EXPECT_EQ(preference_dedup_text(k, false), "Q\nA\nlabel undesirable");
  json t = json::parse(R"({"prompt_input_ids":[1,2],"chosen_input_ids":[3],"rejected_input_ids":[4]})");
  EXPECT_EQ(preference_dedup_text(t, false), "[1,2]\n[3]\n[4]");
  EXPECT_EQ(preference_dedup_text(t, true), "[1,2]");
}

TEST(PreferencePrepare, RecordsSharingAPromptFormOneSplitGroup) {
  auto v = recs({R"({"prompt":"What is two plus two?","chosen":"4","rejected":"5"})",
                 R"({"prompt":"Other question","chosen":"a","rejected":"b"})",
                 R"({"prompt":"what is  TWO plus two","chosen":"four","rejected":"five"})",  // the same prompt, normalised
                 R"({"prompt":"Third","chosen":"a","rejected":"b"})"});
  v[3].cluster = 1;  // a kept near-duplicate cluster with record 1
  EXPECT_EQ(group_by_prompt(v), 1u);
  EXPECT_EQ(v[0].cluster, 0);
  EXPECT_EQ(v[1].cluster, 1);
  EXPECT_EQ(v[2].cluster, 0);
  EXPECT_EQ(v[3].cluster, 1);
}

// The whole pipeline in-process: dedup keyed by the pair (default) keeps two different pairs of one
// prompt and drops a repeated pair; keyed by the prompt it keeps one record per prompt. Records
// sharing a prompt never straddle splits; counts reconcile; the output is the stored form.
TEST(PreferencePrepare, PipelineDedupAndSplits) {
  test::TempDir t;
  std::string lines;
  for (int i = 0; i < 30; i++) {
    const std::string q = "Question number " + std::to_string(i) + " about the refund policy of shop " + std::to_string(i * 7);
    lines += json{{"prompt", q}, {"chosen", "Answer " + std::to_string(i) + " is fourteen days."}, {"rejected", "No idea at all."}}.dump() + "\n";
    lines += json{{"prompt", q}, {"chosen", "Within fourteen days, variant " + std::to_string(i) + "."}, {"rejected", "Never, sorry."}}.dump() + "\n";
  }
  lines += json{{"prompt", "Question number 0 about the refund policy of shop 0"}, {"chosen", "Answer 0 is fourteen days."},
                {"rejected", "No idea at all."}}.dump() + "\n";  // line 61 repeats line 1
  std::ofstream(t / "in.jsonl") << lines;
  DataConfig cfg;
  cfg.inputs = {t / "in.jsonl"};
  cfg.output = t / "pair";
  cfg.dedup.near = false;
  cfg.split.ratios = {0.5, 0.25, 0.25};
  json r = run_pipeline(cfg);
  EXPECT_EQ(r["preference"], "paired");
  EXPECT_TRUE(r["totals"]["reconciles"].get<bool>()) << r["stages"].dump();
  EXPECT_EQ(r["totals"]["records_in"], 61);
  EXPECT_EQ(r["totals"]["records_kept"], 60);
  EXPECT_EQ(r["dedup"]["records_sharing_a_prompt"], 30);
  std::map<std::string, std::set<std::string>> split_of_prompt;
  size_t total = 0;
  for (const char* s : {"train", "validation", "test"}) {
    std::ifstream in(t / ("pair/" + std::string(s) + ".records.jsonl"));
    for (std::string line; std::getline(in, line);) {
      json j = json::parse(line);
      EXPECT_EQ(preference_shape_of(j), PreferenceShape::Paired) << line;
      split_of_prompt[j["prompt"]].insert(s);
      total++;
    }
  }
  EXPECT_EQ(total, 60u);
  for (auto& [p, splits] : split_of_prompt) EXPECT_EQ(splits.size(), 1u) << p;  // never straddles
  DatasetManifest m = read_dataset_manifest(t / "pair");
  EXPECT_EQ(m.preference, "paired");
  EXPECT_TRUE(m.split("train")->shards.empty());
  EXPECT_FALSE(m.tokenizer.has_value());

  cfg.output = t / "prompt";
  cfg.dedup.preference_key = "prompt";
  r = run_pipeline(cfg);
  EXPECT_EQ(r["totals"]["records_kept"], 30);
  EXPECT_TRUE(r["totals"]["reconciles"].get<bool>());
  EXPECT_EQ(r["stages"][4]["dropped"]["exact duplicate"], 31);
}

}  // namespace
}  // namespace lathe::data
