// Served feedback → preference data through the real binaries: a SQLite feedback store filled as the
// server fills it (FeedbackStore), `lathe feedback export --format dpo|kto`, then `lathe data prepare`
// on the exported file: counts that reconcile at both steps, personal data gone from prompt, chosen
// and rejected, the stored shapes the preference trainer reads, and a mixed file refused by line.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/records/record_format.h"
#include "lathe/records/record_shape.h"
#include "lathe/serve/feedback_store.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

using lathe::test::run_lathe;
using nlohmann::json;

namespace {

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> v;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) v.push_back(json::parse(line));
  return v;
}

// Eight rated chat completions: corrections with personal data in the question, the answer and the
// correction; two completions of one question; a thumbs-up; an adapter's; a confirmation; one served
// with prompt logging off.
void fill_store(const std::string& dir) {
  lathe::serve::FeedbackStore s(dir);
  int n = 0;
  auto add = [&](const std::string& user, std::optional<std::string> answer, int rating, const char* correction,
                 const std::string& adapter = "") {
    lathe::serve::CompletionRecord c;
    c.id = "chatcmpl-" + std::to_string(++n);
    c.created = 1700000000 + n;
    c.model = "base";
    c.adapter = adapter;
    c.kind = "chat";
    if (answer) c.request_json = json::array({{{"role", "user"}, {"content", user}}}).dump();
    c.answer = std::move(answer);
    s.add_completion(c);
    lathe::serve::FeedbackRecord f;
    f.completion_id = c.id;
    f.rating = rating;
    f.created = 1700000100 + n;
    if (correction) f.correction = correction;
    s.add_feedback(f);
  };
  add("My email is kim.minsu@example.com. When can I ask for a refund?", "Call 010-1234-5678 any time you like.", -1,
      "Within 14 days of purchase; write to help@shop-example.com for the form.");
  add("What is the capital of France?", "Lyon, the city of lights.", -1, "Paris is the capital of France.");
  add("What is the capital of France?", "Marseille, on the coast.", -1, "The capital of France is Paris.");
  add("How many legs does a spider have?", "Eight legs, arranged in four pairs.", 1, nullptr);
  add("Name a primary colour.", "Green is a primary colour of paint.", -1, "Red is a primary colour of paint.", "tuned");
  add("Is water wet?", "Water makes things wet.", 1, "Water makes things wet.");
  add("Secret question", std::nullopt, -1, "unseen");
  add("Translate 'gato' into English.", "It means dog in English.", -1, "It means cat in English.");
}

json export_json(const std::string& args) {
  std::string out;
  EXPECT_EQ(run_lathe("feedback export " + args + " --json", &out), 0) << out;
  return json::parse(out);
}

int skipped_sum(const json& s) {
  int n = 0;
  for (auto& [k, v] : s["skipped"].items()) n += v.get<int>();
  return n;
}

}  // namespace

