// core/utf8.h: the strict decoder against the Unicode well-formedness table, the three treatments of
// invalid input (strict per byte, maximal subparts, unchecked), encoding, counting and boundaries.
#include "lathe/core/utf8.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace {

using namespace std::string_literals;

// The well-formed byte sequences of Unicode 15 table 3-7, checked the slow way.
bool well_formed(std::string_view s) {
  size_t i = 0;
  auto in = [&](size_t k, int lo, int hi) {
    return i + k < s.size() && uint8_t(s[i + k]) >= lo && uint8_t(s[i + k]) <= hi;
  };
  while (i < s.size()) {
    const uint8_t b = uint8_t(s[i]);
    size_t n;
    if (b <= 0x7F) n = 1;
    else if (b >= 0xC2 && b <= 0xDF && in(1, 0x80, 0xBF)) n = 2;
    else if (b == 0xE0 && in(1, 0xA0, 0xBF) && in(2, 0x80, 0xBF)) n = 3;
    else if (((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) && in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF)) n = 3;
    else if (b == 0xED && in(1, 0x80, 0x9F) && in(2, 0x80, 0xBF)) n = 3;
    else if (b == 0xF0 && in(1, 0x90, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF)) n = 4;
    else if (b >= 0xF1 && b <= 0xF3 && in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF)) n = 4;
    else if (b == 0xF4 && in(1, 0x80, 0x8F) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF)) n = 4;
    else return false;
    i += n;
  }
  return true;
}

TEST(Utf8, DecodeAndEncodeRoundTripEveryScalarValue) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s;
    lathe::utf8_append(s, cp);
    ASSERT_EQ(s.size(), size_t(cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4)) << cp;
    int len = 0;
    ASSERT_EQ(lathe::utf8_decode(s, 0, &len), int32_t(cp)) << cp;
    ASSERT_EQ(len, int(s.size()));
    ASSERT_EQ(lathe::utf8_lead_len(uint8_t(s[0])), len);
  }
  std::string s;
  lathe::utf8_append(s, 0xFFFF);  // a noncharacter is still three bytes (utf8proc wrote one 0xFF)
  EXPECT_EQ(s, "\xEF\xBF\xBF");
}

TEST(Utf8, StrictDecoderRejectsOverlongsSurrogatesAndOutOfRange) {
  for (std::string bad : {"\xC0\x80"s, "\xC1\xBF"s, "\xE0\x9F\xBF"s, "\xED\xA0\x80"s, "\xF0\x8F\xBF\xBF"s,
                          "\xF4\x90\x80\x80"s, "\xF5\x80\x80\x80"s, "\x80"s, "\xFF"s, "\xE2\x82"s, "\xC3"s}) {
    int len = 7;
    EXPECT_EQ(lathe::utf8_decode(bad, 0, &len), -1) << bad.size();
    EXPECT_EQ(len, 1);
    EXPECT_FALSE(lathe::valid_utf8(bad));
  }
  int len;
  EXPECT_EQ(lathe::utf8_decode("a\xEA\xB0\x80"s, 1, &len), 0xAC00);
  EXPECT_EQ(len, 3);
}

