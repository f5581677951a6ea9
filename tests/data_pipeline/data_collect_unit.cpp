// Stage 1 readers: each format, encodings (BOM, CP949), and bad input reported with file:line.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <cstdint>
#include <fstream>
#include <random>

#include "lathe/core/error.h"
#include "lathe/data/collect.h"
#include "lathe/data/json_fast.h"
#include "test_util.h"

using namespace lathe::data;

namespace {

CollectResult read(const std::string& bytes, const std::string& format, CollectOptions o = {}) {
  CollectResult r;
  collect_bytes(bytes, "in." + format, format, o, r);
  r.counts.out = r.records.size();
  return r;
}

std::string first_example(const CollectResult& r, const std::string& reason) {
  auto it = r.counts.examples.find(reason);
  return it == r.counts.examples.end() || it->second.empty() ? "" : it->second[0];
}

// A one-page PDF with the text `line`, built by hand with a correct cross-reference table.
std::string tiny_pdf(const std::string& line) {
  std::vector<std::string> objs = {
      "<< /Type /Catalog /Pages 2 0 R >>",
      "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
      "",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"};
  std::string stream = "BT /F1 12 Tf 72 720 Td (" + line + ") Tj ET";
  objs[3] = "<< /Length " + std::to_string(stream.size()) + " >>\nstream\n" + stream + "\nendstream";
  std::string pdf = "%PDF-1.4\n";
  std::vector<size_t> off;
  for (size_t i = 0; i < objs.size(); i++) {
    off.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objs[i] + "\nendobj\n";
  }
  size_t xref = pdf.size();
  pdf += "xref\n0 6\n0000000000 65535 f \n";
  for (size_t o : off) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%010zu 00000 n \n", o);
    pdf += buf;
  }
  pdf += "trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

}  // namespace

TEST(DataCollect, JsonlMalformedLinesNamedWithFileAndLine) {
  auto r = read("{\"text\":\"a\"}\n\n{broken\n[1,2]\n{\"text\":\"b\"}\n", "jsonl");
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[1].source.line, 5);
  EXPECT_EQ(r.counts.dropped["malformed JSON"], 1u);
  EXPECT_EQ(r.counts.dropped["not a JSON object"], 1u);
  EXPECT_NE(first_example(r, "malformed JSON").find("in.jsonl:3"), std::string::npos);
  EXPECT_EQ(r.counts.in, 4u);  // blank lines are not records
  EXPECT_TRUE(r.counts.reconciles());
}

TEST(DataCollect, StrictThrowsOnFirstBadLine) {
  CollectOptions o;
  o.strict = true;
  try {
    read("{\"text\":\"a\"}\n{oops\n", "jsonl", o);
    FAIL() << "no throw";
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("in.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(DataCollect, HugeAndUndecodableLinesSkipped) {
  CollectOptions o;
  o.max_line_bytes = 64;
  auto r = read("{\"text\":\"" + std::string(100, 'x') + "\"}\n{\"text\":\"\xff\xfe\xfa\"}\n{\"text\":\"ok\"}\n", "jsonl", o);
  // The second line alone makes the file invalid UTF-8; it also is not CP949, so line-level checks apply.
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.counts.dropped["line too long"], 1u);
  EXPECT_EQ(r.counts.dropped["undecodable bytes"], 1u);
}

TEST(DataCollect, EmptyFileReported) {
  auto r = read("", "jsonl");
  EXPECT_EQ(r.records.size(), 0u);
  EXPECT_EQ(r.counts.dropped["empty file"], 1u);
  auto w = read(" \n\n", "csv");
  EXPECT_EQ(w.counts.dropped["empty file"], 1u);
}

TEST(DataCollect, JsonArrayAndObjectOfArrays) {
  auto a = read("[{\"text\":\"a\"}, 3, {\"text\":\"b\"}]", "json");
  ASSERT_EQ(a.records.size(), 2u);
  EXPECT_EQ(a.records[1].source.item, 3);
  EXPECT_EQ(a.counts.dropped["not a JSON object"], 1u);
  auto o = read("{\"train\":[{\"text\":\"a\"}],\"test\":[{\"text\":\"b\"},{\"text\":\"c\"}]}", "json");
  EXPECT_EQ(o.records.size(), 3u);
  auto bad = read("{\n\"a\": [1,\n}", "json");
  EXPECT_EQ(bad.counts.dropped["malformed JSON"], 1u);
  EXPECT_NE(first_example(bad, "malformed JSON").find("in.json:3"), std::string::npos) << first_example(bad, "malformed JSON");
  // A number overflowing a double is an out_of_range error in nlohmann, not a parse_error (found by
  // fuzz/data_readers.cpp): reported as malformed, never an uncaught exception.
  for (const char* overflow : {"9E888888", "[{\"n\":1e999}]"}) {
    auto big = read(overflow, "json");
    EXPECT_EQ(big.counts.dropped["malformed JSON"], 1u) << overflow;
    EXPECT_NE(first_example(big, "malformed JSON").find("in.json"), std::string::npos) << overflow;
  }
  auto big_lines = read("{\"n\":1e999}\n{\"text\":\"ok\"}\n", "jsonl");
  EXPECT_EQ(big_lines.records.size(), 1u);
  EXPECT_EQ(big_lines.counts.dropped["malformed JSON"], 1u);
}

TEST(DataCollect, CsvQuotingBomAndFieldCount) {
  auto r = read("\xEF\xBB\xBFquestion,answer\n\"Hi, there\",\"He said \"\"yes\"\"\nand left\"\nonly-one-field\nq3,a3\n", "csv");
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].json["question"], "Hi, there");  // BOM stripped from the header
  EXPECT_EQ(r.records[0].json["answer"], "He said \"yes\"\nand left");
  EXPECT_EQ(r.records[1].source.line, 5);  // the quoted newline counts as a line
  EXPECT_EQ(r.counts.dropped["CSV field count mismatch"], 1u);
  EXPECT_NE(first_example(r, "CSV field count mismatch").find("in.csv:4"), std::string::npos);
}

