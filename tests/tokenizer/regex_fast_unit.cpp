// regex_fast.cpp's scanner gives exactly Oniguruma's matches for the pre-tokenizer patterns it knows:
// on every code point (as a letter, number, space or punctuation, and after an apostrophe), and on
// random text built from the characters where the alternatives meet.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "lathe/core/utf8.h"
#include "lathe/tokenizer/pipeline.h"

using lathe::tok::Regex;
using Matches = std::vector<std::pair<uint32_t, uint32_t>>;

namespace {

const std::vector<std::string>& patterns() {
  static const std::vector<std::string> p = {
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  };
  return p;
}

std::string cp_str(uint32_t cp) {
  std::string s;
  lathe::utf8_append(s, cp);
  return s;
}

// Compares scanner and Oniguruma on s; on a difference reports the first differing match.
::testing::AssertionResult same(const Regex& re, const std::string& s) {
  Matches fast, ref;
  re.find_all(s, fast);
  re.find_all_oniguruma(s, ref);
  if (fast == ref) return ::testing::AssertionSuccess();
  size_t k = 0;
  while (k < fast.size() && k < ref.size() && fast[k] == ref[k]) k++;
  auto show = [&](const Matches& m) {
    return k < m.size() ? "[" + std::to_string(m[k].first) + "," + std::to_string(m[k].second) + ") '" +
                              s.substr(m[k].first, m[k].second - m[k].first) + "'"
                        : std::string("(none)");
  };
  const size_t at = k < ref.size() ? ref[k].first : k < fast.size() ? fast[k].first : 0;
  return ::testing::AssertionFailure() << "match " << k << ": scanner " << show(fast) << ", oniguruma " << show(ref)
                                       << " near '" << s.substr(at >= 12 ? at - 12 : 0, 40) << "'";
}

class RegexFast : public ::testing::TestWithParam<size_t> {};

TEST_P(RegexFast, KnowsThePattern) { EXPECT_TRUE(Regex(patterns()[GetParam()]).has_fast_path()); }

// Every scalar value in each context where its class decides the match: alone between letters, after
// a space, after an apostrophe (contractions, case folding), between digits, before a newline.
TEST_P(RegexFast, EveryCodePointInEveryContext) {
  const Regex re(patterns()[GetParam()]);
  const char* contexts[][2] = {{"a", "b"}, {"'", "e "}, {"  ", "\n"}, {"1", "."}};
  for (auto& ctx : contexts) {
    std::string s;
    // Every code point of the planes in use, then every 13th (the classes come from Oniguruma itself,
    // block by block, so what can differ is how the scanner combines them, not a single code point).
    for (uint32_t cp = 1; cp < 0x110000; cp += cp < 0x30000 ? 1 : 13) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      s += ctx[0] + cp_str(cp) + ctx[1];
      if (s.size() > (1u << 16) || cp == 0x10FFFF) {
        ASSERT_TRUE(same(re, s)) << "context '" << ctx[0] << "' cp '" << ctx[1] << "', up to U+" << std::hex << cp;
        s.clear();
      }
    }
  }
}

// Random strings over the characters where the alternatives meet: spaces of every kind, CR/LF runs,
// apostrophes and contraction letters in both cases, long s, digits of several scripts, marks,
// Hangul, Han, symbols, emoji.
TEST_P(RegexFast, RandomTextLikeOniguruma) {
  const Regex re(patterns()[GetParam()]);
  const std::vector<uint32_t> alphabet = {
      ' ', ' ', ' ', '\t', '\r', '\n', '\n', 0x0B, 0x0C, 0x85, 0xA0, 0x2028, 0x3000, 0x200B, '\'', '\'', 's', 'S', 't',
      'r', 'R', 'e', 'E', 'v', 'm', 'l', 'L', 'd', 'x', 0x17F, 0x212A, 0xFB06, '0', '7', 0x0663, 0x00B2, 0x2167, '.',
      ',', '!', '-', '_', '"', '(', 0x0301, 0x093F, 0xAC00, 0xD55C, 0x4E2D, 0x3042, 0x2014, 0x20AC, 0x1F600, 0x10400};
  std::mt19937 rng(42 + unsigned(GetParam()));
  for (int t = 0; t < 20000; t++) {
    std::string s;
    for (int k = 0, n = int(rng() % 24); k < n; k++) s += cp_str(alphabet[rng() % alphabet.size()]);
    ASSERT_TRUE(same(re, s)) << "string #" << t;
  }
}

// The byte-level path (ASCII and Hangul syllables, matched on the bytes) with its hand-over to the
// general scanner at the first piece it cannot decide gives the general scanner's matches, validity
// and NFC quick check on every text: random texts mostly of what the byte path knows, with the code
// points next to it (U+ABFF, U+D7A4, the Jamo letter U+D7B0, long s after an apostrophe, letters, marks,
// digits and spaces past ASCII) where a run, a look-ahead or a contraction reaches them, and bytes that
// are not UTF-8 at every position.
::testing::AssertionResult same_as_general(int which, const std::string& s) {
  Matches fast, general;
  bool fast_quick = false, general_quick = true;
  const bool fast_ok = lathe::tok::fast_find_all(which, s, fast, &fast_quick);
  const bool general_ok = lathe::tok::fast_find_all_general(which, s, general, &general_quick);
  if (fast_ok != general_ok)
    return ::testing::AssertionFailure() << "valid: byte path " << fast_ok << ", general " << general_ok;
  if (!fast_ok) return ::testing::AssertionSuccess();  // the matches of text that is not UTF-8 are not used
  if (fast_quick != general_quick)
    return ::testing::AssertionFailure() << "nfc_quick: byte path " << fast_quick << ", general " << general_quick;
  if (fast_quick != lathe::tok::nfc_quick_yes(s))
    return ::testing::AssertionFailure() << "nfc_quick " << fast_quick << " but nfc_quick_yes says otherwise";
  if (fast == general) return ::testing::AssertionSuccess();
  size_t k = 0;
  while (k < fast.size() && k < general.size() && fast[k] == general[k]) k++;
  auto show = [&](const Matches& m) {
    return k < m.size() ? "[" + std::to_string(m[k].first) + "," + std::to_string(m[k].second) + ")" : std::string("(none)");
  };
  return ::testing::AssertionFailure() << "match " << k << ": byte path " << show(fast) << ", general " << show(general);
}

