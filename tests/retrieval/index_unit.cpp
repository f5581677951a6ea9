// The retrieval index on a small Korean/English corpus with known answers: the bigram analyzer finds
// Korean questions whose particles differ from the documents' (a word index does not), passages keep
// their source lines, overlap joins continuing passages, rebuilds are incremental by content hash,
// counts reconcile and bad input is named by file and line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/retrieval/analyzer.h"
#include "lathe/retrieval/chunker.h"
#include "lathe/retrieval/index.h"
#include "lathe/retrieval/rag_prompt.h"
#include "test_util.h"

namespace {

using namespace lathe::retrieval;
using lathe::test::TempDir;

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

TEST(Analyzer, HangulBigramsWordsAndMixedRuns) {
  auto t = query_terms("환불은 15일 안에, Refund DAYS", Analyzer::Bigram);
  EXPECT_TRUE(has(t, "환불은"));
  EXPECT_TRUE(has(t, "환불"));
  EXPECT_TRUE(has(t, "불은"));
  EXPECT_TRUE(has(t, "15일"));
  EXPECT_TRUE(has(t, "15"));
  EXPECT_TRUE(has(t, "일"));
  EXPECT_TRUE(has(t, "안에"));
  EXPECT_TRUE(has(t, "refund"));  // case-folded
  EXPECT_TRUE(has(t, "days"));
  EXPECT_FALSE(has(t, "안"));  // a two-syllable run is one bigram, not unigrams
  // Distinct terms, in order of first appearance.
  auto d = query_terms("휴가 휴가 휴가", Analyzer::Bigram);
  EXPECT_EQ(d, std::vector<std::string>{"휴가"});
  // Words keeps whole words only; trigram drops words shorter than three characters.
  EXPECT_EQ(query_terms("환불은 가능", Analyzer::Words), (std::vector<std::string>{"환불은", "가능"}));
  EXPECT_EQ(query_terms("환불은 가능", Analyzer::Trigram), (std::vector<std::string>{"환불은"}));
  // Full-width digits and letters are NFKC-normalized on both sides.
  EXPECT_TRUE(has(query_terms("１５일", Analyzer::Bigram), "15일"));
  EXPECT_EQ(fts_match_expression({"a\"b", "c"}), "\"a\"\"b\" OR \"c\"");
  EXPECT_EQ(fts_match_expression({}), "");
}

struct Corpus {
  TempDir dir;
  Corpus() {
    write(dir / "docs/refund-ko.md",
          "# 환불 정책\n\n환불은 구매일로부터 14일 이내에 신청할 수 있습니다.\n\n"
          "# 배송\n\n배송비는 3,000원이며 5만 원 이상 구매하면 무료입니다.\n");
    write(dir / "docs/leave-ko.md",
          "# 휴가\n\n연차 휴가는 연 15일입니다. 병가는 유급으로 10일입니다.\n\n"
          "# 경조사\n\n본인 결혼 휴가는 7일입니다.\n");
    write(dir / "docs/travel-en.md",
          "# Travel\n\nThe overseas per diem is 60 dollars a day.\n\n"
          "# Security\n\nPasswords must be changed every 90 days.\n");
    write(dir / "docs/faq.jsonl",
          "{\"question\": \"주차 등록은 어떻게 하나요?\", \"answer\": \"주차 등록은 총무팀에 차량 번호를 보내면 됩니다.\"}\n"
          "{\"question\": \"Where is the Busan office?\", \"answer\": \"The Busan office is in Haeundae.\"}\n");
  }
  BuildReport build(const std::string& analyzer = "bigram", const std::string& out = "index") {
    BuildOptions o;
    o.inputs = {dir / "docs"};
    o.output = dir / out;
    o.chunk_tokens = 64;
    o.overlap = 8;
    o.analyzer = analyzer;
    o.progress = false;
    return build_index(o);
  }
};

std::string top_file(const Index& ix, const std::string& q) {
  auto hits = ix.search(q, {.k = 3});
  return hits.empty() ? "" : std::filesystem::path(hits[0].file).filename().string();
}

TEST(Index, KoreanParticlesAndEnglishFindTheRightDocument) {
  Corpus c;
  BuildReport r = c.build();
  EXPECT_EQ(r.files_added, 4u);
  EXPECT_EQ(r.passages_out, r.passages_total);
  EXPECT_EQ(r.units_in, r.passages_out + r.passages_dropped);
  Index ix(c.dir / "index");
  // The documents say 환불은 / 연차 휴가는 / 배송비는; the questions say 환불이 / 연차를 / 배송비가.
  EXPECT_EQ(top_file(ix, "환불이 가능한 기간은?"), "refund-ko.md");
  EXPECT_EQ(top_file(ix, "연차를 며칠 쓸 수 있나요?"), "leave-ko.md");
  EXPECT_EQ(top_file(ix, "배송비가 얼마예요?"), "refund-ko.md");
  EXPECT_EQ(top_file(ix, "how many dollars is the per diem abroad"), "travel-en.md");
  EXPECT_EQ(top_file(ix, "password change"), "travel-en.md");  // Porter: "passwords" / "changed"
  EXPECT_EQ(top_file(ix, "차량 주차 등록 방법"), "faq.jsonl");
  EXPECT_TRUE(ix.search("zzzz qqqq").empty());
  EXPECT_TRUE(ix.search("?!").empty());  // no terms at all: no hits, no FTS syntax error
  // The hit names its source line: the heading that starts the passage.
  auto hits = ix.search("결혼 휴가", {.k = 1});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].line, 5);  // "# 경조사"
  EXPECT_EQ(hits[0].source, hits[0].file + ":5");
  EXPECT_NE(hits[0].text.find("7일"), std::string::npos);
  EXPECT_GT(hits[0].score, 0);

  // The measured reason for the default: a word index misses the particle-changed question.
  c.build("words", "index-words");
  Index words(c.dir / "index-words");
  EXPECT_NE(top_file(words, "환불이 가능한 기간은?"), "refund-ko.md");
}