TEST(DataCollect, CsvBrokenQuotingReportedNotCrashing) {
  auto r = read("a,b\n1,2\n\"unterminated,3\n4,5\n", "csv");
  EXPECT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.counts.dropped["broken CSV quoting"], 1u);
  EXPECT_NE(first_example(r, "broken CSV quoting").find("in.csv:3"), std::string::npos);
}

TEST(DataCollect, Cp949CsvDecodedWithWarning) {
  // "이름,나이\n홍길동,30\n" in CP949 (KS X 1001 codes: 이 C0CC 름 B8A7 나 B3AA 홍 C8AB 길 B1E6 동 B5BF).
  std::string bytes = "\xC0\xCC\xB8\xA7,\xB3\xAA\xC0\xCC\n\xC8\xAB\xB1\xE6\xB5\xBF,30\n";
  auto r = read(bytes, "csv");
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].json["이름"], "홍길동");
  EXPECT_EQ(r.records[0].json["나이"], "30");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("CP949"), std::string::npos);
}

TEST(DataCollect, TsvByTab) {
  auto r = read("prompt\tcompletion\nhello\tworld\n", "tsv");
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].json["completion"], "world");
}

TEST(DataCollect, MarkdownChunksAtHeadingsWithinBudget) {
  CollectOptions o;
  o.chunk_chars = 60;
  std::string md = "# Title\n\nFirst paragraph here.\n\nSecond one.\n\n## Part two\n\n```\n# not a heading\n```\n\n" +
                   std::string(150, 'x') + "\n";
  auto r = read(md, "md", o);
  ASSERT_GE(r.records.size(), 4u);
  EXPECT_EQ(r.records[0].json["text"], "# Title\n\nFirst paragraph here.\n\nSecond one.");
  EXPECT_EQ(r.records[0].source.line, 1);
  EXPECT_EQ(r.records[1].source.line, 7);
  EXPECT_NE(r.records[1].json["text"].get<std::string>().find("# not a heading"), std::string::npos);
  for (auto& rec : r.records) EXPECT_LE(utf8_length(rec.json["text"].get<std::string>()), 60u);
}

TEST(DataCollect, HtmlDropsScriptsAndDecodesEntities) {
  auto r = read("<html><head><title>t</title><style>p{}</style></head><body><script>var x=1;</script>"
                "<p>Fish &amp; chips &#xAC00;</p><p>second</p></body></html>", "html");
  ASSERT_EQ(r.records.size(), 1u);
  std::string t = r.records[0].json["text"];
  EXPECT_EQ(t.find("var x"), std::string::npos);
  EXPECT_EQ(t.find("p{}"), std::string::npos);
  EXPECT_NE(t.find("Fish & chips 가"), std::string::npos) << t;
  EXPECT_NE(t.find("second"), std::string::npos);
}

