// Stages 2, 3 and 7: mapping into canonical shapes, each cleaning filter, split determinism and
// near-duplicate clusters never straddling splits.
#include <gtest/gtest.h>

#include "lathe/data/clean.h"
#include "lathe/data/mapping.h"
#include "lathe/data/pipeline.h"

using namespace lathe::data;
using nlohmann::json;

TEST(DataMap, ShapesBecomeMessagesAndUnknownIsDropped) {
  std::vector<Record> recs(4);
  recs[0].json = {{"instruction", "Add"}, {"input", "1+1"}, {"output", "2"}};
  recs[1].json = {{"conversations", {{{"from", "human"}, {"value", "hi"}}, {{"from", "gpt"}, {"value", "yo"}}}}};
  recs[2].json = {{"foo", 1}};
  recs[3].json = {{"text", "plain"}};
  StageCounts c("map");
  std::map<std::string, size_t> shapes;
  map_records(recs, {}, c, shapes);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].json["messages"][0]["content"], "Add\n\n1+1");
  EXPECT_EQ(recs[1].json["messages"][1]["role"], "assistant");
  EXPECT_EQ(recs[2].json, json({{"text", "plain"}}));
  EXPECT_EQ(c.dropped.size(), 1u);
  EXPECT_EQ(c.dropped.begin()->first, "no known shape");
  EXPECT_NE(c.examples.begin()->second[0].find("foo"), std::string::npos);
  EXPECT_TRUE(c.reconciles());
}

TEST(DataMap, FieldMappingFromCsvColumns) {
  Record r;
  r.json = {{"질문", "서울은?"}, {"meta", {{"ans", "수도"}}}, {"cat", "geo"}};
  MappingOptions o;
  o.fields = {{"question", "질문"}, {"answer", "meta.ans"}};
  o.stratify_by = "cat";
  ASSERT_FALSE(map_record(r, o));
  EXPECT_EQ(r.json["messages"][0]["content"], "서울은?");
  EXPECT_EQ(r.json["messages"][1]["content"], "수도");
  EXPECT_EQ(r.stratum, "geo");
}

TEST(DataClean, NormalisesTextInOnePass) {
  CleanOptions o;
  std::string s = "A\u200Bb\x01  c\u00A0 d   \r\n\n\n\nline&amp;<br>x\t \n  indented";
  clean_text(s, o);
  EXPECT_EQ(s, "Ab c d\n\nline&\nx\n  indented");
  std::string nfd = "e\u0301 \u1112\u1161\u11AB";  // decomposed é and 한
  clean_text(nfd, o);
  EXPECT_EQ(nfd, "\u00E9 \uD55C");
  std::string fw = "ＡＢ１";
  clean_text(fw, o);
  EXPECT_EQ(fw, "ＡＢ１");  // NFC keeps full-width forms
  o.normalize = "nfkc";
  clean_text(fw, o);
  EXPECT_EQ(fw, "AB1");
}

TEST(DataClean, HtmlRemnantsOnlyKnownTags) {
  EXPECT_EQ(strip_html_remnants("a <b>bold</b> and 1 < 2 > 0 <think>"), "a bold and 1 < 2 > 0 <think>");
  EXPECT_EQ(strip_html_remnants("x&lt;y&#39;s&nbsp;z"), "x<y's z");
}

TEST(DataClean, RepetitionFilters) {
  std::string rep;
  for (int i = 0; i < 10; i++) rep += "buy now cheap pills\n";
  CleanOptions o;
  EXPECT_EQ(filter_record(json{{"text", rep}}, o).value_or(""), "repeated lines");
  std::string ngram;
  for (int i = 0; i < 30; i++) ngram += "click here ";
  ngram += "for more";
  auto st = repetition_stats(ngram);
  EXPECT_GT(st.top_ngram[0], 0.9);
  EXPECT_EQ(filter_record(json{{"text", ngram}}, o).value_or(""), "repeated n-grams");
  std::string prose = "The quick brown fox jumps over the lazy dog while a small bird sings on the old fence near the "
                      "river and children play football in the park under a bright afternoon sun.";
  EXPECT_FALSE(filter_record(json{{"text", prose}}, o)) << *filter_record(json{{"text", prose}}, o);
}

