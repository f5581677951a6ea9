// `lathe data prepare` on a directory of mixed JSONL/CSV/MD/PDF/HTML inputs with a real tokenizer,
// then `lathe train --data` on the result for 2 steps.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/formats/token_shard.h"
#include "test_util.h"

using lathe::test::run_lathe;
using nlohmann::json;

namespace {

void write(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

void make_inputs(const std::string& d) {
  std::filesystem::create_directories(d);
  std::string jl;
  for (int i = 0; i < 40; i++)
    jl += json{{"instruction", "Tell me about item " + std::to_string(i)},
               {"input", ""},
               {"output", "Item " + std::to_string(i) + " is a small red ball. Call 010-1234-5678 for more."}}
              .dump() + "\n";
  jl += "{not json\n";
  jl += json{{"instruction", "Tell me about item 3"}, {"input", ""}, {"output", "Item 3 is a small red ball. Call 010-1234-5678 for more."}}.dump() + "\n";
  jl += json{{"weird", 1}}.dump() + "\n";
  write(d + "/a.jsonl", jl);
  write(d + "/b.csv", "question,answer\nWhat is lathe?,A tool that trains small models.\n\"broken,quote\n");
  write(d + "/c.md", "# Notes\n\nOnce upon a time there was a tiny model.\n\n## More\n\nIt learned to tell stories.\n");
  write(d + "/d.html", "<html><body><script>x()</script><p>The cat sat &amp; slept.</p></body></html>");
  write(d + "/empty.jsonl", "");
}

}  // namespace

TEST(DataPrepare, MixedDirectoryToDatasetReportAndTraining) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  lathe::test::TempDir t;
  make_inputs(t / "in");
  std::string model = lathe::test::fixture_path("models/stories260K-hf");
  std::string out;
  int rc = run_lathe("data prepare --input " + t / "in" + " --output " + t / "ds" + " --model " + model +
                         " --chat-template chatml --max-seq-length 128 --split 0.8,0.2,0 --seed 3 --pii redact --json",
                     &out, true);
  ASSERT_EQ(rc, 0) << out;
  json report = json::parse(lathe::read_file(t / "ds/report.json"));
  const auto& tot = report["totals"];
  EXPECT_TRUE(tot["reconciles"].get<bool>()) << report["stages"].dump(1);
  EXPECT_EQ(tot["records_in"].get<size_t>(), tot["records_kept"].get<size_t>() + tot["records_dropped"].get<size_t>());
  // Drop reasons with their causes: malformed line, unknown shape, broken CSV quoting, empty file, duplicate.
  std::string stages = report["stages"].dump();
  for (const char* r : {"malformed JSON", "no known shape", "broken CSV quoting", "empty file", "exact duplicate"})
    EXPECT_NE(stages.find(r), std::string::npos) << r << " missing in " << stages;
  EXPECT_NE(stages.find("a.jsonl:41"), std::string::npos);
  EXPECT_GE(report["pii"]["hits"]["PHONE"].get<int>(), 40);
  json m = json::parse(lathe::read_file(t / "ds/manifest.json"));
  EXPECT_EQ(m["format"], "lathe-dataset-v1");
  auto tr = m["splits"]["train"];
  ASSERT_EQ(tr["shards"].size(), 1u);
  auto shard = lathe::TokenShard::open(t / "ds" + "/" + tr["shards"][0].get<std::string>());
  EXPECT_EQ(shard.sequences(), tr["sequences"].get<size_t>());
  EXPECT_EQ(shard.sequences(), tr["records_count"].get<size_t>());
  // Records are readable, redacted and carry their source.
  std::string recs = lathe::read_file(t / "ds" + "/" + tr["records"].get<std::string>());
  EXPECT_EQ(recs.find("010-1234-5678"), std::string::npos);
  EXPECT_NE(recs.find("\"_source\""), std::string::npos);
  std::string html = lathe::read_file(t / "ds/report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  // Same inputs and seed → same content hash.
  ASSERT_EQ(run_lathe("data prepare --input " + t / "in" + " --output " + t / "ds2" + " --model " + model +
                          " --chat-template chatml --max-seq-length 128 --split 0.8,0.2,0 --seed 3 --pii redact",
                      &out, true), 0) << out;
  json m2 = json::parse(lathe::read_file(t / "ds2/manifest.json"));
  EXPECT_EQ(m["content_hash"], m2["content_hash"]);

  // The trainer accepts the directory.
  rc = run_lathe("train --threads 1 --model " + model + " --data " + t / "ds" + " --output " + t / "run" +
                     " --method lora --max-steps 2 --save-steps 0 --per-device-train-batch-size 2",
                 &out, true);
  EXPECT_EQ(rc, 0) << out;
}

TEST(DataPrepare, PackingWritesBins) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  lathe::test::TempDir t;
  make_inputs(t / "in");
  std::string model = lathe::test::fixture_path("models/stories260K-hf");
  std::string out;
  ASSERT_EQ(run_lathe("data prepare --input " + t / "in" + " --output " + t / "ds --model " + model +
                          " --chat-template chatml --max-seq-length 256 --packing --split 1", &out, true), 0) << out;
  json m = json::parse(lathe::read_file(t / "ds/manifest.json"));
  auto shard = lathe::TokenShard::open(t / "ds/train.tokens-00000.safetensors");
  ASSERT_TRUE(shard.packed());
  EXPECT_LT(shard.bins(), shard.sequences());
  for (size_t b = 0; b < shard.bins(); b++) {
    auto [f, l] = shard.bin(b);
    size_t n = 0;
    for (size_t s = f; s < l; s++) n += shard.input_ids(s).size();
    EXPECT_LE(n, 256u);
  }
}

TEST(DataPrepare, WithoutModelWritesRecordsAndReportOnly) {
  lathe::test::TempDir t;
  make_inputs(t / "in");
  std::string out;
  ASSERT_EQ(run_lathe("data prepare --input " + t / "in" + " --output " + t / "ds --pii report", &out, true), 0) << out;
  json m = json::parse(lathe::read_file(t / "ds/manifest.json"));
  EXPECT_TRUE(m["splits"]["train"]["shards"].empty());
  EXPECT_NE(lathe::read_file(t / "ds/report.html").find("Not tokenized"), std::string::npos);
  EXPECT_NE(run_lathe("data prepare --input " + t / "in" + " --output " + t / "ds3 --strict", &out, true), 0);
}