TEST(Index, IncrementalRebuildByContentHash) {
  Corpus c;
  c.build();
  BuildReport same = c.build();
  EXPECT_FALSE(same.rebuilt_all);
  EXPECT_EQ(same.files_unchanged, 4u);
  EXPECT_EQ(same.passages_out, 0u);
  size_t total = same.passages_total;

  write(c.dir / "docs/travel-en.md", "# Travel\n\nThe overseas per diem is 75 dollars a day.\n");
  std::filesystem::remove(c.dir / "docs/faq.jsonl");
  write(c.dir / "docs/new.txt", "Cafeteria lunch is served from 11:30.\n");
  BuildReport r = c.build();
  EXPECT_EQ(r.files_changed, 1u);
  EXPECT_EQ(r.files_added, 1u);
  EXPECT_EQ(r.files_removed, 1u);
  EXPECT_EQ(r.files_unchanged, 2u);
  Index ix(c.dir / "index");
  auto hits = ix.search("per diem dollars", {.k = 5});
  ASSERT_FALSE(hits.empty());
  EXPECT_NE(hits[0].text.find("75 dollars"), std::string::npos);
  for (auto& h : hits) EXPECT_EQ(h.text.find("60 dollars"), std::string::npos) << "stale passage kept";
  EXPECT_TRUE(ix.search("Busan Haeundae").empty()) << "passages of a removed file kept";
  EXPECT_EQ(top_file(ix, "cafeteria lunch"), "new.txt");
  EXPECT_NE(ix.passages(), total);

  // Changed settings rebuild everything.
  BuildOptions o;
  o.inputs = {c.dir / "docs"};
  o.output = c.dir / "index";
  o.chunk_tokens = 32;
  o.overlap = 4;
  o.progress = false;
  BuildReport all = build_index(o);
  EXPECT_TRUE(all.rebuilt_all);
  EXPECT_EQ(all.files_added, 4u);
}