TEST(DataClean, LengthScriptAndAnswerFilters) {
  CleanOptions o;
  o.min_chars = 5;
  o.max_chars = 20;
  EXPECT_EQ(filter_record(json{{"text", "abc"}}, o).value_or(""), "too short (chars)");
  EXPECT_EQ(filter_record(json{{"text", std::string(30, 'a')}}, o).value_or(""), "too long (chars)");
  o.max_chars = 0;
  o.min_chars = 1;
  json conv = {{"messages", {{{"role", "user"}, {"content", "질문입니다"}}, {{"role", "assistant"}, {"content", "  "}}}}};
  EXPECT_EQ(filter_record(conv, o).value_or(""), "empty answer");
  o.min_answer_chars = 3;
  conv["messages"][1]["content"] = "네";
  EXPECT_EQ(filter_record(conv, o).value_or(""), "trivially short answer");
  json user_only = {{"messages", {{{"role", "user"}, {"content", "hello"}}}}};
  EXPECT_EQ(filter_record(user_only, o).value_or(""), "no assistant turn");
  o.script = "hangul";
  o.min_script_ratio = 0.5;
  EXPECT_NEAR(script_ratio("한국어 text", "hangul"), 3.0 / 7.0, 1e-9);
  EXPECT_EQ(filter_record(json{{"text", "mostly English 한"}}, o).value_or(""), "script ratio below hangul minimum");
  EXPECT_FALSE(filter_record(json{{"text", "대부분 한국어 text"}}, o));
}

TEST(DataClean, CountsEveryDrop) {
  std::vector<Record> recs(3);
  recs[0].json = {{"text", "fine text"}};
  recs[1].json = {{"text", ""}};
  recs[2].json = {{"text", "\u200B\u200B"}};  // empty after zero-width removal
  StageCounts c("clean");
  clean_records(recs, {}, c);
  EXPECT_EQ(recs.size(), 1u);
  EXPECT_EQ(c.dropped["empty text"], 2u);
  EXPECT_TRUE(c.reconciles());
}

TEST(DataSplit, DeterministicRatiosAndClustersTogether) {
  std::vector<Record> recs(1000);
  for (size_t i = 0; i < recs.size(); i++) {
    recs[i].id = "id" + std::to_string(i);
    recs[i].stratum = i % 2 ? "odd" : "even";
    if (i >= 10 && i < 40) recs[i].cluster = 10;  // one near-duplicate cluster of 30 kept records
  }
  SplitOptions o;
  o.ratios = {0.8, 0.1, 0.1};
  auto a = assign_splits(recs, o), b = assign_splits(recs, o);
  EXPECT_EQ(a, b);
  size_t n[3] = {0, 0, 0};
  for (int s : a) n[s]++;
  EXPECT_NEAR(double(n[0]), 800, 40);
  EXPECT_NEAR(double(n[1]), 100, 40);
  for (size_t i = 11; i < 40; i++) EXPECT_EQ(a[i], a[10]);
  o.seed = 7;
  EXPECT_NE(assign_splits(recs, o), a);
  // Stratified: each stratum gets its share.
  o.ratios = {0.5, 0.5, 0};
  auto c = assign_splits(recs, o);
  size_t even_train = 0;
  for (size_t i = 0; i < recs.size(); i += 2) even_train += c[i] == 0;
  EXPECT_NEAR(double(even_train), 250, 20);
  for (int s : c) EXPECT_NE(s, 2);
  // One split with a share takes every record, whatever the share (the cuts fall past the end).
  for (auto [r, only] : {std::pair{std::array<double, 3>{0.7, 0, 0}, 0}, {{0, 0.37, 0}, 1}, {{0, 0, 3}, 2}}) {
    o.ratios = r;
    EXPECT_EQ(assign_splits(recs, o), std::vector<int>(recs.size(), only)) << only;
  }
}