TEST(PreferencePrepareE2E, DpoExportThroughPrepare) {
  lathe::test::TempDir t;
  fill_store(t / "data");
  json sum = export_json("--data-dir " + t / "data" + " --format dpo --output " + t / "pairs.jsonl");
  EXPECT_EQ(sum["rated"], 8);
  EXPECT_EQ(sum["used"], 5);
  EXPECT_EQ(sum["written"], 5);
  EXPECT_EQ(sum["rated"].get<int>(), sum["used"].get<int>() + skipped_sum(sum));
  EXPECT_EQ(sum["skipped"], json::parse(R"({"correction equals the answer":1,"no correction":1,"no logged request":1})"));
  EXPECT_TRUE(sum["reconciles"].get<bool>());
  auto pairs = read_jsonl(t / "pairs.jsonl");
  ASSERT_EQ(pairs.size(), 5u);
  EXPECT_EQ(pairs[0]["chosen"][0]["content"], "Within 14 days of purchase; write to help@shop-example.com for the form.");
  EXPECT_EQ(pairs[0]["rejected"][0]["content"], "Call 010-1234-5678 any time you like.");

  // Prepare: personal data redacted in prompt, chosen and rejected; every pair accounted for.
  std::string log;
  ASSERT_EQ(run_lathe("data prepare --input " + t / "pairs.jsonl" + " --output " + t / "ds" + " --split 1,0,0 --pii redact", &log, true), 0)
      << log;
  EXPECT_NE(log.find("kept 5 of 5 preference pairs"), std::string::npos) << log;
  json report = json::parse(lathe::read_file(t / "ds/report.json"));
  EXPECT_EQ(report["preference"], "paired");
  EXPECT_TRUE(report["totals"]["reconciles"].get<bool>()) << report["stages"].dump();
  EXPECT_EQ(report["totals"]["records_in"], sum["written"]);
  EXPECT_EQ(report["dedup"]["records_sharing_a_prompt"], 1);  // the two France pairs
  EXPECT_GE(report["pii"]["hits"]["EMAIL"].get<int>(), 2);
  EXPECT_GE(report["pii"]["hits"]["PHONE"].get<int>(), 1);
  const std::string body = lathe::read_file(t / "ds/train.records.jsonl");
  for (const char* secret : {"kim.minsu@example.com", "help@shop-example.com", "010-1234-5678"})
    EXPECT_EQ(body.find(secret), std::string::npos) << secret << " in " << body;
  auto prepared = read_jsonl(t / "ds/train.records.jsonl");
  ASSERT_EQ(prepared.size(), 5u);
  json redacted;
  for (auto& r : prepared) {
    ASSERT_EQ(lathe::preference_shape_of(r), lathe::PreferenceShape::Paired) << r;
    EXPECT_FALSE(r.contains("completion_id"));  // metadata is not training data
    lathe::PreferenceMessages m = lathe::preference_messages(r, lathe::PreferenceShape::Paired);
    EXPECT_TRUE(m.conversational);
    if (m.prompt[0]["content"].get<std::string>().find("refund") != std::string::npos) redacted = r;
  }
  ASSERT_TRUE(redacted.is_object()) << body;
  EXPECT_NE(redacted["prompt"][0]["content"].get<std::string>().find("[EMAIL]"), std::string::npos) << redacted;
  EXPECT_NE(redacted["chosen"][0]["content"].get<std::string>().find("[EMAIL]"), std::string::npos) << redacted;
  EXPECT_NE(redacted["rejected"][0]["content"].get<std::string>().find("[PHONE]"), std::string::npos) << redacted;
  lathe::DatasetManifest m = lathe::read_dataset_manifest(t / "ds");
  EXPECT_EQ(m.preference, "paired");
  EXPECT_TRUE(m.split("train")->shards.empty());
  EXPECT_EQ(m.split("train")->records_count, 5u);

  // The preference trainer reads the prepared records file as it is.
  if (lathe::test::has_fixture("models/stories260K-hf/tokenizer.json")) {
    ASSERT_EQ(run_lathe("train --method dpo --model " + lathe::test::fixture_path("models/stories260K-hf") +
                            " --chat-template chatml --data " + t / "ds/train.records.jsonl" + " --output " + t / "run" +
                            " --max-steps 1 --threads 1",
                        &log, true),
              0)
        << log;
  }

  // Keyed by the prompt, the second France pair is a duplicate.
  ASSERT_EQ(run_lathe("data prepare --input " + t / "pairs.jsonl" + " --output " + t / "ds2" +
                          " --split 1,0,0 --dedup-preference-key prompt --json",
                      &log),
            0)
      << log;
  json r2 = json::parse(log);
  EXPECT_EQ(r2["totals"]["records_kept"], 4);
  EXPECT_EQ(r2["totals"]["records_in"], 5);
  EXPECT_TRUE(r2["totals"]["reconciles"].get<bool>());

  // Options that mean nothing for dpo are refused.
  EXPECT_NE(run_lathe("feedback export --data-dir " + t / "data" + " --format dpo --min-rating 4 --output " + t / "x.jsonl", &log, true), 0);
  EXPECT_NE(log.find("--min-rating applies to --format sft"), std::string::npos) << log;
}

