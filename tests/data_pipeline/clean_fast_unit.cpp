// The clean stage's and dedup normalization's fast paths against the general code they short-cut:
// clean_text's already-clean check against clean_text_general, the exact-id repetition statistics
// against a direct count over word vectors, and dedup_normalize's ASCII table against the branchy
// loop it replaced. Inputs are random Korean / English / CJK / Latin / emoji / control / zero-width /
// HTML / combining / invalid-UTF-8 pieces, so every branch of each fast path is reached both ways.
#include <gtest/gtest.h>

#include <utf8proc.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "lathe/data/clean.h"
#include "lathe/data/clean_internal.h"
#include "lathe/data/dedup.h"

using namespace lathe::data;

namespace {

struct Rng {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(s >> 33);
  }
};

// Pieces: most of them pass already_clean, the rest each break it in one way.
const char* const kPieces[] = {
    "hello", "World", "a", "Z9", "3.14", "(x)", "user@mail.com", "010-1234-5678", ":", ";", "!", "?", "'",
    "한국어", "서울", "가", "힣", "中文", "漢", "é", "Ñ", "ǅ", "ʼ", " ", " ", " ", "\n", "\n", "\n\n",
    // breakers
    "  ", "\t", "\r\n", "\r", "\x01", "\x7f", "\u00A0", "\u00AD", "\u0085", "\u2003", "\u200B", "\u2060",
    "\u3000", "\uFEFF", "\u202F", "ＡＢ", "①", "ª", "²", "😀", "e\u0301", "\u1100\u1161", "\u0300",
    "<br>", "<b>", "&amp;", "&", "<", "\xE0\x80\x8A", "\x80", "\xC2", "\xE4\xB8", "\xED\x9E", "\xED\xA0\x80",
    "\xF0\x9F", "\xC3", "\xEA\xB0", "\xE3\x81\x82", "\u4DFF", "\uA000", "\u00B5", "\n \n", " \n", "\n "};

std::string random_text(Rng& rng, int max_pieces, bool mostly_clean) {
  std::string s;
  const int len = int(rng.next() % uint32_t(max_pieces + 1));
  const size_t clean_pieces = 29;  // the first 29 pieces keep a text already clean when well placed
  for (int k = 0; k < len; k++) {
    size_t at = mostly_clean && rng.next() % 16 != 0 ? rng.next() % clean_pieces : rng.next() % std::size(kPieces);
    s += kPieces[at];
  }
  return s;
}

TEST(CleanFast, AlreadyCleanMatchesGeneralPath) {
  Rng rng{2024};
  size_t fast = 0, total = 0;
  for (int round = 0; round < 20000; round++) {
    const std::string s = random_text(rng, 12, round % 2 == 0);
    for (const char* norm : {"nfc", "nfkc", "none"}) {
      for (int opts = 0; opts < 16; opts += (round % 5 == 0 ? 1 : 5)) {
        CleanOptions o;
        o.normalize = norm;
        o.remove_control = opts & 1;
        o.remove_zero_width = opts & 2;
        o.normalize_whitespace = opts & 4;
        o.strip_html = opts & 8;
        std::string got = s, want = s;
        clean_text(got, o);
        clean_detail::clean_text_general(want, o);
        ASSERT_EQ(got, want) << "input bytes: " << testing::PrintToString(s) << " normalize " << norm << " options "
                             << opts;
        const bool quick = clean_detail::already_clean(s, o.normalize == "nfkc");
        if (quick) {
          ASSERT_EQ(want, s) << "already_clean but the general path changes " << testing::PrintToString(s);
        }
        fast += quick;
        total++;
      }
    }
  }
  // Both ways are exercised: a good share of the inputs take the shortcut, and many do not.
  EXPECT_GT(fast, total / 10);
  EXPECT_LT(fast, total * 9 / 10);
}

