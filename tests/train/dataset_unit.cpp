// TrainDataset: parsing, truncation counting, file:line errors, epoch order and cursor resume.
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/formats/token_shard.h"
#include "lathe/records/record_format.h"
#include "lathe/tokenizer/tokenizer.h"
#include "lathe/train/dataset.h"
#include "test_util.h"

namespace lathe {
namespace {

std::string write_jsonl(const test::TempDir& dir, const std::string& text) {
  std::string p = dir / "d.jsonl";
  std::ofstream(p) << text;
  return p;
}

using ::lathe::test::error_of;

TEST(Dataset, ParsesTruncatesAndCounts) {
  test::TempDir dir;
  std::string p = write_jsonl(dir,
                              "{\"input_ids\":[1,2,3],\"labels\":[-100,2,3]}\n"
                              "\n"
                              "   \n"
                              "{\"input_ids\":[4,5,6,7,8,9],\"labels\":[-100,-100,-100,7,8,9]}\n"
                              "{\"input_ids\":[10,11]}\n"
                              "{\"input_ids\":[12,13,14,15,16],\"labels\":[-100,-100,-100,-100,-100]}\n");
  TrainDataset d = TrainDataset::load(p, 4);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d.truncated_count(), 2);  // lines 4 and 6 exceed 4 tokens
  EXPECT_EQ(d.line_number(1), 4);
  EXPECT_EQ(std::vector<int32_t>(d.input_ids(1).begin(), d.input_ids(1).end()), (std::vector<int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(std::vector<int32_t>(d.labels(2).begin(), d.labels(2).end()), (std::vector<int32_t>{10, 11}));
  EXPECT_EQ(d.total_tokens(), 3 + 4 + 2 + 4);
  EXPECT_EQ(d.max_token_id(), 15);
  EXPECT_EQ(d.max_length(), 4);
  // Shifted: labels[0] never counts. Example 0: {2,3}; 1: {7}; 2: {11}; 3: none.
  EXPECT_EQ(d.label_tokens(0), 2);
  EXPECT_EQ(d.label_tokens(1), 1);
  EXPECT_EQ(d.total_label_tokens({0, 2}), 3);
  EXPECT_EQ(d.total_label_tokens(), 4);
  EXPECT_EQ(d.no_loss_count(), 1);
  EXPECT_EQ(TrainDataset::load(p, 0).truncated_count(), 0);  // 0 = no limit
}

TEST(Dataset, ErrorsNameFileAndLine) {
  test::TempDir dir;
  auto err = [&](const std::string& text) {
    std::string p = write_jsonl(dir, text);
    return error_of([&] { TrainDataset::load(p, 16); });
  };
  const std::string f = dir / "d.jsonl";
  EXPECT_NE(err("{\"input_ids\":[1]}\n\n{\"input_ids\":[1,2}\n").find(f + ":3: malformed JSON"), std::string::npos);
  EXPECT_NE(err("{\"input_ids\":[1,2],\"labels\":[1]}\n").find(f + ":1: \"labels\" has 1 entries but \"input_ids\" has 2"),
            std::string::npos);
  EXPECT_NE(err("{\"text\":\"hi\"}\n").find(f + ":1: not pre-tokenized (no \"input_ids\") and no tokenizer"), std::string::npos);
  EXPECT_NE(err("{\"input_ids\":[1,-100]}\n").find(f + ":1: \"input_ids\"[1] = -100 is not a token id"),
            std::string::npos);
  EXPECT_NE(err("{\"input_ids\":[1,2.5]}\n").find(f + ":1: \"input_ids\"[1] is 2.5"), std::string::npos);
  // Review item 5: ids are read as 64-bit before the range check (5000000000 was reported as
  // 705032704), and 2^64-100 is not the ignore index -100.
  EXPECT_NE(err("{\"input_ids\":[1,5000000000]}\n").find(f + ":1: \"input_ids\"[1] = 5000000000 is not a token id"),
            std::string::npos);
  EXPECT_NE(err("{\"input_ids\":[1,2],\"labels\":[1,18446744073709551516]}\n").find("\"labels\"[1] is 18446744073709551516"),
            std::string::npos);
  EXPECT_NE(err("{\"input_ids\":[1,2],\"labels\":[1,4294967196]}\n").find("\"labels\"[1] = 4294967196 is not a token id or -100"),
            std::string::npos);
  EXPECT_NE(err("{\"input_ids\":[1,1e999]}\n").find(f + ":1: malformed JSON"), std::string::npos);
  EXPECT_NE(err("{\"input_ids\":[]}\n").find(f + ":1: \"input_ids\" is empty"), std::string::npos);
  EXPECT_NE(err("\n\n").find(f + ": no examples"), std::string::npos);
  EXPECT_NE(error_of([&] { TrainDataset::load(dir / "nope.jsonl", 16); }).find("cannot open"), std::string::npos);
}

// Labels index the logits as much as ids do, so they count toward the id checked against the
// model's vocabulary (a label of 900 with a 512-token model used to reach the loss unchecked).
TEST(Dataset, MaxTokenIdCoversLabels) {
  test::TempDir dir;
  TrainDataset d = TrainDataset::load(write_jsonl(dir, "{\"input_ids\":[1,2],\"labels\":[-100,900]}\n"), 16);
  EXPECT_EQ(d.max_token_id(), 900);
}

std::string numbered(int n) {
  std::string s;
  for (int i = 0; i < n; i++) s += "{\"input_ids\":[" + std::to_string(i) + "]}\n";
  return s;
}

TEST(Dataset, EpochOrderIsDeterministicPermutation) {
  test::TempDir dir;
  std::string p = write_jsonl(dir, numbered(10));
  TrainDataset a = TrainDataset::load(p, 8, 7, true), b = TrainDataset::load(p, 8, 7, true);
  auto e0 = a.epoch_order(0), e1 = a.epoch_order(1);
  EXPECT_EQ(e0, b.epoch_order(0));
  EXPECT_NE(e0, e1);  // reshuffled each epoch
  auto sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); i++) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(e0, TrainDataset::load(p, 8, 8, true).epoch_order(0));  // seed matters
  auto plain = TrainDataset::load(p, 8, 7, false).epoch_order(3);
  for (size_t i = 0; i < plain.size(); i++) EXPECT_EQ(plain[i], i);
}

TEST(Dataset, BatchesAndCursorResume) {
  test::TempDir dir;
  std::string p = write_jsonl(dir, numbered(10));
  TrainDataset a = TrainDataset::load(p, 8, 3, true);
  EXPECT_EQ(a.batches_per_epoch(4), 3);
  std::vector<std::vector<size_t>> all;
  for (int i = 0; i < 7; i++) all.push_back(a.next_batch(4));
  EXPECT_EQ(all[0].size(), 4u);
  EXPECT_EQ(all[2].size(), 2u);  // short last batch of epoch 0
  EXPECT_EQ(all[3].size(), 4u);  // epoch 1 starts fresh
  std::vector<size_t> epoch0;
  for (int i = 0; i < 3; i++) epoch0.insert(epoch0.end(), all[i].begin(), all[i].end());
  EXPECT_EQ(epoch0, a.epoch_order(0));
  EXPECT_EQ(a.cursor(), (DataCursor{2, 4}));

  // Resume after batch 4 from a JSON round trip of the cursor: the same batches follow.
  TrainDataset b = TrainDataset::load(p, 8, 3, true);
  for (int i = 0; i < 4; i++) b.next_batch(4);
  nlohmann::json saved = b.cursor().to_json();
  TrainDataset c = TrainDataset::load(p, 8, 3, true);
  c.set_cursor(DataCursor::from_json(saved));
  EXPECT_EQ(c.next_batch(4), all[4]);
  EXPECT_EQ(c.next_batch(4), all[5]);
  EXPECT_EQ(c.next_batch(4), all[6]);

  EXPECT_THROW(c.set_cursor(DataCursor{0, 10}), Error);
  EXPECT_THROW(DataCursor::from_json({{"epoch", 1}}), Error);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

TEST(Dataset, PreparedDirectoryWithPackedBins) {
  test::TempDir dir;
  TokenShardWriter w;
  w.add(std::vector<int32_t>{1, 2, 3}, std::vector<int32_t>{-100, 2, 3});
  w.add(std::vector<int32_t>{4, 5}, std::vector<int32_t>{-100, 5});
  w.end_bin();
  w.add(std::vector<int32_t>{6, 7}, std::vector<int32_t>{-100, -100});
  w.end_bin();
  w.write(dir / "train.tokens-00000.safetensors");
  std::ofstream(dir / "manifest.json")
      << R"({"format":"lathe-dataset-v1","splits":{"train":{"shards":["train.tokens-00000.safetensors"]}}})";
  TrainDataset d = TrainDataset::load(dir.path, 0, 1, false);
  EXPECT_TRUE(d.packed());
  ASSERT_EQ(d.size(), 2u);  // two bins
  EXPECT_EQ(d.sequences(), 3u);
  EXPECT_EQ(d.example_sequences(0), (std::pair<size_t, size_t>{0, 2}));
  EXPECT_EQ(d.max_length(), 5);       // the first bin holds 3 + 2 tokens
  EXPECT_EQ(d.label_tokens(0), 3);    // 2, 3 and 5 (each sequence's first label never counts)
  EXPECT_EQ(d.no_loss_count(), 1);    // the second bin
  EXPECT_NE(error_of([&] { TrainDataset::load(dir.path, 0, 1, false, nullptr, "validation"); }).find("no split"),
            std::string::npos);
}

TEST(Dataset, RawRecordsGoThroughTheEncoder) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3");
  const std::string tdir = test::fixture_path("tokenizers/qwen3");
  auto tok = Tokenizer::load(tdir);
  RecordEncoder enc = RecordEncoder::for_model(*tok, tdir, "", {});
  int calls = 0;
  RecordEncoderFactory f = [&]() -> const RecordEncoder& {
    calls++;
    return enc;
  };
  test::TempDir dir;
  std::string p = write_jsonl(dir,
                              "{\"question\":\"연차는?\",\"answer\":\"15일\"}\n"
                              "{\"input_ids\":[1,2,3]}\n"
                              "{\"text\":\"plain text\"}\n"
                              "{\"oops\":1}\n");
  EXPECT_NE(error_of([&] { TrainDataset::load(p, 0, 1, false, f); }).find(p + ":4: [record]"), std::string::npos);
  std::ofstream(p) << "{\"question\":\"연차는?\",\"answer\":\"15일\"}\n{\"input_ids\":[1,2,3]}\n";
  calls = 0;
  TrainDataset d = TrainDataset::load(p, 0, 1, false, f);
  EXPECT_EQ(calls, 1);  // the factory runs once per load, however many records need it
  ASSERT_EQ(d.size(), 2u);
  EncodedRecord want = enc.encode(nlohmann::json::parse("{\"question\":\"연차는?\",\"answer\":\"15일\"}"));
  EXPECT_EQ(std::vector<int32_t>(d.labels(0).begin(), d.labels(0).end()), want.labels);
}

}  // namespace
}  // namespace lathe