TEST(Index, OverlapJoinsContinuingPassages) {
  TempDir d;
  std::string para;
  for (int i = 0; i < 40; i++) para += "Sentence number " + std::to_string(i) + " about the office. ";
  write(d / "long.md", "# Long\n\n" + para + "\n");
  ChunkOptions o;
  o.chunk_tokens = 48;
  o.overlap = 8;
  FileChunks fc = chunk_file(d / "long.md", o);
  ASSERT_GE(fc.passages.size(), 3u);
  EXPECT_EQ(fc.passages[0].text.rfind("# Long\n\nSentence number 0", 0), 0u) << "the heading leads its section";
  for (size_t i = 1; i < fc.passages.size(); i++) {
    const std::string& prev = fc.passages[i - 1].text;
    const std::string& cur = fc.passages[i].text;
    // The passage starts with words that end the previous one.
    std::string head = cur.substr(0, 15);
    EXPECT_NE(prev.find(head), std::string::npos) << "passage " << i << " does not overlap: " << cur.substr(0, 60);
    EXPECT_LE(fc.passages[i].tokens, o.chunk_tokens + 8) << i;  // budget plus the rounding of a word
  }
  // No overlap across a heading.
  write(d / "two.md", "# A\n\nalpha text.\n\n# B\n\nbeta text.\n");
  FileChunks two = chunk_file(d / "two.md", {.chunk_tokens = 16, .overlap = 4});
  ASSERT_EQ(two.passages.size(), 2u);
  EXPECT_EQ(two.passages[1].text.rfind("# B", 0), 0u);
  EXPECT_EQ(two.passages[1].source.line, 5);
}

TEST(Index, BadInputIsNamedAndCountsReconcile) {
  TempDir d;
  write(d / "docs/good.md", "# ok\n\nfine text\n");
  write(d / "docs/bad.jsonl", "{\"text\": \"kept\"}\n{not json\n{\"text\": \"   \"}\n");
  BuildOptions o;
  o.inputs = {d / "docs"};
  o.output = d / "ix";
  o.progress = false;
  BuildReport r = build_index(o);
  EXPECT_EQ(r.units_in, r.passages_out + r.passages_dropped);
  EXPECT_EQ(r.passages_out, 2u);
  EXPECT_GE(r.passages_dropped, 2u);
  bool named = false;
  for (auto& p : r.problems) named = named || p.find("bad.jsonl:2") != std::string::npos;
  EXPECT_TRUE(named) << r.to_json().dump(2);
  EXPECT_TRUE(r.dropped.count("empty passage"));

  // Not an index / no index.
  write(d / "junk/index.sqlite", "this is not sqlite");
  std::string e = lathe::test::error_of([&] { Index ix(d / "junk"); });
  EXPECT_NE(e.find("junk/index.sqlite"), std::string::npos) << e;
  e = lathe::test::error_of([&] { Index ix(d / "nothing"); });
  EXPECT_NE(e.find("no index here"), std::string::npos) << e;
  e = lathe::test::error_of([&] {
    BuildOptions b = o;
    b.inputs = {d / "missing/*.md"};
    build_index(b);
  });
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST(RagPrompt, DefaultLayoutTemplateAndNoHits) {
  Hit a;
  a.source = "docs/a.md:3";
  a.text = "연차 휴가는 연 15일입니다.";
  std::string m = rag_user_message("연차는?", {a});
  EXPECT_NE(m.find("[1] docs/a.md:3\n연차 휴가는 연 15일입니다."), std::string::npos) << m;
  EXPECT_TRUE(m.ends_with("\n\nQuestion: 연차는?")) << m;
  EXPECT_EQ(rag_user_message("연차는?", {}), "연차는?");
  RagPrompt t{"Q={question}\nC={context}"};
  EXPECT_EQ(rag_user_message("{context}?", {a}, t), "Q={context}?\nC=[1] docs/a.md:3\n연차 휴가는 연 15일입니다.");
  RagPrompt bad{"no placeholders"};
  std::string e = lathe::test::error_of([&] { bad.validate("t.txt"); });
  EXPECT_NE(e.find("t.txt"), std::string::npos);
  EXPECT_NE(e.find("{context}"), std::string::npos);
}

}  // namespace