TEST(CleanFast, AlreadyCleanBlocksMatchByteLoop) {
  // Texts long enough for the 64-byte blocks: mostly what already_clean accepts (ASCII words, Hangul,
  // CJK, single spaces, one or two newlines), with now and then one piece that breaks it or sits on an
  // edge of a range the blocks check (U+4DFF/U+4E00, U+ABFF/U+AC00, U+D7A3/U+D7A4, U+9FFF/U+A000),
  // a Latin letter (the byte loop's, never a block's), a stray continuation byte or a cut character, at
  // every position of a block. already_clean must say what the byte loop says, under NFC and NFKC.
  const char* const words[] = {"hello", "a", "Z9", "(x)", "3.14", "!", "\u4E00", "\u9FFF", "\uAC00",
                               "\uD7A3", "한국어", "서울특별시", "中文", "word한국", "x\u4E00y"};
  const char* const seps[] = {" ", " ", " ", " ", " ", "\n", "\n\n"};
  const char* const bad[] = {"\u4DFF", "\uABFF", "\uD7A4", "\uA000", "\uD7FF", "é", "ÿ", "  ", "\n\n\n",
                             " \n", "\n ", "<", "&", "\t", "\x80", "\xEA\xB0", "\xED", "\x7F", "\x01",
                             "\xC2\xA0", "\xF0\x9F\x98\x80", "\xE3\x81\x82"};
  Rng rng{77};
  size_t clean = 0, long_ones = 0;
  for (int round = 0; round < 30000; round++) {
    std::string t = "w";
    const int pieces = int(rng.next() % 300);
    const int breaks = rng.next() % 3 == 0 ? 0 : 1 + int(rng.next() % 2);
    std::vector<int> at(static_cast<size_t>(breaks), 0);
    for (int& a : at) a = pieces ? int(rng.next() % uint32_t(pieces)) : 0;
    for (int k = 0; k < pieces; k++) {
      t += seps[rng.next() % std::size(seps)];
      t += words[rng.next() % std::size(words)];
      for (int a : at)
        if (a == k) t += bad[rng.next() % std::size(bad)];
    }
    if (rng.next() % 4) t += "z";  // else it may end in a separator
    for (bool compat : {false, true}) {
      const bool want = clean_detail::already_clean_bytewise(t, compat);
      ASSERT_EQ(clean_detail::already_clean(t, compat), want) << (compat ? "NFKC: " : "NFC: ") << t;
      clean += want;
    }
    long_ones += t.size() >= 256;
  }
  EXPECT_GT(clean, 10000u);
  EXPECT_GT(long_ones, 15000u);
  // Every way a block can end (after a character, a space, one or two newlines, inside a Hangul
  // syllable) followed by every separator, at every offset around the first two blocks' ends.
  const char* const tails[] = {" ", "\n", "\n\n", "\n\n\n", " \n", "\n ", "  ", "한", "\x80", "x"};
  for (size_t pad = 0; pad < 140; pad++)
    for (const char* a : tails)
      for (const char* b : tails) {
        std::string t = "w";
        while (t.size() < pad) t += t.size() % 5 == 4 ? " " : "k";
        if (t.back() == ' ') t += "k";
        t += a;
        t += "가";
        t += b;
        t += "y tail text to pass the block edge 한국어 文字 and more words here z";
        for (bool compat : {false, true})
          ASSERT_EQ(clean_detail::already_clean(t, compat), clean_detail::already_clean_bytewise(t, compat)) << t;
      }
}

TEST(CleanFast, AlreadyCleanCases) {
  EXPECT_TRUE(clean_detail::already_clean("", false));
  EXPECT_TRUE(clean_detail::already_clean("안녕하세요. Hello, world!\n\n다음 줄", false));
  EXPECT_TRUE(clean_detail::already_clean("Café", false));
  EXPECT_FALSE(clean_detail::already_clean("Café", true));  // NFKC may rewrite Latin-1
  EXPECT_FALSE(clean_detail::already_clean(" leading", false));
  EXPECT_FALSE(clean_detail::already_clean("trailing ", false));
  EXPECT_FALSE(clean_detail::already_clean("two  spaces", false));
  EXPECT_FALSE(clean_detail::already_clean("a\n\n\nb", false));
  EXPECT_FALSE(clean_detail::already_clean("a <br> b", false));
  EXPECT_FALSE(clean_detail::already_clean("e\xCC\x81", false));  // combining acute
  EXPECT_FALSE(clean_detail::already_clean("\xEA\xB0", false));   // truncated Hangul
}

