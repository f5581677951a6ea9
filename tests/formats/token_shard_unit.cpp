// Token shards: written and read back, packing bins, and every malformation named.
#include "lathe/core/error.h"
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
