// regex_fast.cpp's scanner gives exactly Oniguruma's matches for the pre-tokenizer patterns it knows:
// on every code point (as a letter, number, space or punctuation, and after an apostrophe), and on
// random text built from the characters where the alternatives meet.
#include <gtest/gtest.h>

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