// Repetition statistics counted directly: n-grams as word vectors in a std::map.
RepetitionStats repetition_ref(std::string_view text) {
  RepetitionStats r;
  std::vector<std::string> lines;
  size_t chars = 0;
  for (size_t p = 0; p <= text.size();) {
    size_t nl = std::min(text.find('\n', p), text.size());
    std::string l(text.substr(p, nl - p));
    p = nl + 1;
    if (l.find_first_not_of(" \t") != std::string::npos) {
      lines.push_back(l);
      chars += l.size();
    }
    if (nl == text.size()) break;
  }
  if (lines.size() > 1) {
    std::map<std::string, int> seen;
    size_t dl = 0, dc = 0;
    for (auto& l : lines)
      if (seen[l]++ > 0) dl++, dc += l.size();
    r.dup_line_fraction = double(dl) / double(lines.size());
    if (chars) r.dup_line_char_fraction = double(dc) / double(chars);
  }
  std::vector<std::string> w;
  std::string cur;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!cur.empty()) w.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) w.push_back(cur);
  size_t wc = 0;
  for (auto& x : w) wc += x.size();
  if (wc == 0) return r;
  for (size_t n = 2; n <= 10 && n <= w.size(); n++) {
    std::map<std::vector<std::string>, size_t> count;
    for (size_t i = 0; i + n <= w.size(); i++) count[std::vector<std::string>(w.begin() + i, w.begin() + i + n)]++;
    bool repeats = false;
    for (auto& [g, c] : count) repeats |= c > 1;
    if (n <= 4) {
      size_t best = 0;
      for (auto& [g, c] : count) {
        if (c < 2) continue;
        size_t len = 0;
        for (auto& x : g) len += x.size();
        best = std::max(best, len * c);
      }
      r.top_ngram[n - 2] = double(best) / double(wc);
    } else {
      std::vector<char> cov(w.size(), 0);
      for (size_t i = 0; i + n <= w.size(); i++)
        if (count[std::vector<std::string>(w.begin() + i, w.begin() + i + n)] > 1)
          std::fill(cov.begin() + i, cov.begin() + i + n, 1);
      size_t dup = 0;
      for (size_t i = 0; i < w.size(); i++)
        if (cov[i]) dup += w[i].size();
      r.dup_ngram[n - 5] = double(dup) / double(wc);
    }
    if (!repeats) break;
  }
  return r;
}

