// The fused byte-level encode (Pipeline::encode_fused: scanner split, NFC quick check on the way, word
// cache keyed by the bytes before the ByteLevel mapping) gives the general path's ids and marks, bit for
// bit, on random texts of Korean, English, emoji, combining marks and Hangul jamo (which NFC composes),
// whitespace runs, contractions, long words (past the cache's word limit), the ByteLevel alphabet itself
// (Ġ is a word of its own, not a space), added tokens whole, cut and spaced, and invalid UTF-8 (as
// Tokenizer::encode sanitizes it, and as the fused path finds it when it checks the text itself). Every fixture tokenizer, and variants of GPT-2's tokenizer.json that
// take the fused path's other branches: ByteLevel with add_prefix_space, without its regex, under NFC
// with a normalized added token, and Sequence [Split, ByteLevel]; plus shapes that must not take it.
#include <utf8proc.h>

#include <random>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/core/utf8.h"
#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using json = nlohmann::json;

const std::vector<std::string>& pieces() {
  static const std::vector<std::string> p = {
      "Hello", " world", "the", " of", "x", "A", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\r", "\x0B",
      "안녕하세요", " 한국어", "임대차", "계약", "\xE1\x84\x80\xE1\x85\xA1",  // jamo: NFC makes 가 of them
      "\xEA\xB0\x80\xE1\x86\xA8",  // 가 + trailing jamo: NFC makes 각
      "e\xCC\x81", "\xC3\xA9", "\xE2\x84\xAB", "\xEF\xAC\x81", "\xC5\xBF", "'s", "'S", "'ll", "'LL", "'re",
      "don't", "\xC5\xBF's", "'\xC5\xBF", "123", "4567", "0.5", "!?", "...", "--", "()", "\"", "\xE3\x80\x80",
      "\xC2\xA0", "\xE2\x80\x8B", "\xC4\xA0", "\xC4\x8A", "\xC4\xA0hello", "\xC3\xA0", "中文", "日本語",
      "👨‍👩‍👧‍👦", "🎉", "😀", "<", "|", ">", "<|", "|>", "assistant\n", "user", ":", "_",
      std::string(1, '\0'), "\xFF", "\xC3", "\xE2\x82", "\xED\xA0\x80", "\xF0\x9F\x98", "\x80"};
  return p;
}

std::string long_word(std::mt19937& rng) {
  std::string s;
  const int n = 60 + int(rng() % 80);
  for (int i = 0; i < n; i++) {
    if (rng() % 3) s += char('a' + rng() % 26);
    else s += "가";
  }
  return s;
}

std::string random_text(std::mt19937& rng, const std::vector<std::string>& added) {
  std::string s;
  const int n = int(rng() % 30);
  for (int i = 0; i < n; i++) {
    const unsigned r = rng() % 20;
    if (!added.empty() && r < 3) {
      const std::string& t = added[rng() % added.size()];
      if (r == 0) s += t.substr(0, rng() % (t.size() + 1));
      else if (r == 1) s += " " + t + (rng() % 2 ? " " : "\n");
      else s += t;
    } else if (r == 3) {
      s += long_word(rng);
    } else {
      s += pieces()[rng() % pieces().size()];
    }
  }
  return s;
}

bool same_marks(const std::vector<EncodeMarks::Mark>& a, const std::vector<EncodeMarks::Mark>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i].content_end != b[i].content_end || a[i].resume != b[i].resume || a[i].tokens != b[i].tokens) return false;
  return true;
}

