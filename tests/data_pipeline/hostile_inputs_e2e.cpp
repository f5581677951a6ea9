// Hostile input files: deeply nested JSON at every entry point that reads user JSON (library and
// CLI: the error is a normal one naming the file and line, never a crash), single-line documents
// chunked in linear time, and directory walks that survive symlink loops and dangling links.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/data/collect.h"
#include "lathe/records/record_shape.h"
#include "lathe/tokenizer/bpe_trainer.h"
#include "lathe/chat/chat_template.h"
#include "lathe/train/dataset.h"
#include "test_util.h"

namespace fs = std::filesystem;
using lathe::test::run_lathe;
using lathe::test::TempDir;

namespace {

const std::string kDeep = std::string(100000, '[') + std::string(100000, ']');  // 200 KB
const std::string kGood = R"({"messages":[{"role":"user","content":"What is two plus two?"},{"role":"assistant","content":"Four."}]})";

void write(const std::string& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary);
  f << s;
}

using ::lathe::test::error_of;

std::string first_example(const lathe::data::CollectResult& r, const std::string& reason) {
  auto it = r.counts.examples.find(reason);
  return it == r.counts.examples.end() || it->second.empty() ? "" : it->second[0];
}

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// --- deep JSON through the library entry points ---

TEST(HostileJson, CollectDropsDeepLinesAndFilesWithTheirLine) {
  lathe::data::CollectOptions o;
  lathe::data::CollectResult r;
  std::string deep_msg = R"({"messages":[{"role":"user","content":"hi","extra":)" + kDeep + "}]}";
  lathe::data::collect_bytes(kGood + "\n" + deep_msg + "\n" + kGood + "\n", "in.jsonl", "jsonl", o, r);
  EXPECT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.counts.dropped["JSON nested too deep"], 1u);
  EXPECT_TRUE(has(first_example(r, "JSON nested too deep"), "in.jsonl:2")) << first_example(r, "JSON nested too deep");
  lathe::data::CollectResult j;
  lathe::data::collect_bytes("{\n\"rows\": [\n" + kGood + ",\n" + kDeep + "]}", "in.json", "json", o, j);
  EXPECT_EQ(j.records.size(), 0u);
  EXPECT_TRUE(has(first_example(j, "JSON nested too deep"), "in.json:4")) << first_example(j, "JSON nested too deep");
  lathe::data::CollectOptions strict = o;
  strict.strict = true;
  lathe::data::CollectResult s;
  std::string msg = error_of([&] { lathe::data::collect_bytes(kGood + "\n" + kDeep + "\n", "in.jsonl", "jsonl", strict, s); });
  EXPECT_TRUE(has(msg, "in.jsonl:2: JSON nested too deep")) << msg;
}

TEST(HostileJson, TrainDatasetAndTokenizerTextAndTemplate) {
  TempDir d;
  write(d / "train.jsonl", "{\"input_ids\":[1,2,3]}\n" + kDeep + "\n");
  std::string msg = error_of([&] { lathe::TrainDataset::load(d / "train.jsonl", 16); });
  EXPECT_TRUE(has(msg, d / "train.jsonl" + ":2: nesting deeper than 256")) << msg;

  std::vector<std::string> texts;
  msg = error_of([&] { lathe::record_training_texts("{\"text\":\"a\",\"x\":" + kDeep + "}", texts); });
  EXPECT_TRUE(has(msg, "nesting deeper than 256")) << msg;

  // A message's extra field built in memory (the serve path) reaches the template's conversion.
  nlohmann::ordered_json deep = 1;
  for (int i = 0; i < 100000; i++) {  // push_back(move): an initializer list would copy, recursively
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    a.push_back(std::move(deep));
    deep = std::move(a);
  }
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}});
  msgs[0]["extra"] = std::move(deep);
  lathe::ChatTemplate t = lathe::ChatTemplate::builtin("chatml");
  msg = error_of([&] { t.render_text(msgs, lathe::ChatRenderOptions{}); });
  EXPECT_TRUE(has(msg, "nested deeper than 256")) << msg;
}

// --- deep JSON through the CLI: a normal error exit (not a signal) naming the file ---

