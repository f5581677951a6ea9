// The pieces of the sharded `lathe data prepare` that need no MPI: how input files are shared out
// among ranks, and the binary form in which records travel to rank 0 (it must give back the very
// JSON values, number types included, or the records.jsonl of a job would differ from one process's).
#include <gtest/gtest.h>

#include <limits>

#include "lathe/core/error.h"
#include "lathe/data/pipeline_internal.h"
#include "test_util.h"

using lathe::data::Record;
using nlohmann::json;

namespace {

// Each rank's files are one contiguous range in the file order, ranks in order.
void expect_contiguous(const std::vector<int>& owner, int ranks) {
  for (size_t i = 1; i < owner.size(); i++) EXPECT_LE(owner[i - 1], owner[i]);
  for (int o : owner) {
    EXPECT_GE(o, 0);
    EXPECT_LT(o, ranks);
  }
}

}  // namespace

TEST(ShardFiles, BalancedByBytesAndContiguous) {
  using lathe::data::shard_files;
  EXPECT_EQ(shard_files({10, 10, 10, 10}, 2), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(shard_files({10, 10, 10, 10}, 4), (std::vector<int>{0, 1, 2, 3}));
  // One big file and small ones: the big one's middle is in rank 0's half, the rest in rank 1's.
  EXPECT_EQ(shard_files({100, 1, 1, 1}, 2), (std::vector<int>{0, 1, 1, 1}));
  EXPECT_EQ(shard_files({1, 1, 1, 100}, 2), (std::vector<int>{0, 0, 0, 1}));
  // Empty files only: shared by count.
  EXPECT_EQ(shard_files({0, 0, 0, 0, 0, 0}, 3), (std::vector<int>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(shard_files({}, 2), std::vector<int>{});
  // More ranks than files: some ranks get none, nobody gets a rank past the last.
  expect_contiguous(shard_files({5, 7}, 8), 8);
  // Sizes near the top of uint64 do not overflow.
  const uint64_t big = std::numeric_limits<uint64_t>::max() / 2;
  EXPECT_EQ(shard_files({big, big}, 2), (std::vector<int>{0, 1}));
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 200; i++) sizes.push_back(uint64_t((i * 7919) % 1000 + 1));
  auto owner = shard_files(sizes, 5);
  expect_contiguous(owner, 5);
  // Each share holds about a fifth of the bytes (within the largest file).
  std::vector<uint64_t> bytes(5, 0);
  uint64_t total = 0;
  for (size_t i = 0; i < sizes.size(); i++) bytes[size_t(owner[i])] += sizes[i], total += sizes[i];
  for (auto b : bytes) EXPECT_NEAR(double(b), double(total) / 5, 1000.0);
}

TEST(RecordCodec, RoundTripKeepsValuesAndNumberTypes) {
  std::vector<Record> in(3);
  in[0].json = json::parse(R"({"messages":[{"role":"user","content":"안녕하세요 \u0000 tab\t"},{"role":"assistant","content":""}],
                               "n":-42,"u":18446744073709551615,"f":0.1,"z":-0.0,"big":1e300,"t":true,"nul":null,
                               "e":{},"a":[],"nested":{"b":[1,[2,[3,{"c":"d"}]]]}})");
  in[0].source = {"/data/a.jsonl", 12, 0, 0};
  in[0].id = "00ff00ff00ff00ff";
  in[0].stratum = "hr";
  in[1].json = {{"text", std::string("bytes \xff\xfe kept as they are")}};
  in[1].source = {"/data/a.jsonl", 0, 3, 0};
  in[1].cluster = 7;
  in[2].json = {{"input_ids", {1, 2, 3}}, {"labels", {-100, 2, 3}}};
  in[2].source = {"/data/b.json", 0, 0, 9};
  in[2].id = "x";
  std::string bytes, last;
  for (auto& r : in) lathe::data::encode_record(r, bytes, last);
  std::vector<Record> out;
  lathe::data::decode_records(bytes, out, "test bytes");
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); i++) {
    EXPECT_EQ(out[i].json, in[i].json);
    EXPECT_EQ(out[i].json.dump(-1, ' ', false, json::error_handler_t::replace),
              in[i].json.dump(-1, ' ', false, json::error_handler_t::replace));
    EXPECT_EQ(out[i].source.where(), in[i].source.where());
    EXPECT_EQ(out[i].id, in[i].id);
    EXPECT_EQ(out[i].stratum, in[i].stratum);
    EXPECT_EQ(out[i].cluster, in[i].cluster);
  }
  // Number types survive (a dump would print -0.0 and 1.0 alike either way; types matter to equality
  // of int vs float and to what the later stages read).
  EXPECT_TRUE(out[0].json["n"].is_number_integer() && !out[0].json["n"].is_number_unsigned());
  EXPECT_TRUE(out[0].json["u"].is_number_unsigned());
  EXPECT_EQ(out[0].json["u"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(out[0].json["z"].is_number_float());
  EXPECT_TRUE(std::signbit(out[0].json["z"].get<double>()));
  EXPECT_EQ(out[1].json["text"].get<std::string>(), in[1].json["text"].get<std::string>());
  // Cut short, the bytes are an error that names them, never a silent partial record.
  std::vector<Record> partial;
  const std::string err = lathe::test::error_of([&] { lathe::data::decode_records(bytes.substr(0, bytes.size() - 3), partial, "records of rank 1"); });
  EXPECT_NE(err.find("records of rank 1: corrupt data"), std::string::npos) << err;
}
