// `lathe data prepare` writes the same bytes as the pipeline this golden was taken from, whatever the
// thread count. Issue #22 rebuilds the pipeline for streaming; its outputs (records, token shards,
// manifest, report) must not change on the way, so the golden holds the SHA-256 of every output file
// of today's pipeline on: the bundled example's data, the fixtures' datasets, and a generated corpus
// with every record shape, planted personal data, exact and near duplicates and broken lines.
//
// The golden was written by the pipeline before the rewrite (commit 8566b49, this test file copied into
// a checkout of it):
//   LATHE_WRITE_PREPARE_GOLDEN=1 build/tests/prepare_identity_golden
// A run with the variable set rewrites tests/data/golden/prepare_outputs.json instead of comparing;
// do that only for an intended change of the outputs, and say so in the commit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;
using lathe::test::fixture_path;
using lathe::test::has_fixture;
using lathe::test::run_shell;
using lathe::test::source_path;
using nlohmann::json;

namespace {

const char* kGolden = "tests/data/golden/prepare_outputs.json";

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

// A deterministic mixed corpus: Alpaca (with and without system/input), messages (with system,
// several turns), text, ShareGPT; Korean and English; phone numbers, e-mails and resident numbers;
// exact duplicates, near duplicates (one word changed), a malformed line, a non-string field.
// Every draw is its own statement: the operands of `+` and of a function call are unsequenced, so
// two draws in one expression give different corpora under GCC and Clang.
std::string generated_corpus() {
  std::mt19937 rng(20261203);
  const std::vector<std::string> ko = {"서울", "부산", "계약", "법률", "임대차", "보증금", "세금", "신고", "절차",
                                       "상담", "회사", "근로자", "휴가", "병원", "보험", "청구", "제출", "서류"};
  const std::vector<std::string> en = {"the", "contract", "tenant", "deposit", "tax", "report", "company", "worker",
                                       "leave", "hospital", "insurance", "claim", "submit", "document", "within"};
  auto draw = [&](unsigned n) { return unsigned(rng() % n); };
  auto pick = [&](const std::vector<std::string>& v) { return v[draw(unsigned(v.size()))]; };
  auto sentence = [&]() {
    const auto& words = draw(10) < 6 ? ko : en;
    std::string s;
    const int n = 6 + int(draw(20));
    for (int i = 0; i < n; i++) {
      if (i) s += " ";
      s += pick(words);
    }
    switch (draw(30)) {
      case 0: {
        const unsigned a = 1000 + draw(9000);
        const unsigned b = 1000 + draw(9000);
        s += " 연락처 010-" + std::to_string(a) + "-" + std::to_string(b);
        break;
      }
      case 1: s += " mail user" + std::to_string(draw(999)) + "@example.com"; break;
      case 2: s += " 주민번호 900101-1234568"; break;
      default: break;
    }
    return s + ".";
  };
  auto body = [&]() {
    std::string b;
    const int n = 2 + int(draw(6));
    for (int i = 0; i < n; i++) {
      if (i) b += " ";
      b += sentence();
    }
    return b;
  };
  std::string out;
  std::vector<std::string> recent;
  for (int r = 0; r < 2500; r++) {
    const unsigned k = draw(100);
    std::string line;
    if (!recent.empty() && k < 5) {
      line = recent[draw(unsigned(recent.size()))];
    } else if (!recent.empty() && k < 8) {  // near duplicate: one more word at the end of the answer
      json j = json::parse(recent[draw(unsigned(recent.size()))]);
      if (j.contains("output")) {
        const std::string w = pick(en);
        j["output"] = j["output"].get<std::string>() + " " + w;
      }
      line = j.dump();
    } else if (k < 40) {
      const std::string instruction = sentence();
      const std::string input = k % 3 == 0 ? sentence() : "";
      const std::string output = body();
      json j = {{"instruction", instruction}, {"input", input}, {"output", output}};
      if (k % 7 == 0) j["system"] = "You are a careful legal assistant.";
      line = j.dump();
    } else if (k < 70) {
      json m = json::array();
      if (k % 4 == 0) m.push_back({{"role", "system"}, {"content", "간결하게 답하세요."}});
      const int turns = 1 + int(draw(2));
      for (int t = 0; t < turns; t++) {
        const std::string q = sentence();
        const std::string a = body();
        m.push_back({{"role", "user"}, {"content", q}});
        m.push_back({{"role", "assistant"}, {"content", a}});
      }
      line = json{{"messages", m}}.dump();
    } else if (k < 80) {
      const std::string q = sentence();
      const std::string a = body();
      line = json{{"conversations", {{{"from", "human"}, {"value", q}}, {{"from", "gpt"}, {"value", a}}}}}.dump();
    } else {
      line = json{{"text", body()}}.dump();
    }
    recent.push_back(line);
    if (recent.size() > 200) recent.erase(recent.begin());
    out += line + "\n";
    if (r == 700) out += "{\"instruction\": \"broken\n";
    if (r == 900) out += json{{"instruction", "q"}, {"input", ""}, {"output", 42}}.dump() + "\n";
  }
  return out;
}

struct Case {
  std::string name, yaml;
  bool model = false;  // with the Qwen3 tokenizer and chat template from the fixtures
};

// Sets up the case's inputs under `dir` (relative paths only, so the report is the same wherever the
// checkout is) and returns false when a fixture it needs is absent.
bool setup(const std::string& name, const fs::path& dir) {
  if (name.rfind("example", 0) == 0) {
    fs::create_directories(dir);
    fs::create_directory_symlink(source_path("examples/acme-policy-qa/data"), dir / "data");
    fs::create_directory_symlink(source_path("examples/acme-policy-qa/tests"), dir / "tests");
    return true;
  }
  if (name.rfind("fixtures", 0) == 0) {
    if (!has_fixture("datasets/ko_easylaw") || !has_fixture("datasets/kullm")) return false;
    fs::create_directories(dir / "in");
    for (auto& e : fs::directory_iterator(fixture_path("datasets/ko_easylaw")))
      if (e.path().extension() == ".json") fs::create_symlink(e.path(), dir / "in" / e.path().filename());
    fs::create_symlink(fixture_path("datasets/kullm/kullm-v1.jsonl"), dir / "in" / "kullm-v1.jsonl");
    return true;
  }
  write(dir / "corpus.jsonl", generated_corpus());
  return true;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"example", R"(data:
  inputs: [data/]
  output: out
  pii: {policy: redact}
  dedup: {exact: true, near: true, eval_prompts: [tests/eval_prompts.jsonl]}
  clean: {min_answer_chars: 3}
  format: {max_seq_length: 256}
  split: {ratios: [0.95, 0.05, 0.0], seed: 42}
)", true},
      {"fixtures", R"(data:
  inputs: [in/]
  output: out
  pii: {policy: report}
  dedup: {exact: true, near: true}
  format: {max_seq_length: 512, packing: true}
  split: {ratios: [0.8, 0.1, 0.1], seed: 7}
)", true},
      {"generated", R"(data:
  inputs: [corpus.jsonl]
  output: out
  pii: {policy: redact}
  dedup: {exact: true, near: true}
  format: {max_seq_length: 192}
  split: {ratios: [0.8, 0.1, 0.1], seed: 3}
)", true},
      {"generated_drop_nomodel", R"(data:
  inputs: [corpus.jsonl]
  output: out
  pii: {policy: drop}
  dedup: {exact: true, near: false}
  split: {ratios: [0.9, 0.1], seed: 5}
)", false},
  };
  return c;
}