TEST(Utf8, ValidatorMatchesTheTableOnRandomBytes) {
  // Bytes drawn mostly from the boundaries of table 3-7, so every rule is hit many times; long runs
  // also cross the 8-byte ASCII fast path and the inline three-byte path.
  const uint8_t edge[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                          0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  std::mt19937 rng(7);
  int valid = 0;
  for (int it = 0; it < 200000; it++) {
    std::string s;
    if (it % 2) s = "plain ascii text ";
    for (int k = 0, n = 1 + int(rng() % 6); k < n; k++)
      s += char(rng() % 4 ? edge[rng() % sizeof edge] : uint8_t(rng()));
    const bool want = well_formed(s);
    valid += want;
    ASSERT_EQ(lathe::valid_utf8(s), want) << it;
    ASSERT_EQ(lathe::valid_utf8_scalar(s), want) << it;
    std::string fixed;
    size_t bad = lathe::utf8_sanitize(s, fixed);
    ASSERT_EQ(bad == 0, want);
    if (bad) {
      ASSERT_TRUE(lathe::valid_utf8(fixed));
      std::string copy = s;
      ASSERT_EQ(lathe::repair_utf8(copy), bad);
      ASSERT_EQ(copy, fixed);
    }
  }
  EXPECT_GT(valid, 1000);  // both outcomes were exercised
}

TEST(Utf8, ValidatorMatchesTheTableOnLongMixedText) {
  // Runs of ASCII of every length around the 8-byte blocks, Korean, Latin, emoji and CJK, with now and
  // then one bad byte or a cut sequence anywhere: the block search must land on every non-ASCII byte.
  const std::string pieces[] = {"a", "ab c", "abcdefg", "abcdefgh", "abcdefghijklmnopq", "한", "한국어 ", "é", "ñu",
                                "😀", "中文", "\u0800", "\uFFFD", "\U0010FFFF", "\u00A0", " ", "\n"};
  const std::string bad[] = {"\x80", "\xC0\x80", "\xE0\x9F\xBF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF",
                             "\xEA\xB0", "\xC3", "\xF0\x9F\x98"};
  std::mt19937 rng(11);
  int valid = 0;
  for (int it = 0; it < 50000; it++) {
    std::string s;
    // Now and then a text of several hundred bytes: the SIMD validator works in 64-byte blocks.
    for (int k = 0, n = int(rng() % (it % 10 ? 40 : 400)); k < n; k++) s += pieces[rng() % std::size(pieces)];
    if (rng() % 2) s.insert(rng() % (s.size() + 1), bad[rng() % std::size(bad)]);
    const bool want = well_formed(s);
    valid += want;
    ASSERT_EQ(lathe::valid_utf8(s), want) << testing::PrintToString(s);
    ASSERT_EQ(lathe::valid_utf8_scalar(s), want) << testing::PrintToString(s);
  }
  EXPECT_GT(valid, 10000);
  EXPECT_LT(valid, 40000);
}

TEST(Utf8, InvalidInputTreatments) {
  // Strict: one U+FFFD per invalid byte; "\xE2\x82" is two bytes, so two replacements.
  std::string out;
  EXPECT_EQ(lathe::utf8_sanitize("a\xE2\x82z\xFF", out), 3u);
  EXPECT_EQ(out, "a\xEF\xBF\xBD\xEF\xBF\xBDz\xEF\xBF\xBD");
  EXPECT_EQ(lathe::utf8_sanitize("ok \xEA\xB0\x80", out), 0u);
  EXPECT_TRUE(out.empty());  // valid input is used as it is
  std::string s = "fine";
  EXPECT_EQ(lathe::repair_utf8(s), 0u);
  EXPECT_EQ(s, "fine");
  // Maximal subparts (Rust from_utf8_lossy): the truncated "\xE2\x82" is one U+FFFD, a surrogate
  // lead "\xED\xA0" is two (0xA0 cannot follow 0xED).
  EXPECT_EQ(lathe::utf8_lossy("a\xE2\x82z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(lathe::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(lathe::utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(lathe::utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  // Code points: strict, U+FFFD per invalid byte.
  EXPECT_EQ(lathe::utf8_code_points("\xEA\xB0\x80\xE2\x82x"), (std::vector<char32_t>{0xAC00, 0xFFFD, 0xFFFD, 'x'}));
  // Unchecked: the same value as strict on valid text; on broken text a defined answer and advance.
  std::string_view v = "\xEA\xB0\x80\xF0\x9F\x98\x80";
  size_t i = 0;
  EXPECT_EQ(lathe::utf8_decode_unchecked(v, i), 0xAC00u);
  EXPECT_EQ(i, 3u);
  EXPECT_EQ(lathe::utf8_decode_unchecked(v, i), 0x1F600u);
  EXPECT_EQ(i, 7u);
  std::string_view broken = "\x80\xE2\x82";
  i = 0;
  EXPECT_EQ(lathe::utf8_decode_unchecked(broken, i), 0x80u);  // a stray continuation byte is itself
  EXPECT_EQ(i, 1u);
  EXPECT_EQ(lathe::utf8_decode_unchecked(broken, i), (0x2u << 6) | 0x2u);  // the missing byte is left out
  EXPECT_EQ(i, 4u);  // advanced by the claimed length, past the end
}

TEST(Utf8, LengthEightBytesAtATimeMatchesByteLoop) {
  // utf8_length counts continuation bytes a word at a time; the byte loop is the definition. Random
  // byte strings (every byte value, so invalid UTF-8 too), lengths across the 8-byte steps, and starts
  // at every alignment; then strings of only one byte class.
  std::mt19937 rng(22);
  const uint8_t picks[] = {0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xDF, 0xE0, 0xEA, 0xED, 0xEF, 0xF0, 0xF4, 0xFF};
  for (int round = 0; round < 20000; round++) {
    std::string s(rng() % 70, '\0');
    const bool any = round % 2;
    for (auto& c : s) c = char(any ? uint8_t(rng()) : picks[rng() % std::size(picks)]);
    const size_t from = s.empty() ? 0 : rng() % (s.size() + 1);
    const std::string_view v = std::string_view(s).substr(from);
    ASSERT_EQ(lathe::utf8_length(v), lathe::utf8_length_bytewise(v)) << "round " << round;
  }
  for (int b = 0; b < 256; b++)
    for (size_t n : {size_t(1), size_t(7), size_t(8), size_t(9), size_t(64), size_t(67)}) {
      const std::string s(n, char(b));
      ASSERT_EQ(lathe::utf8_length(s), lathe::utf8_length_bytewise(s)) << b << " x" << n;
    }
  EXPECT_EQ(lathe::utf8_length(std::string(17, char(0x80))), 0u);
  EXPECT_EQ(lathe::utf8_length(std::string(17, char(0x40))), 17u);
}

TEST(Utf8, CountingOffsetsAndBoundaries) {
  const std::string s = "a\xEA\xB0\x80" "b\xF0\x9F\x98\x80";  // a 가 b 😀
  EXPECT_EQ(lathe::utf8_length(s), 4u);
  EXPECT_EQ(lathe::utf8_length(""), 0u);
  EXPECT_EQ(lathe::utf8_offset(s, 0), 0u);
  EXPECT_EQ(lathe::utf8_offset(s, 1), 1u);
  EXPECT_EQ(lathe::utf8_offset(s, 2), 4u);
  EXPECT_EQ(lathe::utf8_offset(s, 3), 5u);
  EXPECT_EQ(lathe::utf8_offset(s, 4), s.size());
  EXPECT_EQ(lathe::utf8_offset(s, 99), s.size());
  EXPECT_EQ(lathe::utf8_char_start(s, 3), 1u);
  EXPECT_EQ(lathe::utf8_char_start(s, 8), 5u);
  EXPECT_EQ(lathe::utf8_char_start(s, 4), 4u);
  EXPECT_EQ(lathe::utf8_char_start(s, 8, 7), 7u);  // never below lo
  EXPECT_TRUE(lathe::utf8_is_continuation(s[2]));
  EXPECT_FALSE(lathe::utf8_is_continuation(s[1]));
  EXPECT_EQ(lathe::utf8_lead_len(0xFF), 1);
  EXPECT_EQ(lathe::utf8_lead_len(0x80), 1);
}

}  // namespace