TEST(HostileJson, CliEntryPoints) {
  TempDir d;
  fs::create_directories(d / "in");
  write(d / "in/a.jsonl", kGood + "\n" + kDeep + "\n");
  write(d / "in/b.json", "[\n" + kDeep + "\n]");
  std::string out;
  // data prepare skips (and reports) the bad line/file; --strict stops at it.
  ASSERT_EQ(run_lathe("data prepare --input " + d / "in" + " --output " + d / "ds", &out, true), 0) << out;
  std::string report = lathe::read_file(d / "ds/report.json");
  EXPECT_TRUE(has(report, "a.jsonl:2")) << report.substr(0, 2000);
  EXPECT_TRUE(has(report, "b.json:2")) << report.substr(0, 2000);
  EXPECT_EQ(run_lathe("data prepare --strict --input " + d / "in/a.jsonl" + " --output " + d / "ds2", &out, true), 1);
  EXPECT_TRUE(has(out, "a.jsonl:2: JSON nested too deep")) << out;
  EXPECT_EQ(run_lathe("data collect --strict --input " + d / "in/b.json" + " --output " + d / "c.jsonl", &out, true), 1);
  EXPECT_TRUE(has(out, "b.json:2: JSON nested too deep")) << out;
  // tokenizer train skips a bad line with a warning naming it, as for any malformed line.
  ASSERT_EQ(run_lathe("tokenizer train --vocab-size 300 --input " + d / "in/a.jsonl" + " --output " + d / "tok", &out, true), 0)
      << out;
  EXPECT_TRUE(has(out, "a.jsonl:2: skipped")) << out;
  EXPECT_TRUE(has(out, "nesting deeper than 256")) << out;
  // chat-template: the messages file, and a deep extra field inside a message.
  write(d / "m.json", "[\n" + kDeep + "]");
  EXPECT_EQ(run_lathe("chat-template --template chatml --messages " + d / "m.json", &out, true), 1);
  EXPECT_TRUE(has(out, "m.json:2: nesting deeper than 256")) << out;
  write(d / "m2.json", "[{\"role\":\"user\",\"content\":\"hi\",\n\"extra\":" + kDeep + "}]");
  EXPECT_EQ(run_lathe("chat-template --template chatml --messages " + d / "m2.json", &out, true), 1);
  EXPECT_TRUE(has(out, "m2.json:2: nesting deeper than 256")) << out;
}

TEST(HostileJson, CliTrainAndPrepareWithModel) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  const std::string model = lathe::test::fixture_path("models/stories260K-hf");
  TempDir d;
  write(d / "t.jsonl", "{\"input_ids\":[1,2,3,4]}\n" + kDeep + "\n");
  std::string out;
  EXPECT_EQ(run_lathe("train --threads 1 --model " + model + " --data " + d / "t.jsonl" + " --output " + d / "run" +
                          " --max-steps 1",
                      &out, true),
            1);
  EXPECT_TRUE(has(out, "t.jsonl:2: nesting deeper than 256")) << out;
  fs::create_directories(d / "in");
  write(d / "in/a.jsonl", kGood + "\n" + R"({"messages":[{"role":"user","content":"hi","extra":)" + kDeep +
                              R"(},{"role":"assistant","content":"yo"}]})" + "\n");
  ASSERT_EQ(run_lathe("data prepare --chat-template chatml --model " + model + " --input " + d / "in" + " --output " +
                          d / "ds",
                      &out, true),
            0)
      << out;
  EXPECT_TRUE(has(lathe::read_file(d / "ds/report.json"), "a.jsonl:2"));
}

// --- linear chunking ---

TEST(HostileText, SingleLineDocumentIsChunkedInLinearTime) {
  // 48 MB on one line: the old chunker recounted the remainder per chunk (17 s for 20 MB, about
  // 100 s here); now a fraction of a second. CTest's TIMEOUT for this file catches a regression.
  std::string text;
  const std::string words = "lorem ipsum dolor sit amet, consectetur adipiscing elit. sed do eiusmod ";  // 72 bytes
  const std::string korean = "데이터는 한 줄에 있다. ";  // multi-byte code points
  while (text.size() < (48u << 20)) {
    text += words;
    if (text.size() % 7 == 0) text += korean;
  }
  lathe::data::CollectOptions o;
  o.chunk_chars = 4000;
  auto chunks = lathe::data::chunk_document(text, o, false);
  ASSERT_GT(chunks.size(), lathe::data::utf8_length(text) / 4000);
  std::string joined;
  for (auto& c : chunks) {
    ASSERT_LE(lathe::data::utf8_length(c.text), 4000u);
    ASSERT_GT(lathe::data::utf8_length(c.text), 2000u - 8);  // cuts are never before half the budget
    ASSERT_TRUE(lathe::data::valid_utf8(c.text));
    EXPECT_EQ(c.line, 1);
    joined += c.text;
  }
  // Only the whitespace at the cuts is dropped.
  std::string squeezed;
  for (char ch : text)
    if (ch != ' ') squeezed += ch;
  std::string jsq;
  for (char ch : joined)
    if (ch != ' ') jsq += ch;
  EXPECT_EQ(jsq, squeezed);
}