TEST(CleanFast, RepetitionStatsMatchDirectCount) {
  // Small vocabularies make repeated n-grams of every size; long words cross the 8-byte hash chunks.
  const char* vocab[] = {"a", "b", "the", "cat", "고양이", "집에", "갑니다", "supercalifragilistic", "x1",
                         "supercalifragilistiX", "", "\n", "\t", "\r\n", "  ", "\n\n"};
  Rng rng{7};
  for (int round = 0; round < 3000; round++) {
    const size_t v = 2 + rng.next() % (std::size(vocab) - 1);
    const int words = int(rng.next() % 120);
    std::string t;
    for (int k = 0; k < words; k++) {
      t += vocab[rng.next() % v];
      t += rng.next() % 7 == 0 ? "\n" : " ";
    }
    const RepetitionStats got = repetition_stats(t), want = repetition_ref(t);
    ASSERT_EQ(got.dup_line_fraction, want.dup_line_fraction) << t;
    ASSERT_EQ(got.dup_line_char_fraction, want.dup_line_char_fraction) << t;
    for (int k = 0; k < 3; k++) ASSERT_EQ(got.top_ngram[k], want.top_ngram[k]) << "n=" << k + 2 << " " << t;
    for (int k = 0; k < 6; k++) ASSERT_EQ(got.dup_ngram[k], want.dup_ngram[k]) << "n=" << k + 5 << " " << t;
  }
  // A text long enough to grow the per-thread tables, then a short one reusing them.
  std::string big;
  for (int k = 0; k < 20000; k++) big += std::to_string(k % 997) + (k % 50 == 0 ? "\n" : " ");
  // Distinct words past the table's first guess (one per 8 bytes) make it start over, larger.
  std::string distinct;
  for (int k = 0; k < 6000; k++) distinct += std::to_string(k % 5000) + " ";
  for (const std::string& t : {big, std::string("one two one two one two"), distinct}) {
    const RepetitionStats got = repetition_stats(t), want = repetition_ref(t);
    for (int k = 0; k < 3; k++) EXPECT_EQ(got.top_ngram[k], want.top_ngram[k]);
    for (int k = 0; k < 6; k++) EXPECT_EQ(got.dup_ngram[k], want.dup_ngram[k]);
    EXPECT_EQ(got.dup_line_fraction, want.dup_line_fraction);
  }
}

// The filter's verdict from the full statistics, in repetition_reason's order.
int verdict_from_stats(const RepetitionStats& r, const CleanOptions& o) {
  if (r.dup_line_fraction > o.max_dup_line_fraction || r.dup_line_char_fraction > o.max_dup_line_char_fraction) return 1;
  for (int k = 0; k < 3; k++)
    if (r.top_ngram[k] > o.max_top_ngram_fraction[k]) return 2;
  for (int k = 0; k < 6; k++)
    if (r.dup_ngram[k] > o.max_dup_ngram_fraction[k]) return 2;
  return 0;
}

TEST(CleanFast, RepetitionVerdictMatchesFullStatistics) {
  // Thresholds from the defaults down to 0 (and one negative, which turns the bounds off), on texts from
  // small to large vocabularies, so that every size is sometimes decisive and sometimes skipped.
  Rng rng{31};
  size_t verdicts[3] = {0, 0, 0};
  for (int round = 0; round < 20000; round++) {
    const size_t vocab = 2 + rng.next() % 200;
    const int words = 20 + int(rng.next() % 200);
    std::string t;
    for (int k = 0; k < words; k++) {
      t += "w" + std::to_string(rng.next() % vocab) + (rng.next() % 3 == 0 ? "xxxxxxx" : "");
      t += rng.next() % 13 == 0 ? "\n" : " ";
    }
    if (rng.next() % 4 == 0) t += "\n" + t.substr(0, t.size() / 3);  // repeated stretches
    CleanOptions o;
    const double scale = (rng.next() % 5) / 4.0;  // 0, 0.25, .., 1 of the defaults
    for (double& x : o.max_top_ngram_fraction) x *= scale;
    for (double& x : o.max_dup_ngram_fraction) x *= scale;
    if (rng.next() % 50 == 0) o.max_dup_ngram_fraction[rng.next() % 6] = -0.01;
    const int got = clean_detail::repetition_verdict(t, o);
    ASSERT_EQ(got, verdict_from_stats(repetition_stats(t), o)) << t;
    verdicts[got]++;
  }
  for (size_t v : verdicts) EXPECT_GT(v, 100u);
}

// The n-gram half of verdict_from_stats: 2 when some n-gram fraction passes its threshold.
int ngram_verdict(const RepetitionStats& r, const CleanOptions& o) {
  RepetitionStats no_lines = r;
  no_lines.dup_line_fraction = no_lines.dup_line_char_fraction = 0;
  return verdict_from_stats(no_lines, o);
}

