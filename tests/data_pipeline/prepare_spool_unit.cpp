// The streaming `lathe data prepare`'s spool encodings (prepare_spool.h): token ids in 3 bytes.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/data/prepare_spool.h"

using namespace lathe::data;

namespace {

struct Rng {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(s >> 33);
  }
};

}  // namespace

TEST(PrepareSpool, Ids24RoundTripAfterOtherBytes) {
  // Every byte position of the 24 bits matters: the edges of each byte, then random ids of any size.
  const int32_t edges[] = {0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFF, 0x800000, 0xFFFFFF, 151642};
  Rng rng{5};
  for (int round = 0; round < 500; round++) {
    const size_t n = round == 0 ? 0 : rng.next() % 700;
    std::vector<int32_t> ids(n);
    for (auto& v : ids) v = rng.next() % 3 == 0 ? edges[rng.next() % std::size(edges)] : int32_t(rng.next() % (1u << 24));
    const std::string prefix(rng.next() % 9, char(0xA5));  // what the spool holds before: not touched
    std::string out = prefix;
    ASSERT_TRUE(append_ids24(ids.data(), n, out));
    ASSERT_EQ(out.size(), prefix.size() + 3 * n);
    ASSERT_EQ(out.substr(0, prefix.size()), prefix);
    std::vector<int32_t> back(n, -7);
    read_ids24(out.data() + prefix.size(), n, back.data());
    ASSERT_EQ(back, ids) << "round " << round;
  }
  // Little-endian whatever the machine: 0x0A0B0C is 0C 0B 0A.
  const int32_t one = 0x0A0B0C;
  std::string b;
  ASSERT_TRUE(append_ids24(&one, 1, b));
  EXPECT_EQ(b, std::string("\x0C\x0B\x0A", 3));
}

TEST(PrepareSpool, Ids24RefusesIdsThatDoNotFit) {
  // One id outside [0, 2^24) anywhere (first, middle, last) and nothing is appended: the caller keeps
  // the int32 form.
  for (int32_t wide : {int32_t(1) << 24, -1, -100, INT32_MAX, INT32_MIN}) {
    for (size_t at : {size_t(0), size_t(5), size_t(9)}) {
      std::vector<int32_t> ids(10, 42);
      ids[at] = wide;
      std::string out = "x";
      EXPECT_FALSE(append_ids24(ids.data(), ids.size(), out)) << wide << " at " << at;
      EXPECT_EQ(out, "x");
    }
  }
}