std::string escaped(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) r += char(c);
    else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      r += buf;
    }
  }
  return r;
}

TEST_P(RegexFast, BytePathHandsOverLikeTheGeneralScanner) {
  const int which = lathe::tok::fast_regex_for(patterns()[GetParam()]);
  ASSERT_GE(which, 0);
  const Regex re(patterns()[GetParam()]);
  const std::vector<std::string> known = {
      " ", " ", " ", "  ", "   ", "\t", "\r", "\n", "\n", "\r\n", " \n", "\n\n", "\x0B", "\x0C", "a", "word", "Ab",
      "xyz", "s", "S", "e", "E", "l", "L", "t", "re", "0", "7", "123", "1234", ".", ",", "!", "...", "-", "\"", "(",
      "'", "'", "'", "'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'d",
      "'D", "'x", "'r", "'l", cp_str(0xAC00), cp_str(0xD7A3), cp_str(0xD55C), cp_str(0xAD6D), cp_str(0xAC00) + cp_str(0xD7A3),
      cp_str(0xB9D0) + cp_str(0xC694), " " + cp_str(0xD55C) + cp_str(0xAE00), "\x7F", std::string(1, '\0')};
  const std::vector<std::string> other = {
      cp_str(0xABFF), cp_str(0xD7A4), cp_str(0xD7B0), cp_str(0x17F), "'" + cp_str(0x17F), cp_str(0xE9), cp_str(0x436),
      cp_str(0x4E00), cp_str(0xB7), cp_str(0x2026), cp_str(0x1F600), cp_str(0x301), "e" + cp_str(0x301), cp_str(0xFF11),
      cp_str(0x663), cp_str(0xA0), cp_str(0x3000), cp_str(0x85), cp_str(0x2028), cp_str(0x1161), cp_str(0x11A8)};
  const std::vector<std::string> invalid = {"\xFF", "\x80", "\xC3", "\xEA", "\xED\x9E", "\xEA\xB0", "\xED\xA0\x80",
                                            "\xE0\x80\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "\xF0\x9F\x98"};
  std::mt19937 rng(7 + unsigned(GetParam()));
  for (int t = 0; t < 40000; t++) {
    std::string s;
    const int n = int(rng() % 28);
    const unsigned mix = rng() % 4;  // a quarter of the texts are made of what the byte path knows only
    for (int k = 0; k < n; k++) {
      const unsigned r = rng() % 100;
      if (mix && r < 2) s += invalid[rng() % invalid.size()];
      else if (mix && r < 2 + 4 * mix) s += other[rng() % other.size()];
      else s += known[rng() % known.size()];
    }
    ASSERT_TRUE(same_as_general(which, s)) << "text #" << t << " '" << escaped(s) << "'";
    if (mix == 0 && (t & 7) == 0) {
      ASSERT_TRUE(same(re, s)) << "text #" << t;
      // Cut short and broken at every byte: a Hangul syllable cut in two, a stray byte anywhere.
      for (size_t k = 0; k < s.size(); k++) {
        ASSERT_TRUE(same_as_general(which, s.substr(0, k))) << "'" << escaped(s) << "' cut at " << k;
        std::string broken = s;
        broken.insert(k, invalid[k % invalid.size()]);
        ASSERT_TRUE(same_as_general(which, broken)) << "'" << escaped(broken) << "'";
      }
    }
  }
}

// Every three bytes led by E9..EE (the Hangul syllables' leads EA..ED and their neighbours), valid
// or not, between letters, after a space and before a space: the byte path's test of a syllable on
// the raw bytes must take exactly U+AC00..U+D7A3 and hand everything else over.
TEST_P(RegexFast, BytePathTellsHangulFromEveryThreeBytes) {
  const int which = lathe::tok::fast_regex_for(patterns()[GetParam()]);
  ASSERT_GE(which, 0);
  for (int lead = 0xE9; lead <= 0xEE; lead++)
    for (int b1 = 0; b1 < 256; b1++)
      for (int b2 = 0; b2 < 256; b2++) {
        const std::string seq{char(lead), char(b1), char(b2)};
        ASSERT_TRUE(same_as_general(which, "a" + seq + "b")) << "'" << escaped(seq) << "'";
        ASSERT_TRUE(same_as_general(which, " " + seq + " ")) << "'" << escaped(seq) << "'";
      }
}

INSTANTIATE_TEST_SUITE_P(Patterns, RegexFast, ::testing::Range<size_t>(0, 6));

TEST(RegexFast, InvalidUtf8AndOtherPatternsGoToOniguruma) {
  const Regex re(patterns()[3]);
  Matches fast, ref;
  const std::string bad = "ab\xff\xfe cd 12\xc3";
  re.find_all(bad, fast);
  re.find_all_oniguruma(bad, ref);
  EXPECT_EQ(fast, ref);
  EXPECT_FALSE(Regex("\\p{L}+").has_fast_path());
  EXPECT_FALSE(Regex(patterns()[0] + "|x").has_fast_path());
}

}  // namespace