TEST(CleanFast, RepetitionShortcutProvesOnlyTrueKeeps) {
  // repetition_pass_proven may say "keep" only when the direct count (repetition_ref) has no fraction
  // over its threshold. Thresholds are the defaults scaled, or each set at, just under or just over
  // its text's own fraction, so a bound that undercounts by one word shows. Vocabularies run from 2
  // words (everything repeats) to 3,000 (nothing does), with words of over 15 bytes (hashed keys),
  // Korean and repeated stretches, so each bound of the shortcut is sometimes decisive.
  const std::string kinds[] = {"w", "단어", "x", "longwordlongword_", "q"};
  Rng rng{2024};
  size_t proven = 0, tight = 0, rounds = 6000;
  for (size_t round = 0; round < rounds; round++) {
    const size_t vocab = 2 + rng.next() % (rng.next() % 2 ? 40 : 3000);
    const int words = 20 + int(rng.next() % 300);
    std::string t;
    for (int k = 0; k < words; k++) {
      t += kinds[rng.next() % std::size(kinds)] + std::to_string(rng.next() % vocab);
      t += rng.next() % 11 == 0 ? "\n" : rng.next() % 17 == 0 ? "\t" : " ";
    }
    if (rng.next() % 4 == 0) t += " " + t.substr(t.size() / 2 + rng.next() % (t.size() / 4 + 1));
    const RepetitionStats want = repetition_ref(t);
    CleanOptions o;
    auto near = [&](double f) {
      const double d[] = {0, 1e-12, -1e-12, 0.01, -0.01, 0.05};
      return std::max(0.0, f + d[rng.next() % std::size(d)]);
    };
    const uint32_t mode = rng.next() % 3;
    if (mode == 0) {  // the defaults, scaled
      const double scale = (rng.next() % 5) / 4.0;
      for (double& x : o.max_top_ngram_fraction) x *= scale;
      for (double& x : o.max_dup_ngram_fraction) x *= scale;
    } else if (mode == 1) {  // every threshold near its fraction
      for (int k = 0; k < 3; k++) o.max_top_ngram_fraction[k] = near(want.top_ngram[k]);
      for (int k = 0; k < 6; k++) o.max_dup_ngram_fraction[k] = near(want.dup_ngram[k]);
    } else {  // one threshold near its fraction, the others out of reach (1: no fraction exceeds it)
      for (double& x : o.max_top_ngram_fraction) x = 1;
      for (double& x : o.max_dup_ngram_fraction) x = 1;
      const uint32_t k = rng.next() % 9;
      if (k < 3) o.max_top_ngram_fraction[k] = near(want.top_ngram[k]);
      else o.max_dup_ngram_fraction[k - 3] = near(want.dup_ngram[k - 3]);
    }
    const bool got = clean_detail::repetition_pass_proven(t, o);
    const int truth = ngram_verdict(want, o);
    if (got) {
      ASSERT_EQ(truth, 0) << "proved a keep the count refutes: " << t;
      proven++;
      bool at_edge = false;  // some fraction within 0.011 under its threshold
      for (int k = 0; k < 3; k++)
        at_edge |= want.top_ngram[k] > 0 && o.max_top_ngram_fraction[k] - want.top_ngram[k] < 0.011;
      for (int k = 0; k < 6; k++)
        at_edge |= want.dup_ngram[k] > 0 && o.max_dup_ngram_fraction[k] - want.dup_ngram[k] < 0.011;
      tight += at_edge;
    }
    ASSERT_EQ(clean_detail::repetition_verdict(t, o), verdict_from_stats(want, o)) << t;
  }
  // The shortcut must carry real weight, also where a fraction sits just under its threshold.
  EXPECT_GT(proven, rounds / 5) << proven;
  EXPECT_GT(tight, 100u) << tight;
}