// Both paths on `texts` random texts (each encoded twice: the second time from the word cache).
void check_paths(const Tokenizer& tok, const std::string& name, int texts, uint32_t seed) {
  const tok::Pipeline& p = tok.pipeline();
  ASSERT_TRUE(p.fast.on) << name << " does not take the fused path";
  std::vector<std::string> added;
  for (const auto& t : p.added) added.push_back(t.content);
  std::mt19937 rng(seed);
  std::string clean;
  size_t tokens = 0;
  for (int k = 0; k < texts; k++) {
    const std::string raw = random_text(rng, added);
    const std::string_view text = utf8_sanitize(raw, clean) ? std::string_view(clean) : std::string_view(raw);
    for (int pass = 0; pass < 2; pass++) {
      std::vector<int32_t> general, fused;
      std::vector<EncodeMarks::Mark> mg, mf;
      p.encode_general(text, general, &mg, false);
      ASSERT_TRUE(p.encode_fused(text, fused, &mf, false));
      ASSERT_EQ(fused, general) << name << " text " << k << " pass " << pass << ": '" << text << "'";
      ASSERT_TRUE(same_marks(mf, mg)) << name << " text " << k << " marks";
      // Unchecked (the text as it came, maybe not UTF-8): accepted exactly when it is UTF-8, then with
      // the same ids; refused with `out` and the marks as they were.
      std::vector<int32_t> unchecked = {7};
      std::vector<EncodeMarks::Mark> mu;
      const bool took = p.encode_fused(raw, unchecked, &mu, true);
      if (p.fast.checks_utf8) {
        ASSERT_EQ(took, valid_utf8(raw)) << name << " text " << k;
      } else {
        ASSERT_FALSE(took);
      }
      if (took) {
        ASSERT_EQ(std::vector<int32_t>(unchecked.begin() + 1, unchecked.end()), general) << name << " text " << k;
        ASSERT_TRUE(same_marks(mu, mg)) << name << " text " << k << " marks (unchecked)";
      } else {
        ASSERT_EQ(unchecked, std::vector<int32_t>{7});
        ASSERT_TRUE(mu.empty());
      }
      EncodeMarks em;
      ASSERT_EQ(tok.encode(raw, em), general) << name << " text " << k;
      ASSERT_EQ(em.exact, p.marks_exact && valid_utf8(raw));
      if (em.exact) ASSERT_TRUE(same_marks(em.marks, mg));
      // The public API (sanitizing, then the fused path) agrees too.
      ASSERT_EQ(tok.encode(raw, false), general) << name << " text " << k;
      tokens += general.size();
    }
  }
  EXPECT_GT(tokens, size_t(texts));
}

std::unique_ptr<Tokenizer> fixture(const std::string& name) {
  return Tokenizer::load(test::fixture_path("tokenizers/" + name));
}

TEST(EncodeFast, Qwen3MatchesTheGeneralPath) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3/tokenizer.json");
  auto tok = fixture("qwen3");
  EXPECT_TRUE(tok->pipeline().fast.nfc);
  EXPECT_TRUE(tok->pipeline().fast.checks_utf8);
  check_paths(*tok, "qwen3", 3000, 1);
}

TEST(EncodeFast, Llama3MatchesTheGeneralPath) {
  LATHE_REQUIRE_FIXTURE("tokenizers/llama3/tokenizer.json");
  auto tok = fixture("llama3");
  EXPECT_TRUE(tok->pipeline().fast.checks_utf8);
  check_paths(*tok, "llama3", 3000, 2);
}

TEST(EncodeFast, Gpt2MatchesTheGeneralPath) {
  LATHE_REQUIRE_FIXTURE("tokenizers/gpt2/tokenizer.json");
  check_paths(*fixture("gpt2"), "gpt2", 3000, 3);
}

// GPT-2's tokenizer.json with its pre-tokenizer (and normalizer) replaced.
std::unique_ptr<Tokenizer> gpt2_variant(const json& pre, const json& normalizer) {
  json j = json::parse(read_file(test::fixture_path("tokenizers/gpt2/tokenizer.json")));
  j["pre_tokenizer"] = pre;
  j["normalizer"] = normalizer;
  return Tokenizer::from_json(j.dump(), "gpt2 variant");
}

const char* kQwenSplit =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

