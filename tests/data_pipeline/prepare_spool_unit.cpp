// The streaming `lathe data prepare`'s spool encodings (prepare_spool.h): token ids in 3 bytes, the
// spool's views, the text statistics a spooled record starts with.
#include <gtest/gtest.h>

#include <climits>
#include <filesystem>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lathe/core/utf8.h"
#include "lathe/data/clean.h"
#include "lathe/data/pipeline_internal.h"
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

TEST(PrepareSpool, PackedIdsRoundTripAtEveryWidth) {
  // Every width from 1 to 31 bits, ids at the edges of their width and random ones, after bytes the
  // spool holds already (untouched), at lengths that end inside and on a byte.
  Rng rng{5};
  for (int round = 0; round < 600; round++) {
    const int w = 1 + round % 31;
    const size_t n = round < 31 ? 0 : rng.next() % 300;
    const uint32_t top = w == 31 ? 0x7FFFFFFFu : (1u << w) - 1;
    std::vector<int32_t> ids(n);
    for (auto& v : ids) {
      const uint32_t r = rng.next() % 4;
      v = int32_t(r == 0 ? top : r == 1 ? 0 : uint32_t(rng.next()) & top);
    }
    if (n) ids[rng.next() % n] = int32_t(top);  // the width is the largest id's
    EXPECT_EQ(packed_id_width(ids.data(), n), n ? w : 1) << round;
    const std::string prefix(rng.next() % 9, char(0xA5));
    std::string out = prefix;
    append_packed_ids(ids.data(), n, w, out);
    ASSERT_EQ(out.size(), prefix.size() + packed_id_bytes(n, w));
    ASSERT_EQ(out.substr(0, prefix.size()), prefix);
    std::vector<int32_t> back(n, -7);
    // Read from a buffer that ends where the packed bytes end: no byte past them is touched.
    const std::vector<char> exact(out.begin() + std::ptrdiff_t(prefix.size()), out.end());
    read_packed_ids(exact.data(), n, w, back.data());
    ASSERT_EQ(back, ids) << "round " << round << " width " << w;
  }
  // Little-endian from bit 0: 5 and 6 in 3 bits each are 101 then 110 -> 0b110101 = 0x35.
  const int32_t two[] = {5, 6};
  std::string b;
  append_packed_ids(two, 2, 3, b);
  EXPECT_EQ(b, std::string("\x35", 1));
}

TEST(PrepareSpool, PackedIdWidthRefusesNegativeIds) {
  // A negative id anywhere (first, middle, last) and the width is 0: the caller keeps int32.
  for (int32_t neg : {-1, -100, INT32_MIN}) {
    for (size_t at : {size_t(0), size_t(5), size_t(9)}) {
      std::vector<int32_t> ids(10, 42);
      ids[at] = neg;
      EXPECT_EQ(packed_id_width(ids.data(), ids.size()), 0) << neg << " at " << at;
    }
  }
  const int32_t big[] = {INT32_MAX, 3};
  EXPECT_EQ(packed_id_width(big, 2), 31);
}

TEST(PrepareSpool, ViewMatchesReadInMemoryAndOnDisk) {
  // view() hands out the bytes in place when they sit in one in-memory chunk, else copies them as
  // read() does: every range (chunk edges included, 8 MiB chunks) must give read()'s bytes, in memory
  // and after the spool has moved to disk.
  const std::string dir = ::testing::TempDir() + "/lathe_spool_view";
  std::filesystem::create_directories(dir);
  Rng rng{9};
  std::string all;
  for (uint64_t cap : {uint64_t(1) << 40, uint64_t(1) << 20}) {  // stays in memory; spills after 1 MiB
    Spool sp(dir, "view.spool", cap);
    all.clear();
    while (all.size() < (size_t(19) << 20)) {  // two chunk edges and a part chunk
      std::string b(1 + rng.next() % 300000, '\0');
      for (auto& c : b) c = char(rng.next());
      ASSERT_EQ(sp.append(b), all.size());
      all += b;
    }
    sp.seal();
    EXPECT_EQ(sp.on_disk(), cap < all.size());
    const uint64_t edge = uint64_t(8) << 20;
    std::vector<std::pair<uint64_t, size_t>> ranges = {
        {0, 1}, {edge - 1, 1}, {edge - 1, 2}, {edge, 5}, {edge - 10, 10}, {2 * edge - 3, 7}, {all.size() - 1, 1}, {0, all.size()}};
    for (int k = 0; k < 3000; k++) {
      const uint64_t at = rng.next() % all.size();
      ranges.push_back({at, size_t(1 + rng.next() % std::min<uint64_t>(all.size() - at, 3 << 20))});
    }
    std::string scratch = "stale", got;
    for (auto [at, n] : ranges) {
      got.assign(n, '\0');
      sp.read(at, n, got.data());
      ASSERT_EQ(got, all.substr(at, n)) << at << "+" << n;
      ASSERT_EQ(sp.view(at, n, scratch), got) << at << "+" << n << (sp.on_disk() ? " on disk" : " in memory");
    }
    // SpoolReader: a pass in rising offsets with small gaps (its read-ahead windows, their edges and
    // the spool's end), then jumps back and far ahead and reads longer than a window.
    SpoolReader in(sp);
    uint64_t at = 0;
    size_t passed = 0;
    while (at < all.size()) {
      const size_t n = size_t(std::min<uint64_t>(rng.next() % 2000, all.size() - at));
      ASSERT_EQ(in.view(at, n), std::string_view(all).substr(at, n)) << at << "+" << n;
      at += n + rng.next() % 700;
      passed++;
    }
    EXPECT_GT(passed, 10000u);
    for (auto [a, n] : ranges) ASSERT_EQ(in.view(a, n), std::string_view(all).substr(a, n)) << a << "+" << n;
  }
  std::filesystem::remove_all(dir);
}

// put_text_statistics as it was written with count_scripts' map: the scripts in name order.
std::string text_statistics_from_map(std::string_view text) {
  std::string out;
  std::map<std::string, size_t> sc;
  count_scripts(text, sc);
  put_varint(out, lathe::utf8_length(text));
  put_varint(out, sc.size());
  for (auto& [name, c] : sc) {
    put_varint(out, name.size());
    out += name;
    put_varint(out, c);
  }
  return out;
}

TEST(PrepareSpool, TextStatisticsAsTheScriptMapWroteThem) {
  // Letters of every script (each alone, all together, in every order), digits, marks and bytes that
  // are no letter, so that any subset of the scripts turns up, in any order of first appearance.
  const char* const pieces[] = {"a", "Zq", "가", "힣", "中", "漢字", "か", "カ", "д", "Ж", "α", "ß", "é",
                                "1", " ", "\n", ".", "😀", "\xFF", "ー", "\u0301", "Ω"};
  Rng rng{11};
  for (int round = 0; round < 20000; round++) {
    std::string t;
    for (int k = int(rng.next() % 24); k > 0; k--) t += pieces[rng.next() % std::size(pieces)];
    if (rng.next() % 4 == 0) t += std::string(rng.next() % 40, 'x');  // the eight-byte ASCII runs
    std::string got;
    put_text_statistics(got, t);
    ASSERT_EQ(got, text_statistics_from_map(t)) << testing::PrintToString(t);
    size_t char_len = 0;
    std::map<std::string, size_t> back, want;
    ASSERT_EQ(get_text_statistics(got, char_len, &back), got.size());
    count_scripts(t, want);
    EXPECT_EQ(back, want);
  }
}