// dedup_normalize's byte loop before its ASCII table (the NFC restart aside): the reference.
std::string normalize_ref(std::string_view text) {
  std::string out;
  bool pending = false;
  auto sep = [&] {
    if (pending && !out.empty()) out += ' ';
    pending = false;
  };
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  for (size_t i = 0; i < text.size();) {
    uint8_t c = s[i];
    if (c < 0x80) {
      if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        sep();
        out += char(c >= 'A' && c <= 'Z' ? c + 32 : c);
      } else if (c <= 0x20 || c == 0x7f) {
        pending = true;
      }
      ++i;
      continue;
    }
    int32_t cp = -1;
    auto len = utf8proc_iterate(s + i, utf8proc_ssize_t(text.size() - i), &cp);
    if (len <= 0) {
      ++i;
      continue;
    }
    i += size_t(len);
    switch (utf8proc_category(cp)) {
      case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_CC:
        pending = true;
        break;
      case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
      case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO: case UTF8PROC_CATEGORY_SM:
      case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO: case UTF8PROC_CATEGORY_CF:
        break;
      default: {
        sep();
        uint8_t buf[4];
        out.append(reinterpret_cast<char*>(buf), size_t(utf8proc_encode_char(utf8proc_tolower(cp), buf)));
      }
    }
  }
  return out;
}

TEST(CleanFast, DedupNormalizeMatchesReferenceLoop) {
  Rng rng{99};
  for (int round = 0; round < 20000; round++) {
    std::string s = random_text(rng, 14, round % 2 == 0);
    // Every ASCII byte shows up, punctuation and controls included.
    for (int k = int(rng.next() % 4); k > 0; k--) s += char(rng.next() % 128);
    // Texts NFC would change take utf8proc first; the reference has no NFC, so compare only the others.
    bool composed = true;
    for (size_t i = 0; i < s.size();) {
      int32_t cp = -1;
      auto len = utf8proc_iterate(reinterpret_cast<const uint8_t*>(s.data()) + i, utf8proc_ssize_t(s.size() - i), &cp);
      if (len <= 0) {
        i++;
        continue;
      }
      i += size_t(len);
      if ((cp >= 0x1100 && cp <= 0x11FF) || utf8proc_get_property(cp)->combining_class != 0) composed = false;
    }
    if (!composed) continue;
    ASSERT_EQ(dedup_normalize(s), normalize_ref(s)) << testing::PrintToString(s);
  }
  EXPECT_EQ(dedup_normalize("Hello,  WORLD! 안녕\t하세요 ...x_y"), "hello world 안녕 하세요 xy");
}

TEST(CleanFast, DedupNormalizeBlocksMatchReferenceLoop) {
  // Long texts for dedup_normalize's 64-byte blocks (AVX2): mostly words a block copies (lower-case
  // letters, digits, Hangul syllables including U+AC00 and U+D7A3, single spaces), with now and then
  // what it must leave to the byte loop: upper case, punctuation, double spaces, tabs, newlines,
  // U+D7A4 and U+ABFF (next to the syllables), U+A640 and U+A4FF (a capital and a punctuation mark
  // under the same lead byte EA), CJK, a stray continuation byte or a cut syllable. Blank
  // or punctuation-only starts make the loop's first separator matter.
  const char* const words[] = {"hello", "a", "z9", "0", "가", "\uAC00", "\uD7A3", "한국어", "서울특별시", "word한국",
                               "x가y"};
  const char* const odd[] = {"Hello", ".", ",", "  ", "\t", "\n", "\uD7A4", "\uABFF", "中文", "\x80", "\xEA\xB0",
                             "\xED\x9E", "_", "\x7F", "A", "\uA640", "\uA4FF"};
  const char* const starts[] = {"", " ", ". ", "  x", "가"};
  Rng rng{4242};
  size_t long_ones = 0;
  for (int round = 0; round < 20000; round++) {
    std::string t = starts[rng.next() % std::size(starts)];
    const int pieces = int(rng.next() % 200);
    const int breaks = rng.next() % 3 == 0 ? 0 : 1 + int(rng.next() % 3);
    std::vector<int> at(static_cast<size_t>(breaks), 0);
    for (int& a : at) a = pieces ? int(rng.next() % uint32_t(pieces)) : 0;
    for (int k = 0; k < pieces; k++) {
      if (k) t += " ";
      t += words[rng.next() % std::size(words)];
      for (int a : at)
        if (a == k) t += odd[rng.next() % std::size(odd)];
    }
    if (rng.next() % 3 == 0) t += rng.next() % 2 ? " " : ".";
    ASSERT_EQ(dedup_normalize(t), normalize_ref(t)) << testing::PrintToString(t);
    long_ones += t.size() >= 256;
  }
  EXPECT_GT(long_ones, 10000u);
  // A block ending on every byte of a syllable, on a space and on a word, at every offset.
  for (size_t pad = 0; pad < 140; pad++)
    for (const char* tail : {" 가나", "가 나", " x", "x ", "  y", "\uD7A3 ", ". z"}) {
      std::string t = "k";
      while (t.size() < pad) t += t.size() % 6 == 5 ? " " : "q";
      if (t.back() == ' ') t += "q";
      t += tail;
      t += " then some more words 한국어 to pass the block edge and more text here";
      ASSERT_EQ(dedup_normalize(t), normalize_ref(t)) << t;
    }
}