TEST(DataCollect, PdfTextPerPage) {
  auto r = read(tiny_pdf("Hello lathe PDF"), "pdf");
  ASSERT_EQ(r.records.size(), 1u) << (r.counts.dropped.empty() ? "" : r.counts.dropped.begin()->first);
  EXPECT_EQ(r.records[0].source.page, 1);
  EXPECT_NE(r.records[0].json["text"].get<std::string>().find("Hello lathe PDF"), std::string::npos);
  auto bad = read("%PDF-1.4 garbage", "pdf");
  EXPECT_EQ(bad.records.size(), 0u);
  EXPECT_EQ(bad.counts.in, 1u);
}

TEST(DataCollect, DirectoryExpansionSortedAndUnsupportedReported) {
  lathe::test::TempDir d;
  std::filesystem::create_directories(d / "sub");
  std::ofstream(d / "b.jsonl") << "{\"text\":\"b\"}\n";
  std::ofstream(d / "sub/a.txt") << "hello\n";
  std::ofstream(d / "x.bin") << "zz";
  std::ofstream(d / ".hidden.jsonl") << "{\"text\":\"h\"}\n";
  auto r = collect({d.path}, {});
  EXPECT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.counts.dropped["unsupported file type"], 1u);
  EXPECT_EQ(r.inputs.size(), 2u);
  EXPECT_TRUE(r.counts.reconciles());
  EXPECT_THROW(collect({d / "nope*.jsonl"}, {}), lathe::Error);
}

