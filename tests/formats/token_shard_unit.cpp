// Token shards: written and read back, packing bins, and every malformation named.
#include <xxhash.h>

#include <random>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/formats/safetensors.h"
#include "lathe/formats/token_shard.h"
#include "test_util.h"

namespace lathe {
namespace {

using ::lathe::test::error_of;

TEST(TokenShard, RoundTripWithBins) {
  test::TempDir dir;
  TokenShardWriter w;
  w.add(std::vector<int32_t>{1, 2, 3}, std::vector<int32_t>{-100, 2, 3});
  w.add(std::vector<int32_t>{4, 5}, std::vector<int32_t>{4, 5});
  w.end_bin();
  w.add(std::vector<int32_t>{6}, std::vector<int32_t>{-100});
  w.write(dir / "s.safetensors", {{"split", "train"}});
  TokenShard s = TokenShard::open(dir / "s.safetensors");
  ASSERT_EQ(s.sequences(), 3u);
  EXPECT_EQ(s.tokens(), 6u);
  EXPECT_EQ(std::vector<int32_t>(s.input_ids(1).begin(), s.input_ids(1).end()), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(std::vector<int32_t>(s.labels(0).begin(), s.labels(0).end()), (std::vector<int32_t>{-100, 2, 3}));
  ASSERT_TRUE(s.packed());
  ASSERT_EQ(s.bins(), 2u);
  EXPECT_EQ(s.bin(0), (std::pair<size_t, size_t>{0, 2}));
  EXPECT_EQ(s.bin(1), (std::pair<size_t, size_t>{2, 3}));

  TokenShardWriter plain;
  plain.add(std::vector<int32_t>{7, 8}, std::vector<int32_t>{7, 8});
  plain.write(dir / "p.safetensors");
  EXPECT_FALSE(TokenShard::open(dir / "p.safetensors").packed());
}

// The streamed writer (lengths first, tokens handed over one sequence at a time, flushed to the file in
// pieces) against TokenShardWriter on ~3 MB shards whose sequences straddle the flush boundaries, with
// and without bins: the same bytes, and the digest it returns is the file's XXH3-64.
TEST(TokenShard, StreamedWriterMatchesWriter) {
  test::TempDir dir;
  std::mt19937 rng(5);
  for (bool packed : {false, true}) {
    std::vector<std::vector<int32_t>> ids, labels;
    TokenShardWriter w;
    TokenShardPlan plan;
    plan.packed = packed;
    size_t in_bin = 0;
    for (size_t total = 0; total < 700000;) {
      // Some longer than the writer's 512 KiB buffer (the first), some straddling its flushes, some empty.
      const size_t n = ids.empty() ? 300000 : rng() % 9 == 0 ? 20000 + rng() % 50000 : rng() % 700;
      ids.emplace_back(n);
      labels.emplace_back(n);
      for (size_t j = 0; j < n; j++) {
        ids.back()[j] = int32_t(rng() % 150000);
        labels.back()[j] = rng() % 3 ? ids.back()[j] : -100;
      }
      w.add(ids.back(), labels.back());
      plan.lengths.push_back(n);
      total += n;
      in_bin++;
      if (packed && rng() % 4 == 0) {
        w.end_bin();
        plan.bin_sizes.push_back(in_bin);
        in_bin = 0;
      }
    }
    if (packed) {
      w.end_bin();
      if (in_bin) plan.bin_sizes.push_back(in_bin);
    }
    w.write(dir / "a.safetensors", {{"split", "train"}});
    const uint64_t digest = write_token_shard_streamed(
        dir / "b.safetensors", plan, {{"split", "train"}},
        [&](size_t q, bool want_labels, int32_t* dst) {
          const std::vector<int32_t>& v = want_labels ? labels[q] : ids[q];
          std::copy(v.begin(), v.end(), dst);
        });
    const std::string a = read_file(dir / "a.safetensors"), b = read_file(dir / "b.safetensors");
    EXPECT_GT(b.size(), size_t(3) << 20);
    EXPECT_TRUE(a == b) << "packed " << packed << ": " << a.size() << " vs " << b.size() << " bytes";
    EXPECT_EQ(digest, XXH3_64bits(b.data(), b.size()));
  }
}

TEST(TokenShard, RejectsMalformedShards) {
  test::TempDir dir;
  auto write = [&](const std::string& name, std::vector<int32_t> ids, std::vector<int32_t> labels,
                   std::vector<int64_t> offs, std::map<std::string, std::string> meta) {
    std::vector<std::pair<std::string, Tensor>> t;
    t.emplace_back("input_ids", Tensor::view(DType::I32, {int64_t(ids.size())}, ids.data(), nullptr));
    t.emplace_back("labels", Tensor::view(DType::I32, {int64_t(labels.size())}, labels.data(), nullptr));
    t.emplace_back("seq_offsets", Tensor::view(DType::I64, {int64_t(offs.size())}, offs.data(), nullptr));
    safetensors_write(dir / name, t, meta);
    return dir / name;
  };
  const std::map<std::string, std::string> ok{{"format", "lathe-tokens-v1"}};
  EXPECT_NE(error_of([&] { TokenShard::open(write("a", {1, 2}, {1, 2}, {0, 2}, {})); }).find("not a lathe token shard"),
            std::string::npos);
  EXPECT_NE(error_of([&] { TokenShard::open(write("b", {1, 2, 3, 4}, {1, 2}, {0, 4}, ok)); }).find("\"labels\""),
            std::string::npos);
  EXPECT_NE(error_of([&] { TokenShard::open(write("c", {1, 2}, {1, 2}, {0, 3}, ok)); }).find("seq_offsets"),
            std::string::npos);
  EXPECT_NE(error_of([&] { TokenShard::open(write("d", {1, 2}, {1, 2}, {0, 2, 1, 2}, ok)); }).find("decreases"),
            std::string::npos);
  EXPECT_NE(error_of([&] { TokenShard::open(write("e", {1, -5}, {1, 2}, {0, 2}, ok)); }).find("negative"),
            std::string::npos);
  EXPECT_NE(error_of([&] { TokenShard::open(write("f", {1, 2}, {1, -7}, {0, 2}, ok)); }).find("-100"),
            std::string::npos);
}

}  // namespace
}  // namespace lathe