// count_scripts' eight-bytes-at-a-time ASCII runs and 30-byte blocks against the byte loop: texts of the pieces above with
// runs of random ASCII bytes (every value, letters and the bytes next to them: '@', '[', '`', '{')
// of every length around the block size, at every alignment.
TEST(CleanFast, CountScriptsMatchesByteLoop) {
  Rng rng{7};
  const std::string edges = "@[`{AZazaZ";
  for (int round = 0; round < 20000; round++) {
    std::string s;
    for (int part = int(rng.next() % 6); part >= 0; part--) {
      if (rng.next() % 2) s += random_text(rng, 6, false);
      for (int k = int(rng.next() % 20); k > 0; k--)
        s += rng.next() % 3 ? edges[rng.next() % edges.size()] : char(rng.next() % 128);
    }
    std::map<std::string, size_t> fast, ref;
    count_scripts(s, fast);
    clean_detail::count_scripts_bytewise(s, ref);
    ASSERT_EQ(fast, ref) << testing::PrintToString(s);
  }
  // Korean/English text for the 30-byte blocks: syllables (and the range edges U+AC00, U+D7A3 and
  // their neighbours U+ABFF, U+D7A4, U+D7B0 under the same leads), spaces, punctuation, Latin letters
  // and a breaker now and then (é, 中, an emoji, a stray or cut continuation byte, a lone lead), at
  // every length and alignment around the block.
  const char* pieces[] = {"한국어", " ", "법률", "가", "\uD7A3", "x", "Tenant", ". ", "\n", "0-9", "@[`{", "계약서 "};
  const char* breakers[] = {"\uABFF", "\uD7A4", "\uD7B0", "é", "中", "\U0001F600", "\x80", "\xEA\xB0", "\xED", "\xC3"};
  size_t hangul = 0;
  for (int round = 0; round < 20000; round++) {
    std::string s;
    for (int k = int(rng.next() % 40); k > 0; k--) s += pieces[rng.next() % std::size(pieces)];
    if (round % 2) s.insert(rng.next() % (s.size() + 1), breakers[rng.next() % std::size(breakers)]);
    for (size_t from = 0; from < 3 && from <= s.size(); from++) {
      std::map<std::string, size_t> fast, ref;
      count_scripts(std::string_view(s).substr(from), fast);
      clean_detail::count_scripts_bytewise(std::string_view(s).substr(from), ref);
      ASSERT_EQ(fast, ref) << testing::PrintToString(s.substr(from));
      hangul += ref.count("hangul") ? ref["hangul"] : 0;
    }
  }
  EXPECT_GT(hangul, 300000u);
  std::map<std::string, size_t> c;
  count_scripts("Hello, World! abcdefghijklmnopqrstuvwxyz@[`{ 안녕 中", c);
  EXPECT_EQ(c, (std::map<std::string, size_t>{{"latin", 36}, {"hangul", 2}, {"han", 1}}));
}

}  // namespace