// {file name: sha256} of everything the run wrote into out/.
json hashes_of(const fs::path& out) {
  json h = json::object();
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(out)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& f : files) {
    std::string o;
    EXPECT_EQ(run_shell("sha256sum '" + f.string() + "'", &o), 0);
    h[f.filename().string()] = o.substr(0, 64);
  }
  return h;
}

class PrepareIdentity : public ::testing::TestWithParam<size_t> {};

TEST_P(PrepareIdentity, SameBytesAsTheGoldenStreamedOrNot) {
  const Case& c = cases()[GetParam()];
  const fs::path dir = fs::temp_directory_path() / ("lathe-prepare-identity-" + c.name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  if (!setup(c.name, dir)) GTEST_SKIP() << "fixture datasets absent";
  if (c.model) {
    if (!has_fixture("tokenizers/qwen3/tokenizer.json")) GTEST_SKIP() << "Qwen3 tokenizer fixture absent";
    fs::create_directories(dir / "model");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(fixture_path(std::string("tokenizers/qwen3/") + f), dir / "model" / f);
  }
  write(dir / "data.yaml", c.yaml);
  json got;
  // The streaming driver at its default batch size, at 2 threads, in batches of 7 records and JSONL
  // pieces of 4 KB (every batch and piece boundary crossed; the tokenizer's load slowed down, so that
  // the first batches wait for it while the next are read), in runs of 3 records inside batches of 50
  // (each run's spool copy overlaps the next run's work), and the in-memory driver.
  const std::vector<std::pair<int, std::string>> runs = {
      {1, ""}, {2, ""},
      {2, "LATHE_DATA_BATCH_RECORDS=7 LATHE_DATA_PIECE_BYTES=4096 LATHE_DATA_SPOOL_BYTES=1 LATHE_DATA_SPOOL_WRITE_BYTES=2000 "
          "LATHE_TOKENIZER_LOAD_DELAY_MS=400 "},
      {2, "LATHE_DATA_BATCH_RECORDS=50 LATHE_DATA_RUN_RECORDS=3 LATHE_DATA_SPOOL_BYTES=5000 "}, {1, "LATHE_DATA_IN_MEMORY=1 "}};
  for (auto& [threads, env] : runs) {
    fs::remove_all(dir / "out");
    std::string log;
    const std::string cmd = "cd '" + dir.string() + "' && " + env + "OMP_NUM_THREADS=" + std::to_string(threads) + " " +
                            LATHE_BINARY + " data prepare --config data.yaml" + (c.model ? " --model model" : "") + " 2>&1";
    ASSERT_EQ(run_shell(cmd, &log), 0) << log;
    json h = hashes_of(dir / "out");
    if (got.is_null() && c.name.rfind("generated", 0) == 0) {  // the corpus reaches the drop paths it was made for
      std::map<std::string, size_t> dropped;
      const json report = json::parse(std::ifstream(dir / "out" / "report.json"));
      for (auto& st : report["stages"])
        for (auto& [reason, n] : st["dropped"].items()) dropped[reason] += n.get<size_t>();
      EXPECT_TRUE(dropped.count("exact duplicate")) << log;
      EXPECT_GT(dropped.size(), 2u) << log;
    }
    if (got.is_null())
      got = h;
    else
      EXPECT_EQ(h, got) << c.name << ": the outputs depend on " << env << "threads " << threads;
  }
  const std::string golden_path = source_path(kGolden);
  json golden = json::object();
  if (std::ifstream in(golden_path); in) golden = json::parse(in);
  if (std::getenv("LATHE_WRITE_PREPARE_GOLDEN")) {
    golden[c.name] = got;
    std::ofstream(golden_path) << golden.dump(2) << "\n";
  } else {
    ASSERT_TRUE(golden.contains(c.name)) << "no golden for " << c.name << " in " << kGolden;
    EXPECT_EQ(got, golden[c.name]) << c.name << ": outputs differ from the pipeline the golden was taken from";
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Cases, PrepareIdentity, ::testing::Range<size_t>(0, 4),
                         [](const ::testing::TestParamInfo<size_t>& i) { return cases()[i.param].name; });

}  // namespace