TEST(PreferencePrepareE2E, KtoExportThroughPrepareWithATokenizer) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3");
  lathe::test::TempDir t;
  fill_store(t / "data");
  json sum = export_json("--data-dir " + t / "data" + " --format kto --adapter - --output " + t / "kto.jsonl");
  // Base-model completions: 7 rated (one is the adapter's); the logged-off one is skipped.
  EXPECT_EQ(sum["rated"], 8);
  EXPECT_EQ(sum["skipped"], json::parse(R"({"no logged request":1,"other adapter":1})"));
  EXPECT_EQ(sum["used"], 6);
  EXPECT_EQ(sum["rating_scale"], "thumbs");
  // Four corrections give two records each, the thumbs-up and the confirmation one each.
  EXPECT_EQ(sum["written"], 10);
  EXPECT_EQ(sum["desirable"], 6);
  EXPECT_EQ(sum["undesirable"], 4);
  // The reference: each record's prompt + completion rendered with chatml and encoded in-process.
  const std::string tok_dir = lathe::test::fixture_path("tokenizers/qwen3");
  auto tok = lathe::Tokenizer::load(tok_dir);
  lathe::RecordEncoder enc = lathe::RecordEncoder::for_model(*tok, tok_dir, "chatml", {});
  const size_t max_len = 36;
  int too_long = 0;
  for (auto& rec : read_jsonl(t / "kto.jsonl")) {
    lathe::PreferenceMessages m = lathe::preference_messages(rec, lathe::PreferenceShape::Unpaired);
    nlohmann::ordered_json seq = m.prompt;
    seq.push_back(m.completion[0]);
    too_long += enc.encode_messages(seq).full_length > max_len;
  }
  ASSERT_GE(too_long, 1);  // the refund question's records are the longest
  ASSERT_LT(too_long, 10);
  std::string log;
  ASSERT_EQ(run_lathe("data prepare --input " + t / "kto.jsonl" + " --output " + t / "ds --model " + tok_dir +
                          " --chat-template chatml --max-seq-length " + std::to_string(max_len) +
                          " --format-truncation drop --pii off --split 1,0,0 --json",
                      &log),
            0)
      << log;
  json r = json::parse(log);
  EXPECT_EQ(r["preference"], "unpaired");
  EXPECT_TRUE(r["totals"]["reconciles"].get<bool>()) << r.dump();
  EXPECT_EQ(r["totals"]["records_in"], 10);
  const json& format = r["stages"][5];
  ASSERT_EQ(format["stage"], "format");
  EXPECT_EQ(format["dropped"].value("longer than max_seq_length", 0), too_long) << format;
  EXPECT_EQ(r["totals"]["records_kept"], 10 - too_long);
  auto prepared = read_jsonl(t / "ds/train.records.jsonl");
  EXPECT_EQ(prepared.size(), r["totals"]["records_kept"].get<size_t>());
  for (auto& rec : prepared) {
    EXPECT_EQ(lathe::preference_shape_of(rec), lathe::PreferenceShape::Unpaired) << rec;
    EXPECT_TRUE(rec["label"].is_boolean());
  }
  json report = json::parse(lathe::read_file(t / "ds/report.json"));
  EXPECT_TRUE(report["token_length_histogram"].contains("before"));
  EXPECT_FALSE(report["tokenized"].get<bool>());
  if (lathe::test::has_fixture("models/stories260K-hf/tokenizer.json")) {
    ASSERT_EQ(run_lathe("train --method kto --model " + lathe::test::fixture_path("models/stories260K-hf") +
                            " --chat-template chatml --data " + t / "ds/train.records.jsonl" + " --output " + t / "run" +
                            " --max-steps 1 --threads 1",
                        &log, true),
              0)
        << log;
  }
}

TEST(PreferencePrepareE2E, MixedFileIsRefusedByLine) {
  lathe::test::TempDir t;
  fill_store(t / "data");
  export_json("--data-dir " + t / "data" + " --format dpo --output " + t / "pairs.jsonl");
  export_json("--data-dir " + t / "data" + " --format kto --output " + t / "kto.jsonl");
  std::ofstream(t / "mixed.jsonl") << lathe::read_file(t / "pairs.jsonl") << lathe::read_file(t / "kto.jsonl");
  std::string log;
  EXPECT_NE(run_lathe("data prepare --input " + t / "mixed.jsonl" + " --output " + t / "ds", &log, true), 0);
  EXPECT_NE(log.find("mixed.jsonl:6: an unpaired preference record (completion/label) among records of another kind "
                     "(a paired preference record (chosen/rejected) at "),
            std::string::npos)
      << log;
  EXPECT_FALSE(std::filesystem::exists(t / "ds/manifest.json"));
}