TEST(HostileText, HtmlAndEntitiesWithoutTerminatorsAreLinear) {
  // A '<' with no '>' after it and a '&' with no ';' used to search to the end of the text each.
  const std::string lt(8u << 20, '<'), amp(8u << 20, '&');
  EXPECT_EQ(lathe::data::html_to_text(lt).size(), lt.size());
  EXPECT_EQ(lathe::data::decode_html_entities(amp), amp);
  EXPECT_EQ(lathe::data::decode_html_entities("a &amp; b &#233; &bogus c &lt"), "a & b é &bogus c &lt");
}

// --- directory walks ---

TEST(HostileDirs, SymlinkLoopsAndDanglingLinksAreReportedNotFatal) {
  TempDir d;
  fs::create_directories(d / "in/sub");
  write(d / "in/good.jsonl", kGood + "\n");
  write(d / "in/sub/more.jsonl", R"({"text":"another document with enough words to be kept by cleaning rules"})" "\n");
  fs::create_symlink("self", d / "in/self");               // a loop on itself
  fs::create_symlink("nowhere.jsonl", d / "in/dangling.jsonl");
  fs::create_directory_symlink("..", d / "in/sub/up");     // a directory loop
  ASSERT_EQ(mkfifo((d / "in/pipe.jsonl").c_str(), 0600), 0);  // reading it would block forever
  std::vector<lathe::data::SkippedSource> skipped;
  auto files = lathe::data::expand_inputs({d / "in"}, &skipped);
  ASSERT_EQ(files.size(), 2u);
  std::map<std::string, std::string> why;
  for (auto& s : skipped) why[fs::path(s.path).filename().string()] = s.reason;
  EXPECT_EQ(why["self"], "symlink loop");
  EXPECT_EQ(why["dangling.jsonl"], "dangling symlink");
  EXPECT_EQ(why["up"], "symlink loop");
  EXPECT_EQ(why["pipe.jsonl"], "not a regular file");
  EXPECT_EQ(skipped.size(), 4u);

  lathe::data::CollectResult r = lathe::data::collect({d / "in"}, lathe::data::CollectOptions{});
  EXPECT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.counts.dropped["symlink loop"], 2u);
  EXPECT_EQ(r.counts.dropped["dangling symlink"], 1u);
  EXPECT_TRUE(r.counts.reconciles());

  std::string out;
  ASSERT_EQ(run_lathe("data prepare --input " + d / "in" + " --output " + d / "ds", &out, true), 0) << out;
  nlohmann::json rep = nlohmann::json::parse(lathe::read_file(d / "ds/report.json"));
  const auto& src = rep["sources"];
  EXPECT_EQ(src["read"], 2);
  EXPECT_EQ(src["seen"], 6);
  EXPECT_EQ(src["skipped"].size(), 4u);
  EXPECT_EQ(src["seen"].get<size_t>(), src["read"].get<size_t>() + src["skipped"].size());
  EXPECT_TRUE(rep["totals"]["reconciles"].get<bool>());
  EXPECT_TRUE(has(lathe::read_file(d / "ds/report.html"), "dangling symlink"));
  // A pattern naming a loop or dangling link itself is skipped the same way, not fatal.
  skipped.clear();
  files = lathe::data::expand_inputs({d / "in/self", d / "in/dangling.jsonl", d / "in/good.jsonl"}, &skipped);
  EXPECT_EQ(files.size(), 1u);
  EXPECT_EQ(skipped.size(), 2u);
}

}  // namespace
