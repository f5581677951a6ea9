// Depth-bounded JSON reading (core/json_io.h): same values as nlohmann on ordinary input, a clean
// error naming file:line on nesting deeper than kMaxJsonDepth, and bounded JSONL line reads.
#include "lathe/core/json_io.h"

#include <gtest/gtest.h>

#include <fstream>

#include "lathe/core/error.h"
#include "lathe/chat/jinja_value.h"
#include "test_util.h"

namespace {

std::string nested(int depth, const std::string& inner = "1") {
  return std::string(size_t(depth), '[') + inner + std::string(size_t(depth), ']');
}

using ::lathe::test::error_of;

TEST(JsonIo, SameValueAsNlohmannOnOrdinaryInput) {
  for (const char* t : {R"({"a":[1,2,{"b":"x[y{"}],"c":null})", R"([1.5,-2,"\"[[[",{"k":{"l":[true,false]}}])",
                        "  42 ", R"("a \\\" [ string")", R"({"u":"\u00e9\ud83d\ude00"})"}) {
    nlohmann::json a, b = nlohmann::json::parse(t);
    lathe::JsonError e;
    ASSERT_TRUE(lathe::try_parse_json_bounded(t, a, &e)) << t << ": " << e.message;
    EXPECT_EQ(a, b) << t;
  }
}

TEST(JsonIo, DepthCapIsExact) {
  nlohmann::json j;
  EXPECT_TRUE(lathe::try_parse_json_bounded(nested(lathe::kMaxJsonDepth), j));
  lathe::JsonError e;
  EXPECT_FALSE(lathe::try_parse_json_bounded(nested(lathe::kMaxJsonDepth + 1), j, &e));
  EXPECT_TRUE(e.too_deep);
  // Objects count like arrays; brackets inside strings (escaped quotes included) do not count.
  std::string objs;
  for (int i = 0; i < lathe::kMaxJsonDepth + 1; i++) objs += "{\"k\":";
  objs += "1" + std::string(size_t(lathe::kMaxJsonDepth + 1), '}');
  EXPECT_FALSE(lathe::try_parse_json_bounded(objs, j, &e));
  // A NUL outside a string ends nlohmann's input: what follows is never read, so it does not count
  // (regression from fuzz/json_bounded.cpp).
  std::string after_nul = std::string("38") + '\0' + nested(1000);
  ASSERT_TRUE(lathe::try_parse_json_bounded(after_nul, j, &e)) << e.message;
  EXPECT_EQ(j, nlohmann::json::parse(after_nul));
  std::string in_string = "{\"s\":\"\\\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(lathe::try_parse_json_bounded(in_string, j, &e)) << e.message;
}

TEST(JsonIo, DeepInputIsAnErrorWithFileAndLine) {
  // 100k levels (200 KB): parsing it into a DOM and then dumping/copying it overflowed the stack.
  std::string text = "{\n\"a\": 1,\n\"deep\": " + nested(100000) + "\n}";
  nlohmann::json j;
  lathe::JsonError e;
  ASSERT_FALSE(lathe::try_parse_json_bounded(text, j, &e));
  EXPECT_TRUE(e.too_deep);
  EXPECT_EQ(e.line, 3);
  std::string msg = error_of([&] { lathe::parse_json_bounded(text, "in.json", "data"); });
  EXPECT_NE(msg.find("[data] in.json:3: nesting deeper than 256 levels"), std::string::npos) << msg;
  // A JSONL line: the line number is the file's, not the text's.
  msg = error_of([&] { lathe::parse_ordered_json_bounded(nested(5000), "in.jsonl", "data", 7); });
  EXPECT_NE(msg.find("in.jsonl:7: nesting deeper"), std::string::npos) << msg;
  msg = error_of([&] { lathe::parse_json_bounded("{\n\"a\": tru }", "bad.json"); });
  EXPECT_NE(msg.find("bad.json:2: malformed JSON"), std::string::npos) << msg;
}

TEST(JsonIo, JsonlReaderNamesLinesAndBoundsLineLength) {
  lathe::test::TempDir d;
  {
    std::ofstream f(d / "a.jsonl", std::ios::binary);
    f << "{\"n\":1}\n\n   \n{\"n\":2}\r\n" << nested(300) << "\n{\"n\":4}";
  }
  lathe::JsonlReader r(d / "a.jsonl", "dataset");
  nlohmann::json j;
  ASSERT_TRUE(r.next(j));
  EXPECT_EQ(j["n"], 1);
  EXPECT_EQ(r.line(), 1);
  ASSERT_TRUE(r.next(j));
  EXPECT_EQ(j["n"], 2);
  EXPECT_EQ(r.line(), 4);
  std::string msg = error_of([&] { r.next(j); });
  EXPECT_NE(msg.find("[dataset] " + d / "a.jsonl" + ":5: nesting deeper"), std::string::npos) << msg;
  ASSERT_TRUE(r.next(j));  // the reader goes on after an error
  EXPECT_EQ(j["n"], 4);
  EXPECT_EQ(r.line(), 6);
  EXPECT_FALSE(r.next(j));

  {
    std::ofstream f(d / "long.jsonl", std::ios::binary);
    f << "{\"n\":1}\n\"" << std::string(lathe::kMaxJsonlLineBytes, 'x') << "\"\n{\"n\":3}\n";
  }
  lathe::JsonlReader l(d / "long.jsonl");
  ASSERT_TRUE(l.next(j));
  msg = error_of([&] { l.next(j); });
  EXPECT_NE(msg.find("long.jsonl:2: line longer than"), std::string::npos) << msg;
  ASSERT_TRUE(l.next(j));
  EXPECT_EQ(j["n"], 3);
  EXPECT_EQ(l.line(), 3);
}

TEST(JsonIo, JsonlErrorsNameFileAndLine) {
  lathe::test::TempDir d;
  {
    std::ofstream f(d / "b.jsonl", std::ios::binary);
    f << "{\"n\":1}\n \t\r\n{\"n\": tru}\n{\"n\":1e999}\n[1,\n{\"n\":5}\n";
  }
  lathe::JsonlReader r(d / "b.jsonl", "eval");
  nlohmann::json j;
  ASSERT_TRUE(r.next(j));
  std::string msg = error_of([&] { r.next(j); });  // the blank line 2 is skipped but counted
  EXPECT_NE(msg.find("[eval] " + d / "b.jsonl" + ":3: malformed JSON"), std::string::npos) << msg;
  EXPECT_EQ(r.where(), d / "b.jsonl" + ":3");
  msg = error_of([&] { r.next(j); });  // a number nlohmann refuses has no position: still its line
  EXPECT_NE(msg.find("b.jsonl:4: malformed JSON"), std::string::npos) << msg;
  msg = error_of([&] { r.next(j); });  // a record is one line: an array left open is an error there
  EXPECT_NE(msg.find("b.jsonl:5: malformed JSON"), std::string::npos) << msg;
  ASSERT_TRUE(r.next(j));
  EXPECT_EQ(j["n"], 5);
  EXPECT_EQ(r.line(), 6);
  EXPECT_FALSE(r.next(j));

  // Raw lines keep their bytes ('\r' included); whitespace-only lines are skipped.
  lathe::JsonlReader raw(d / "b.jsonl");
  std::string line;
  ASSERT_TRUE(raw.next_line(line));
  ASSERT_TRUE(raw.next_line(line));
  EXPECT_EQ(line, "{\"n\": tru}");
  EXPECT_EQ(raw.line(), 3);

  msg = error_of([&] { lathe::JsonlReader missing(d / "none.jsonl", "perplexity"); });
  EXPECT_NE(msg.find("[perplexity] " + d / "none.jsonl" + ": cannot open"), std::string::npos) << msg;
}

TEST(JsonIo, JsonlTextLinesCountsLikeTheFileReader) {
  const std::string text = "{\"a\":1}\n\n  \r\n{\"a\":2}\r\n{\"a\":3}";
  lathe::JsonlTextLines lines(text);
  std::string_view l;
  ASSERT_TRUE(lines.next(l));
  EXPECT_EQ(l, "{\"a\":1}");
  EXPECT_EQ(lines.line(), 1);
  ASSERT_TRUE(lines.next(l));
  EXPECT_EQ(l, "{\"a\":2}\r");
  EXPECT_EQ(lines.line(), 4);
  ASSERT_TRUE(lines.next(l));
  EXPECT_EQ(l, "{\"a\":3}");  // no final newline: still a line
  EXPECT_EQ(lines.line(), 5);
  EXPECT_FALSE(lines.next(l));
  EXPECT_EQ(l.data() + l.size(), text.data() + text.size());  // views into the text, no copies

  lathe::JsonlTextLines empty("\n\n");
  EXPECT_FALSE(empty.next(l));
  EXPECT_EQ(empty.line(), 2);
}

TEST(JsonIo, TemplateValueFromDeepJsonIsAnError) {
  // Built in memory (not through the bounded parser), as an HTTP request body could be.
  nlohmann::ordered_json j = 1;
  for (int i = 0; i < 100000; i++) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    a.push_back(std::move(j));
    j = std::move(a);
  }
  std::string msg = error_of([&] { lathe::jinja::Value::from_json(j); });
  EXPECT_NE(msg.find("nested deeper than 256"), std::string::npos) << msg;
  nlohmann::ordered_json ok = nlohmann::ordered_json::parse(nested(lathe::kMaxJsonDepth - 1));
  EXPECT_NO_THROW(lathe::jinja::Value::from_json(ok));
}

}  // namespace
