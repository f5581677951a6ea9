// The streaming `lathe data prepare` (pipeline_stream.cpp) against the in-memory driver
// (LATHE_DATA_IN_MEMORY=1) on inputs that take every way through it: JSONL read in pieces (CRLF, blank
// lines, a malformed line, a line longer than a piece, a last line without '\n'), files read whole (CSV, Markdown, HTML, a JSONL
// with a BOM, an empty and a blank JSONL), near-duplicate clusters kept (split groups), strata, eval
// prompts, packing, and preference records (handed back to the in-memory driver). Tiny batches and
// pieces cross every boundary. prepare_identity_golden.cpp holds both to the golden bytes as well.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;
using lathe::test::fixture_path;
using lathe::test::has_fixture;
using lathe::test::run_shell;
using nlohmann::json;

namespace {

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

std::map<std::string, std::string> files_of(const fs::path& out) {
  std::map<std::string, std::string> m;
  for (auto& e : fs::directory_iterator(out)) {
    std::ifstream in(e.path(), std::ios::binary);
    m[e.path().filename().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return m;
}

struct PrepareRun {
  int rc = 0;
  std::string log;
  std::map<std::string, std::string> files;
};

PrepareRun prepare(const fs::path& dir, const std::string& env, const std::string& args) {
  PrepareRun r;
  fs::remove_all(dir / "out");
  r.rc = run_shell("cd '" + dir.string() + "' && " + env + " OMP_NUM_THREADS=2 " + LATHE_BINARY +
                       " data prepare --config data.yaml " + args + " 2>&1",
                   &r.log);
  if (fs::exists(dir / "out")) r.files = files_of(dir / "out");
  return r;
}

// Spools of 700 bytes in memory: they move to disk a few batches in, then are written every 300 bytes
// (whole blocks: 4 KiB), read ahead 64 bytes at a time, and dedup reads them back in windows of 200.
const char* kTiny =
    "LATHE_DATA_BATCH_RECORDS=3 LATHE_DATA_PIECE_BYTES=64 LATHE_DATA_SPOOL_BYTES=700 LATHE_DATA_SPOOL_WRITE_BYTES=300 "
    "LATHE_DATA_SPOOL_READ_AHEAD=64 LATHE_DATA_SCAN_BYTES=200";
// Exact dedup with 3 bits of hash (different texts share a hash and are told apart byte for byte) and
// no memory to hold texts in (each group of a shared hash waits for a pass of its own).
const std::string kCollide = std::string(kTiny) + " LATHE_DATA_DEDUP_HASH_BITS=3 LATHE_DATA_DEDUP_HOLD_BYTES=1";
// Recent texts held while the records stream by: none (every duplicate read back) and a few (some
// groups settled as they came, some with several roots read back).
const std::string kNoRecent = std::string(kTiny) + " LATHE_DATA_RECENT_BYTES=1";
const std::string kFewRecent = std::string(kTiny) + " LATHE_DATA_RECENT_BYTES=400";

// The streaming run's log.
std::string expect_same(const fs::path& dir, const std::string& args, const std::string& env = kTiny) {
  const PrepareRun s = prepare(dir, env, args);
  EXPECT_EQ(s.rc, 0) << s.log;
  if (s.rc != 0) return s.log;
  const PrepareRun m = prepare(dir, "LATHE_DATA_IN_MEMORY=1", args);
  EXPECT_EQ(m.rc, 0) << m.log;
  EXPECT_EQ(s.files.size(), m.files.size());
  for (auto& [name, bytes] : m.files) {
    EXPECT_TRUE(s.files.count(name)) << name;
    if (s.files.count(name))
      EXPECT_TRUE(s.files.at(name) == bytes) << name << " differs between the streaming and the in-memory driver";
  }
  for (auto& [name, bytes] : s.files) {
    EXPECT_NE(name.rfind(".lathe-prepare", 0), 0u) << name << " was left behind";
    EXPECT_EQ(name.find(".tmp."), std::string::npos) << name << " was left behind";
  }
  return s.log;
}

std::string sft_line(int i, const std::string& category) {
  json j = {{"instruction", "Question " + std::to_string(i % 17) + " about the lease deposit"},
            {"input", ""},
            {"output", "Answer " + std::to_string(i % 17) + ": the deposit is returned within " + std::to_string(i % 5) +
                           " weeks. Call 010-1234-" + std::to_string(5600 + i % 17) + "."},
            {"category", category}};
  return j.dump();
}

void mixed_inputs(const fs::path& d) {
  std::string a;
  for (int i = 0; i < 60; i++) {
    a += sft_line(i, i % 3 ? "law" : "tax") + (i % 4 ? "\n" : "\r\n");
    if (i % 9 == 0) a += "\n  \n";
    if (i == 20) a += "{\"instruction\": \"broken\n";
    if (i == 30) {  // a line longer than a piece, and a near duplicate of line 30 (one word more)
      json j = json::parse(sft_line(i, "law"));
      j["output"] = j["output"].get<std::string>() + " Also bring the contract.";
      a += j.dump() + "\n";
    }
  }
  write(d / "in" / "a.jsonl", a);
  std::string b;
  for (int i = 0; i < 20; i++)
    b += json{{"messages", {{{"role", "user"}, {"content", "대화 " + std::to_string(i % 7) + " 질문입니다"}},
                            {{"role", "assistant"}, {"content", "답변 " + std::to_string(i % 7) + " 입니다. 감사합니다."}}}},
              {"category", "law"}}
             .dump() +
         (i < 19 ? "\n" : "");  // the last line without its '\n'
  write(d / "in" / "b.jsonl", b);
  write(d / "in" / "c.csv", "question,answer,category\nWhat is a lease?,A contract to rent.,law\n\"broken,quote\n");
  write(d / "in" / "d.md", "# Notes\n\nThe deposit is returned within two weeks.\n\n## More\n\nKeep the receipt.\n");
  write(d / "in" / "e.html", "<html><body><p>Tax returns are due in May &amp; June.</p></body></html>");
  write(d / "in" / "f.jsonl", "\xEF\xBB\xBF" + sft_line(100, "tax") + "\n" + sft_line(101, "tax") + "\n");
  write(d / "in" / "g.jsonl", "");
  write(d / "in" / "h.jsonl", " \n\n");
  write(d / "eval.jsonl", json{{"instruction", "Question 3 about the lease deposit"}, {"output", "x"}}.dump() + "\n");
}

// A fresh directory with mixed_inputs and a data.yaml of inputs [in/], output out, and `rest`.
fs::path mixed_dir(const std::string& tag, const std::string& rest) {
  const fs::path dir = fs::temp_directory_path() / ("lathe-prepare-stream-" + tag + std::to_string(getpid()));
  fs::remove_all(dir);
  mixed_inputs(dir);
  write(dir / "data.yaml", "data:\n  inputs: [in/]\n  output: out\n" + rest);
  return dir;
}

// The Qwen3 tokenizer as dir/model; false without the fixture.
bool add_qwen3_model(const fs::path& dir) {
  if (!has_fixture("tokenizers/qwen3/tokenizer.json")) return false;
  fs::create_directories(dir / "model");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fixture_path(std::string("tokenizers/qwen3/") + f), dir / "model" / f);
  return true;
}

}  // namespace

TEST(PrepareStream, SameBytesAsInMemoryOnMixedInputs) {
  const fs::path dir = mixed_dir("", R"(  pii: {policy: redact}
  dedup: {exact: true, near: true, near_action: keep, threshold: 0.6, eval_prompts: [eval.jsonl], contamination_action: report}
  format: {max_seq_length: 48, packing: true}
  split: {ratios: [0.6, 0.2, 0.2], seed: 11, stratify_by: category}
)");
  expect_same(dir, "");
  expect_same(dir, "", kCollide);
  expect_same(dir, "", kNoRecent);
  expect_same(dir, "", kFewRecent);
  // The run saw what it was built to see.
  const json report = json::parse(std::ifstream(dir / "out" / "report.json"));
  EXPECT_GT(report["dedup"]["near_clusters"].size(), 0u);
  EXPECT_GT(report["dedup"]["exact_clusters"].size(), 0u);
  EXPECT_TRUE(report["totals"]["reconciles"].get<bool>());
  if (add_qwen3_model(dir)) {
    expect_same(dir, "--model model");
    expect_same(dir, "--model model", kCollide);
    expect_same(dir, "--model model --dedup-near-action drop");
  }
  fs::remove_all(dir);
}

// A text that comes back after the recent texts have let it go, then again at once: the second copy
// is read back and found equal to the first, the third was seen equal to the second as it came, and
// both are reported as duplicates of the first (as the in-memory driver reports them).
TEST(PrepareStream, DuplicatesSettledAsTheyCameFollowTheFirstCopy) {
  const fs::path dir = fs::temp_directory_path() / ("lathe-prepare-stream-recent-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "in");
  std::string lines;
  const std::string again = sft_line(1000, "law");
  lines += again + "\n";
  for (int i = 0; i < 30; i++) lines += json{{"text", "Distinct note number " + std::to_string(i) + " on tenancy law."}}.dump() + "\n";
  lines += again + "\n" + again + "\n";
  write(dir / "in" / "a.jsonl", lines);
  write(dir / "data.yaml", "data:\n  inputs: [in/]\n  output: out\n  dedup: {exact: true}\n  split: {ratios: [1]}\n");
  for (const std::string& env : {kFewRecent, kNoRecent, std::string(kTiny)}) expect_same(dir, "", env);
  const json report = json::parse(std::ifstream(dir / "out" / "report.json"));
  const std::string dump = report.dump();
  EXPECT_NE(dump.find("in/a.jsonl:33: duplicate of in/a.jsonl:1"), std::string::npos) << dump;
  fs::remove_all(dir);
}

// All records to one split: its records file is written as the records come, a prediction of what
// dedup and format will keep that holds when every duplicate is seen among the recent texts, and is
// written again by the writers' pass when not (a duplicate beyond them, a hash two texts share).
TEST(PrepareStream, OneSplitRecordsFileWrittenAsTheRecordsCame) {
  const fs::path dir = mixed_dir("early-", R"(  pii: {policy: redact}
  dedup: {exact: true, near: false}
  format: {max_seq_length: 40, truncation: drop, min_tokens: 12}
  split: {ratios: [0, 0.5, 0]}
)");
  const std::string kept = "the validation records file was written as the records came";
  const std::string again = "the validation records file is written again";
  std::string log = expect_same(dir, "", kTiny + std::string(" LATHE_VERBOSE=1"));
  EXPECT_NE(log.find(kept), std::string::npos) << log;
  log = expect_same(dir, "", kNoRecent + " LATHE_VERBOSE=1");
  EXPECT_NE(log.find(again), std::string::npos) << log;
  expect_same(dir, "", kCollide + " LATHE_VERBOSE=1");
  const json report = json::parse(std::ifstream(dir / "out" / "report.json"));
  EXPECT_GT(report["dedup"]["exact_clusters"].size(), 0u);
  EXPECT_EQ(report["splits"]["train"].get<size_t>(), 0u) << report["splits"].dump();
  EXPECT_GT(report["splits"]["validation"].get<size_t>(), 0u) << report["splits"].dump();
  if (add_qwen3_model(dir)) {
    log = expect_same(dir, "--model model", kTiny + std::string(" LATHE_VERBOSE=1"));
    EXPECT_NE(log.find(kept), std::string::npos) << log;
    // Format dropped some (too short, too long) and kept others: the file holds only the kept.
    const json r = json::parse(std::ifstream(dir / "out" / "report.json"));
    size_t format_drops = 0;
    for (auto& st : r["stages"])
      if (st["stage"] == "format") format_drops = st["in"].get<size_t>() - st["out"].get<size_t>();
    EXPECT_GT(format_drops, 0u) << r["stages"].dump();
    log = expect_same(dir, "--model model", kNoRecent + " LATHE_VERBOSE=1");
    EXPECT_NE(log.find(again), std::string::npos) << log;
  }
  fs::remove_all(dir);
}

// A JSONL file is read once, each piece checked as it comes: one that is UTF-8 for some pieces and
// then not is read whole after all, as the in-memory driver reads it. Records of it handed on already
// (small batches) make the run start over with the file read whole; none yet (one large batch), and
// they are taken back. With strict, a malformed line before the bad bytes errs only as the file read
// whole does.
TEST(PrepareStream, JsonlThatStopsBeingUtf8IsReadWhole) {
  const fs::path dir = fs::temp_directory_path() / ("lathe-prepare-stream-utf8-" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::string a;
  for (int i = 0; i < 40; i++) a += sft_line(i, "law") + "\n";
  a += "{\"text\": \"\xC7\xD1\xB1\xDB \xB9\xAE\xC0\xE5\"}\n";  // CP949 Korean: not UTF-8
  for (int i = 40; i < 50; i++) a += sft_line(i, "tax") + "\n";
  write(dir / "in" / "a.jsonl", a);
  write(dir / "in" / "b.jsonl", sft_line(77, "law") + "\n");
  write(dir / "data.yaml", "data:\n  inputs: [in/]\n  output: out\n  dedup: {exact: true, near: false}\n");
  const std::string log = expect_same(dir, "", kTiny);
  EXPECT_NE(log.find("in/a.jsonl is not UTF-8 past its first piece"), std::string::npos) << log;
  const std::string one_batch = "LATHE_DATA_PIECE_BYTES=64 LATHE_DATA_BATCH_RECORDS=100000";
  EXPECT_EQ(expect_same(dir, "", one_batch).find("not UTF-8 past"), std::string::npos);
  // Strict: the streaming run errs exactly when the whole-file read does, with the same words.
  write(dir / "in" / "a.jsonl", sft_line(1, "law") + "\n{\"broken\n" + a);
  write(dir / "data.yaml", "data:\n  inputs: [in/]\n  output: out\n  strict: true\n");
  for (const std::string& env : {std::string(kTiny), one_batch}) {
    const PrepareRun s = prepare(dir, env, ""), m = prepare(dir, "LATHE_DATA_IN_MEMORY=1", "");
    EXPECT_EQ(s.rc, m.rc) << s.log << m.log;
    EXPECT_EQ(s.log.substr(s.log.find("error")), m.log.substr(m.log.find("error"))) << s.log << m.log;
  }
  fs::remove_all(dir);
}

// Pretokenized records whose labels are not the masked ids (spooled as int32 labels, the others as
// one bit a token), and records from a JSON array (positions by item, not line).
TEST(PrepareStream, PretokenizedLabelsAndArrayItemsSurviveTheSpool) {
  if (!has_fixture("tokenizers/qwen3/tokenizer.json")) GTEST_SKIP() << "no Qwen3 tokenizer fixture";
  const fs::path dir = fs::temp_directory_path() / ("lathe-prepare-stream-pretok-" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::string a;
  for (int i = 0; i < 40; i++) {
    json ids = json::array(), labels = json::array();
    for (int k = 0; k < 5 + i % 11; k++) {
      ids.push_back(100 + (i * 7 + k * 13) % 900);
      // every third record: a label that is neither the id nor -100 (shifted targets, as some exports write)
      labels.push_back(k < 2 ? -100 : i % 3 == 0 ? ids.back().get<int>() + 1 : ids.back().get<int>());
    }
    a += json{{"input_ids", ids}, {"labels", labels}}.dump() + "\n";
  }
  write(dir / "in" / "a.jsonl", a);
  json arr = json::array();
  for (int i = 0; i < 9; i++) arr.push_back(json::parse(sft_line(200 + i, "law")));
  write(dir / "in" / "b.json", arr.dump());
  add_qwen3_model(dir);
  write(dir / "data.yaml", R"(data:
  inputs: [in/]
  output: out
  dedup: {exact: true, near: false}
  split: {ratios: [0.5, 0.5], seed: 3}
)");
  expect_same(dir, "--model model");
  const std::string recs = prepare(dir, "", "--model model").files["train.records.jsonl"];
  EXPECT_NE(recs.find("\"item\""), std::string::npos) << "no record from the JSON array reached the train split";
  fs::remove_all(dir);
}

TEST(PrepareStream, PreferenceRecordsGoToTheInMemoryDriver) {
  const fs::path dir = fs::temp_directory_path() / ("lathe-prepare-stream-pref-" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::string p;
  for (int i = 0; i < 12; i++)
    p += json{{"prompt", "Which is better, " + std::to_string(i % 5) + "?"}, {"chosen", "The first."}, {"rejected", "No idea."}}
             .dump() +
         "\n";
  write(dir / "in" / "pref.jsonl", p);
  write(dir / "data.yaml", "data:\n  inputs: [in/]\n  output: out\n  split: {ratios: [0.5, 0.5, 0.0]}\n");
  expect_same(dir, "");
  fs::remove_all(dir);
}

TEST(PrepareStream, AFailedRunLeavesNoSpool) {
  const fs::path dir = fs::temp_directory_path() / ("lathe-prepare-stream-fail-" + std::to_string(getpid()));
  fs::remove_all(dir);
  write(dir / "in" / "a.jsonl", sft_line(1, "law") + "\n{broken\n" + sft_line(2, "law") + "\n");
  write(dir / "data.yaml", "data:\n  inputs: [in/]\n  output: out\n  strict: true\n");
  const PrepareRun r = prepare(dir, kTiny, "");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.log.find("a.jsonl:2"), std::string::npos) << r.log;
  EXPECT_FALSE(fs::exists(dir / "out" / ".lathe-prepare-spool"));
  EXPECT_FALSE(fs::exists(dir / "out" / ".lathe-prepare-keys"));
  fs::remove_all(dir);
}