TEST(DataCollect, FastJsonMatchesNlohmann) {
  // json_parse_fast either builds exactly nlohmann's value or declines (then nlohmann decides).
  const char* inputs[] = {
      R"({"a":"x","b":[1,-2,0,-0,true,false,null],"c":{}})", R"( { "k" : [ ] , "k2":"\u00e9\ud55c\ud83d\ude00" } )",
      R"({"dup":1,"dup":"second"})", R"({"e":"\"\\\/\b\f\n\r\t\u0000\u001f"})", R"({"n":123456789012345678})",
      R"({"n":1234567890123456789})", R"({"n":18446744073709551616})", R"({"f":1.5})", R"({"f":1e3})", R"({"z":01})",
      R"({"u":"\ud800"})", R"({"u":"\udc00x"})", R"({"u":"\uZZZZ"})", R"({"a":1,})", R"({"a" 1})", R"([1,2)",
      R"({"a":"raw	tab"})", R"({"a":tru})", R"({"a":"x"} trailing)", R"("just a string")", R"(-)", "", "   ",
      "\xEF\xBB\xBF{\"bom\":1}", R"({"한":"글","nested":[[[{"x":[]}]]]})", R"({"a":"unterminated)", R"({"a":"\x"})"};
  for (const char* in : inputs) {
    nlohmann::json fast;
    const bool ok = json_parse_fast(in, fast);
    nlohmann::json ref = nlohmann::json::parse(in, nullptr, false);
    if (ok) {
      ASSERT_FALSE(ref.is_discarded()) << in;
      EXPECT_EQ(fast, ref) << in;
      EXPECT_EQ(fast.dump(), ref.dump()) << in;
    }
  }
  nlohmann::json deep = nlohmann::json::parse(std::string(300, '[') + std::string(300, ']'));
  nlohmann::json fast;
  EXPECT_FALSE(json_parse_fast(deep.dump(), fast));  // too deep: left to nlohmann
  EXPECT_TRUE(json_parse_fast(R"({"messages":[{"role":"user","content":"안녕 \"hi\"\n"}],"x":-7})", fast));
  EXPECT_EQ(fast["x"].type(), nlohmann::json::value_t::number_integer);
  EXPECT_TRUE(json_parse_fast(R"({"x":7})", fast));
  EXPECT_EQ(fast["x"].type(), nlohmann::json::value_t::number_unsigned);

  // json_dump_fast writes what dump(-1, ' ', false, replace) writes.
  nlohmann::json v = nlohmann::json::object();
  v["s"] = std::string("tab\t nl\n cr\r bs\b ff\f q\" back\\ slash/ nul") + std::string(1, '\0') + "\x1f\x7f 한글 😀";
  v["bad"] = "\xff\xfe broken \xe4\xb8";
  v["nums"] = {0, -1, 18446744073709551615ull, -9223372036854775807ll - 1, 1.5, 1e300, -0.0};
  v["nested"] = {{"a", nlohmann::json::array()}, {"b", nlohmann::json::object()}, {"c", nullptr}, {"d", true}};
  v["키"] = "값";
  std::string out;
  json_dump_fast(v, out);
  EXPECT_EQ(out, v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Record ids: hex64 and the id key are built by hand now (they were fmt::format calls, made for every
// record); the ids must be the ones the format strings gave, since every output file holds them.
TEST(DataCollect, RecordIdsAsTheFormatStringsMadeThem) {
  uint64_t s = 20;
  for (int k = 0; k < 20000; k++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const uint64_t v = k < 64 ? (uint64_t(1) << k) - (k % 3) : s >> (k % 64);
    ASSERT_EQ(hex64(v), fmt::format("{:016x}", v));
  }
  EXPECT_EQ(hex64(0), "0000000000000000");
  EXPECT_EQ(hex64(UINT64_MAX), "ffffffffffffffff");
  auto id = [](const std::string& file, int64_t line, int64_t page, int64_t item) {
    const std::string key = fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}", file, line, page, item, 0);
    return fmt::format("{:016x}", XXH3_64bits(key.data(), key.size()));
  };
  std::string jsonl;
  for (int i = 0; i < 1200; i++) jsonl += i % 97 == 5 ? "\n" : "{\"text\": \"t" + std::to_string(i) + "\"}\n";
  const CollectResult a = read(jsonl, "jsonl");
  ASSERT_GT(a.records.size(), 1000u);
  for (const Record& r : a.records) ASSERT_EQ(r.id, id(r.source.file, r.source.line, 0, 0)) << r.source.where();
  std::string arr = "[";
  for (int i = 0; i < 300; i++) arr += std::string(i ? "," : "") + "{\"text\": \"a" + std::to_string(i) + "\"}";
  const CollectResult b = read(arr + "]", "json");
  ASSERT_EQ(b.records.size(), 300u);
  for (const Record& r : b.records)
    ASSERT_EQ(r.id, id(r.source.file, r.source.line, r.source.page, r.source.item)) << r.source.where();
}

TEST(DataCollect, SourceJsonAsTheInitializerListMadeIt) {
  // Source::to_json builds its object member by member; the value must be the one the initializer
  // list gave (every record's "_source" in the records files).
  for (const char* file : {"a.jsonl", "", "/very/long/path/to/some/dataset/file-with-a-long-name.jsonl"})
    for (int64_t line : {int64_t(0), int64_t(1), int64_t(123456789012)})
      for (int64_t page : {int64_t(0), int64_t(3), int64_t(-2)})
        for (int64_t item : {int64_t(0), int64_t(7)}) {
          const Source s{file, line, page, item};
          nlohmann::json want{{"file", s.file}};
          if (s.line > 0) want["line"] = s.line;
          if (s.page > 0) want["page"] = s.page;
          if (s.item > 0) want["item"] = s.item;
          ASSERT_EQ(s.to_json(), want);
          std::string got;
          json_dump_fast(s.to_json(), got);
          ASSERT_EQ(got, want.dump());
        }
}

// A record's line is written without adding "_source" and "_id" to its DOM: json_dump_record against
// assigning them and dumping, for records whose own member names sort before, between, after and onto
// them ("_i", "_id", "_ie", "_source", "_sourcf", capitals, "", "é", a control byte), nested values,
// every Source shape and ids with characters to escape.
TEST(DataCollect, RecordLineAsAssigningItsSourceAndId) {
  const std::vector<std::string> names = {"text", "messages", "A", "Z", "_", "_i", "_id", "_ie", "_s",
                                          "_source", "_sourcf", "_sourc", "a", "", "é", std::string(1, '\x01'),
                                          "~", "\x7f", "input_ids"};
  std::mt19937 rng(3);
  for (int k = 0; k < 20000; k++) {
    nlohmann::json rec = nlohmann::json::object();
    for (int m = int(rng() % 6); m > 0; m--) {
      const std::string& name = names[rng() % names.size()];
      switch (rng() % 4) {
        case 0: rec[name] = "v\"" + std::to_string(rng() % 100) + "\n한"; break;
        case 1: rec[name] = int64_t(rng() % 1000) - 500; break;
        case 2: rec[name] = {{"role", "user"}, {"content", "x"}}; break;
        default: rec[name] = nlohmann::json::array({1, "a", nullptr});
      }
    }
    const Source src{rng() % 5 ? "data/a.jsonl" : "odd \"name\".json", int64_t(rng() % 3), int64_t(rng() % 3) - 1,
                     int64_t(rng() % 3)};
    const std::string id = rng() % 9 ? hex64(rng()) : "quote\" and\\";
    std::string got;
    json_dump_record(rec, id, src, got);
    nlohmann::json want = rec;
    want["_source"] = src.to_json();
    want["_id"] = id;
    std::string expect;
    json_dump_fast(want, expect);
    ASSERT_EQ(got, expect) << rec.dump();
    ASSERT_EQ(nlohmann::json::parse(got), want);
  }
}