namespace {

// The character-at-a-time loop clean_text used before its fast path for untouched runs: the reference
// the fast path must reproduce byte for byte (normalize "none", strip_html off, so only this pass runs).
std::string clean_pass_ref(std::string_view s, const CleanOptions& o) {
  auto next_cp = [](std::string_view t, size_t& i) -> uint32_t {
    unsigned char c = t[i];
    if (c < 0x80) return i++, c;
    int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    uint32_t cp = n == 4 ? c & 0x07 : n == 3 ? c & 0x0F : n == 2 ? c & 0x1F : c;
    for (int k = 1; k < n && i + k < t.size(); k++) cp = (cp << 6) | (static_cast<unsigned char>(t[i + k]) & 0x3F);
    i += n;
    return cp;
  };
  auto zero_width = [](uint32_t cp) { return (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF || cp == 0x00AD; };
  auto control = [](uint32_t cp) { return (cp < 0x20 && cp != '\n' && cp != '\t') || cp == 0x7F || (cp >= 0x80 && cp < 0xA0); };
  std::string out;
  const bool ws = o.normalize_whitespace;
  size_t pending_spaces = 0, pending_newlines = 0;
  bool line_start = true;
  for (size_t i = 0; i < s.size();) {
    size_t at = i;
    uint32_t cp = next_cp(s, i);
    if (cp == '\r') {
      if (i < s.size() && s[i] == '\n') continue;
      cp = '\n';
    }
    if (o.remove_zero_width && zero_width(cp)) continue;
    if (o.remove_control && control(cp)) continue;
    if (ws && (cp == 0xA0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F)) cp = ' ';
    if (ws) {
      if (cp == ' ' || (cp == '\t' && !line_start)) {
        pending_spaces++;
        continue;
      }
      if (cp == '\n') {
        pending_spaces = 0;
        pending_newlines++;
        line_start = true;
        continue;
      }
      if (pending_newlines) {
        if (!out.empty()) out.append(std::min<size_t>(pending_newlines, 2), '\n');
        pending_newlines = 0;
        if (line_start && pending_spaces && !out.empty()) out.append(pending_spaces, ' ');
        pending_spaces = 0;
      } else if (pending_spaces) {
        if (!out.empty()) out.append(line_start ? pending_spaces : 1, ' ');
        pending_spaces = 0;
      }
      line_start = false;
      if (cp == '\t') {
        out += '\t';
        continue;
      }
    }
    out.append(s, at, std::min(i, s.size()) - at);
  }
  return out;
}

}  // namespace

TEST(DataClean, FastPathMatchesCharacterLoop) {
  // Pieces that exercise every branch: plain ASCII, Hangul, Latin-1, exotic spaces, zero-width and
  // control characters, CRLF, tabs at line starts, an overlong newline, stray and truncated bytes.
  const char* pieces[] = {"ab", "Z9", " ", "  ", "\t", "\n", "\r\n", "\r", "\x01", "\x7f", "한국", "é", "\u00A0",
                          "\u00AD", "\u0085", "\u2003", "\u200B", "\u2060", "\u3000", "\uFEFF", "\u202F", "ＡＢ",
                          "中", "😀", "\xE0\x80\x8A", "\x80", "\xC2", "\xE4\xB8", "\xED\x9E\xA3", "-", "~"};
  uint64_t rng = 12345;
  for (int round = 0; round < 4000; round++) {
    std::string s;
    int len = 1 + int(rng % 24);
    for (int k = 0; k < len; k++) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      s += pieces[(rng >> 33) % std::size(pieces)];
    }
    for (int opts = 0; opts < 8; opts++) {
      CleanOptions o;
      o.normalize = "none";
      o.strip_html = false;
      o.remove_control = opts & 1;
      o.remove_zero_width = opts & 2;
      o.normalize_whitespace = opts & 4;
      std::string got = s;
      clean_text(got, o);
      ASSERT_EQ(got, clean_pass_ref(s, o)) << "input bytes: " << testing::PrintToString(s) << " options " << opts;
    }
  }
}