TEST(EncodeFast, ByteLevelVariantsMatchTheGeneralPath) {
  LATHE_REQUIRE_FIXTURE("tokenizers/gpt2/tokenizer.json");
  const json bl_prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  const json bl_plain = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  const json bl_whole_prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}};
  const json split = {{"type", "Split"}, {"pattern", {{"Regex", kQwenSplit}}}, {"behavior", "Isolated"}, {"invert", false}};
  const json seq = {{"type", "Sequence"}, {"pretokenizers", json::array({split, bl_plain})}};
  const json nfc = {{"type", "NFC"}};
  struct Case {
    const char* name;
    json pre, norm;
  } cases[] = {
      {"ByteLevel add_prefix_space", bl_prefix, nullptr},
      {"ByteLevel add_prefix_space + NFC (normalized <|endoftext|>)", bl_prefix, nfc},
      {"ByteLevel without regex", bl_plain, nullptr},
      {"ByteLevel without regex, add_prefix_space", bl_whole_prefix, nfc},
      {"Sequence [Split, ByteLevel] + NFC", seq, nfc},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    auto tok = gpt2_variant(c.pre, c.norm);
    check_paths(*tok, c.name, 800, seed++);
  }
}

TEST(EncodeFast, OtherShapesTakeTheGeneralPath) {
  LATHE_REQUIRE_FIXTURE("tokenizers/gpt2/tokenizer.json");
  const json bl_plain = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  const json bl_prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}};
  auto split = [](const char* behavior, bool invert, const char* pattern) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", behavior}, {"invert", invert}};
  };
  const json shapes[][2] = {
      // a split the scanner does not know, another behavior, inverted; ByteLevel prefixing each word
      {{{"type", "Sequence"}, {"pretokenizers", json::array({split("Isolated", false, "\\s+"), bl_plain})}}, nullptr},
      {{{"type", "Sequence"}, {"pretokenizers", json::array({split("Removed", false, kQwenSplit), bl_plain})}}, nullptr},
      {{{"type", "Sequence"}, {"pretokenizers", json::array({split("Isolated", true, kQwenSplit), bl_plain})}}, nullptr},
      {{{"type", "Sequence"}, {"pretokenizers", json::array({split("Isolated", false, kQwenSplit), bl_prefix})}}, nullptr},
      // a normalizer other than NFC
      {bl_plain, {{"type", "NFKC"}}},
      {{{"type", "Whitespace"}}, nullptr},
  };
  for (const auto& s : shapes) EXPECT_FALSE(gpt2_variant(s[0], s[1])->pipeline().fast.on) << s[0].dump();
}

// The scanner decides validity as valid_utf8 does (it is the fused path's only check), on random
// bytes around the edges of each sequence length (overlong forms, surrogates, past U+10FFFF, cut).
TEST(EncodeFast, ScannerRefusesExactlyInvalidUtf8) {
  std::mt19937 rng(9);
  const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  std::vector<std::pair<uint32_t, uint32_t>> m;
  size_t valid = 0;
  for (int k = 0; k < 200000; k++) {
    std::string s;
    const int n = 1 + int(rng() % 6);
    for (int i = 0; i < n; i++) s += char(edges[rng() % std::size(edges)]);
    const bool ok = valid_utf8(s);
    valid += ok;
    for (int which = 0; which < 6; which++) ASSERT_EQ(tok::fast_find_all(which, s, m), ok) << k;
  }
  EXPECT_GT(valid, 1000u);
}

// The scanner's NFC flag is nfc_quick_yes of the text it scanned.
TEST(EncodeFast, ScannerNfcFlagIsTheQuickCheck) {
  std::mt19937 rng(5);
  std::vector<std::pair<uint32_t, uint32_t>> m;
  std::string clean;
  for (int k = 0; k < 5000; k++) {
    const std::string raw = random_text(rng, {});
    const std::string_view s = utf8_sanitize(raw, clean) ? std::string_view(clean) : std::string_view(raw);
    bool quick = !tok::nfc_quick_yes(s);
    ASSERT_TRUE(tok::fast_find_all(3, s, m, &quick));
    ASSERT_EQ(quick, tok::nfc_quick_yes(s)) << "'" << s << "'";
  }
}

