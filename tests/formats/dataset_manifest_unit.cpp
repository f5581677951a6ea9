// The prepared dataset's manifest.json: written and read back field for field, deterministic bytes,
// lenient about absent optional fields, and errors naming the file and the field.
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/formats/dataset_manifest.h"
#include "test_util.h"

namespace lathe {
namespace {

using ::lathe::test::error_of;
using nlohmann::json;

DatasetManifest sample() {
  DatasetManifest m;
  m.config = {{"output", "ds"}, {"split", {{"seed", 42}}}};
  DatasetSplit& t = m.splits["train"];
  t.records = "train.records.jsonl";
  t.records_count = 3;
  t.records_hash = "00000000000000aa";
  t.shards = {"train.tokens-00000.safetensors"};
  t.shard_hashes = {"00000000000000bb"};
  t.sequences = 3;
  t.tokens = 40;
  t.label_tokens = 12;
  t.packed = true;
  t.bins = 2;
  DatasetSplit& v = m.splits["validation"];
  v.records = "validation.records.jsonl";
  v.records_hash = "00000000000000cc";
  m.tokenizer = DatasetManifest::Tokenizer{"models/tiny", "00000000000000dd"};
  m.chat_template = "{{ messages }}";
  m.inputs.push_back({"in.jsonl", "00000000000000ee", "jsonl", 4});
  m.counts["collect"] = {4, 4, {}};
  m.counts["dedup"] = {4, 3, {{"exact duplicate", 1}}};
  m.content_hash = "00000000000000ff";
  return m;
}

void expect_same(const DatasetManifest& a, const DatasetManifest& b) {
  EXPECT_EQ(a.to_json(), b.to_json());
  ASSERT_EQ(a.splits.size(), b.splits.size());
  const DatasetSplit& x = a.splits.at("train");
  const DatasetSplit& y = b.splits.at("train");
  EXPECT_EQ(x.shards, y.shards);
  EXPECT_EQ(x.shard_hashes, y.shard_hashes);
  EXPECT_EQ(x.bins, y.bins);
  EXPECT_EQ(x.packed, y.packed);
  EXPECT_EQ(x.label_tokens, y.label_tokens);
  ASSERT_TRUE(b.tokenizer);
  EXPECT_EQ(a.tokenizer->hash, b.tokenizer->hash);
  EXPECT_EQ(a.counts.at("dedup").dropped, b.counts.at("dedup").dropped);
  EXPECT_EQ(a.inputs[0].records, b.inputs[0].records);
}

TEST(DatasetManifest, RoundTrip) {
  test::TempDir dir;
  const DatasetManifest m = sample();
  write_dataset_manifest(dir.path, m);
  ASSERT_TRUE(has_dataset_manifest(dir.path));
  const DatasetManifest back = read_dataset_manifest(dir.path);
  expect_same(m, back);
  // The same content writes the same bytes (keys sorted, 2-space indent, final newline).
  const std::string bytes = read_file(dataset_manifest_path(dir.path));
  write_dataset_manifest(dir.path, back);
  EXPECT_EQ(read_file(dataset_manifest_path(dir.path)), bytes);
  EXPECT_EQ(bytes.back(), '\n');
  const json j = json::parse(bytes);
  EXPECT_EQ(j["format"], "lathe-dataset-v1");
  // Optional fields are written only where they mean something: bins with packing, shard hashes
  // with shards, the tokenizer and template only for tokenized data.
  EXPECT_EQ(j["splits"]["train"]["bins"], 2);
  EXPECT_FALSE(j["splits"]["validation"].contains("bins"));
  EXPECT_FALSE(j["splits"]["validation"].contains("shard_hashes"));
  EXPECT_EQ(j["splits"]["validation"]["shards"], json::array());
  DatasetManifest plain = sample();
  plain.tokenizer.reset();
  EXPECT_FALSE(plain.to_json().contains("tokenizer"));
  EXPECT_FALSE(plain.to_json().contains("chat_template"));
  EXPECT_EQ(back.split("test"), nullptr);
  EXPECT_EQ(back.split("validation")->records, "validation.records.jsonl");
}

TEST(DatasetManifest, OnlyRequiredFields) {
  // What tools and tests write by hand: format and splits.
  DatasetManifest m = DatasetManifest::from_json(
      json::parse(R"({"format":"lathe-dataset-v1","splits":{"train":{"shards":["a.safetensors"]}}})"), "m.json");
  ASSERT_NE(m.split("train"), nullptr);
  EXPECT_EQ(m.split("train")->shards, (std::vector<std::string>{"a.safetensors"}));
  EXPECT_EQ(m.split("train")->records, "");
  EXPECT_FALSE(m.tokenizer);
  EXPECT_EQ(dataset_file("ds", "a.safetensors"), "ds/a.safetensors");
  EXPECT_EQ(dataset_file("ds", "/abs/a.safetensors"), "/abs/a.safetensors");
}

TEST(DatasetManifest, ErrorsNameFileAndField) {
  auto err = [](const char* text) { return error_of([&] { DatasetManifest::from_json(json::parse(text), "d/manifest.json"); }); };
  EXPECT_EQ(err(R"({"splits":{}})"), "[dataset] d/manifest.json: no \"format\" (expected \"lathe-dataset-v1\")");
  EXPECT_EQ(err(R"({"format":"lathe-dataset-v0","splits":{}})"), "[dataset] d/manifest.json: \"format\" is not \"lathe-dataset-v1\"");
  EXPECT_EQ(err(R"({"format":"lathe-dataset-v1"})"), "[dataset] d/manifest.json: no \"splits\"");
  EXPECT_EQ(err(R"({"format":"lathe-dataset-v1","splits":[]})"), "[dataset] d/manifest.json: \"splits\" must be an object");
  EXPECT_EQ(err(R"({"format":"lathe-dataset-v1","splits":{"train":{"shards":["a",3]}}})"),
            "[dataset] d/manifest.json: \"splits\".\"train\".\"shards\"[1] must be a string");
  EXPECT_EQ(err(R"({"format":"lathe-dataset-v1","splits":{"train":{"sequences":-1}}})"),
            "[dataset] d/manifest.json: \"splits\".\"train\".\"sequences\" must be a non-negative integer");
  EXPECT_EQ(err(R"({"format":"lathe-dataset-v1","splits":{},"inputs":[{"path":1}]})"),
            "[dataset] d/manifest.json: \"inputs\"[0].\"path\" must be a string");
  EXPECT_EQ(err(R"({"format":"lathe-dataset-v1","splits":{},"counts":{"map":{"dropped":{"bad":"x"}}}})"),
            "[dataset] d/manifest.json: \"counts\".\"map\".\"dropped\".\"bad\" must be a non-negative integer");
  EXPECT_EQ(err(R"([1])"), "[dataset] d/manifest.json: the manifest must be an object");

  test::TempDir dir;
  EXPECT_EQ(error_of([&] { read_dataset_manifest(dir.path); }),
            "[dataset] " + dir.path + ": a directory without manifest.json is not a prepared dataset");
  std::ofstream(dir / "manifest.json") << "{\"format\":";
  EXPECT_NE(error_of([&] { read_dataset_manifest(dir.path); }).find(dir / "manifest.json"), std::string::npos);
}

}  // namespace
}  // namespace lathe