// nfc_safe code points are never the second half of a composition: the canonical decomposition of
// every code point NFC composes (NFC of it alone is itself: not a composition exclusion or singleton;
// Hangul syllables included) has none past its first code point. With no combining class and no
// decomposition of their own, NFC then has nothing to reorder, decompose or compose.
TEST(NfcQuickCheck, SafeCodePointsAreInNoCompositionPair) {
  size_t decomposing = 0, primary = 0, safe_past_quick = 0;
  for (uint32_t cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    if (cp >= 0x300 && !(cp >= 0xAC00 && cp <= 0xD7A3) && tok::nfc_safe(cp)) safe_past_quick++;
    utf8proc_int32_t d[8];
    int boundclass = 0;
    const auto n = utf8proc_decompose_char(utf8proc_int32_t(cp), d, 8, UTF8PROC_DECOMPOSE, &boundclass);
    ASSERT_GT(n, 0) << cp;
    if (n == 1 && uint32_t(d[0]) == cp) continue;
    decomposing++;
    std::string one;
    utf8_append(one, cp);
    utf8proc_uint8_t* out = nullptr;
    const auto m = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(one.data()), utf8proc_ssize_t(one.size()),
                                &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    ASSERT_GE(m, 0);
    const bool composed = std::string(reinterpret_cast<char*>(out), size_t(m)) == one;
    std::free(out);
    EXPECT_FALSE(tok::nfc_safe(cp) && cp >= 0x300 && !(cp >= 0xAC00 && cp <= 0xD7A3))
        << "U+" << std::hex << cp << " decomposes but is called safe";
    if (!composed) continue;  // an exclusion or singleton: NFC never makes it, its parts stay apart
    primary++;
    for (int k = 1; k < int(n); k++)
      ASSERT_FALSE(tok::nfc_safe(uint32_t(d[k]))) << "U+" << std::hex << d[k] << " ends the decomposition of U+" << cp;
  }
  EXPECT_GT(decomposing, 13000u);  // ~2,000 composites and 11,172 Hangul syllables
  EXPECT_GT(primary, 12000u);
  EXPECT_GT(safe_past_quick, 100000u);  // CJK, symbols, most scripts' letters
}

// Random texts: whenever the quick check says yes, utf8proc's NFC (what the normalizer runs) returns
// the text unchanged; and it says yes often, also for text past U+0300.
TEST(NfcQuickCheck, QuickYesMeansNfcIsTheIdentity) {
  const uint32_t pool[] = {'a', ' ', 'e', 0xE9, 0xC5, 0x212B, 0x300, 0x301, 0x323, 0x344, 0x345, 0x1100, 0x1161,
                           0x11A8, 0xAC00, 0xAC01, 0xD7A3, 0x3131, 0x4E2D, 0x300C, 0x2460, 0x2192, 0x2026, 0x0915,
                           0x093C, 0x0958, 0x0B47, 0x0B3E, 0x0B57, 0x0627, 0x0653, 0x0F73, 0xFB1D, 0x1F600, 0x200D,
                           0xFE0F, 0x0F42, 0x0FB7, 0x0CBF, 0x0CD5, 0x0DD9, 0x0DCF, 0x1B05, 0x1B35, 0x3099, 0x304B, 0x30AB, 0xFF76};
  std::mt19937 rng(11);
  size_t yes = 0, yes_past_quick = 0;
  for (int k = 0; k < 200000; k++) {
    std::string s;
    bool past = false;
    const int n = 1 + int(rng() % 6);
    for (int i = 0; i < n; i++) {
      uint32_t cp = rng() % 4 ? pool[rng() % std::size(pool)] : rng() % 0x30000;
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      past = past || (cp >= 0x300 && !(cp >= 0xAC00 && cp <= 0xD7A3));
      utf8_append(s, cp);
    }
    if (!tok::nfc_quick_yes(s)) continue;
    yes++;
    yes_past_quick += past;
    utf8proc_uint8_t* out = nullptr;
    const auto m = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &out,
                                utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    ASSERT_GE(m, 0);
    const std::string nfc(reinterpret_cast<char*>(out), size_t(m));
    std::free(out);
    ASSERT_EQ(nfc, s) << "case " << k;
  }
  EXPECT_GT(yes, 20000u);
  EXPECT_GT(yes_past_quick, 10000u);
}

}  // namespace
}  // namespace lathe
