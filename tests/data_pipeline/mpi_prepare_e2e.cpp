// `lathe data prepare` under `mpirun -np 2` writes the same output directory, byte for byte, as one
// process: on a corpus whose planted exact and near duplicates, personal data, malformed lines and
// drops sit in files that land on different ranks, in pieces small enough to need many gather rounds,
// and on the bundled example's data config; a rank that fails on a bad file stops the job, naming
// the rank and the file, without hanging.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/data/pipeline_internal.h"
#include "test_util.h"

namespace fs = std::filesystem;
using lathe::test::run_lathe;
using nlohmann::json;

namespace {

#define LATHE_REQUIRE_MPI()                                                                                  \
  do {                                                                                                       \
    if (!lathe::test::mpi_available()) GTEST_SKIP() << "mpirun or an MPI build of lathe is missing (skipping)"; \
  } while (0)

// `mpirun -np NP [MPIRUN_ARGS] lathe ARGS`, stdout and stderr in *out, bounded by `timeout` so that ranks
// waiting on each other forever fail the test instead of hanging it (exit status 124: timed out).
int run_mpi(int np, const std::string& args, std::string* out, int timeout_s = 300, const std::string& mpirun_args = "") {
  const std::string cmd = "timeout -k 10 " + std::to_string(timeout_s) + " " + lathe::test::mpirun_prefix(np) + mpirun_args +
                          " " + LATHE_BINARY + " " + args + " 2>&1";
  return lathe::test::run_shell(cmd, out);
}

void write(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// A sentence of `n` words drawn by a fixed LCG from a small vocabulary: distinct seeds give texts
// that share few 5-word shingles, so only the planted pairs are near duplicates.
std::string words(uint64_t seed, int n) {
  static const char* vocab[] = {"river", "stone", "policy", "laptop", "travel", "budget", "office", "review",
                                "signal", "garden", "ticket", "window", "market", "letter", "summer", "winter",
                                "engine", "museum", "pocket", "silver", "forest", "harbor", "castle", "planet",
                                "meadow", "candle", "rocket", "bridge", "island", "valley", "mirror", "anchor"};
  std::string s;
  uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int i = 0; i < n; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    if (i) s += ' ';
    s += vocab[(x >> 33) % 32];
  }
  return s;
}

std::string alpaca(const std::string& q, const std::string& a) {
  return json{{"instruction", q}, {"input", ""}, {"output", a}}.dump() + "\n";
}

// Four JSONL files of about the same size (so a and b go to rank 0, c and d to rank 1) and a note.
void make_corpus(const std::string& d) {
  fs::create_directories(d);
  std::map<char, std::string> f;
  for (char c : {'a', 'b', 'c', 'd'}) {
    for (int i = 0; i < 30; i++) {
      const uint64_t seed = uint64_t(c) * 1000 + uint64_t(i);
      f[c] += alpaca("Question " + std::string(1, c) + std::to_string(i) + ": " + words(seed, 8), words(seed + 500000, 120));
    }
  }
  // Exact duplicate across ranks: a's record 5 again in d, differing only in case and punctuation.
  std::string q5 = "Question a5: " + words('a' * 1000 + 5, 8), a5 = words('a' * 1000 + 5 + 500000, 120);
  for (auto& ch : q5) ch = char(std::toupper((unsigned char)ch));
  f['d'] += alpaca(q5 + "!", a5 + ".");
  // Near duplicate across ranks: b's record 7 in c with its last word changed.
  std::string a7 = words('b' * 1000 + 7 + 500000, 120);
  a7 = a7.substr(0, a7.rfind(' ')) + " zeppelin";
  f['c'] += alpaca("Question b7: " + words('b' * 1000 + 7, 8), a7);
  // Personal data on both ranks.
  f['a'] += alpaca("Who handles payroll?", "Write to kim.minsu@acme-korea.com or call 010-2345-6789 after lunch.");
  f['d'] += alpaca("Who handles badges?", "Ask lee.jiwon@acme-korea.com, phone 010-8765-4321, at the front desk.");
  // More drops of one reason than the report keeps examples of (5), on both ranks.
  for (int i = 0; i < 3; i++) f['a'] += "{not json " + std::to_string(i) + "\n";
  for (int i = 0; i < 4; i++) f['d'] += "{broken " + std::to_string(i) + "\n";
  f['b'] += alpaca("An empty answer", "");                        // clean: no answer
  f['c'] += json{{"weird", 1}}.dump() + "\n";                      // map: no known shape
  f['c'] += alpaca("Contaminated: what is the travel budget for a trip to Busan in winter?", "About 300000 won.");
  for (auto& [c, body] : f) write(d + "/" + std::string(1, c) + ".jsonl", body);
  write(d + "/e.md", "# Note\n\nThe office opens at nine.\n\n## Lunch\n\nThe canteen serves lunch at noon.\n");
}

// Every regular file under `dir`, by relative path.
std::map<std::string, std::string> read_tree(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = lathe::read_file(e.path().string());
  return files;
}

// The two directories hold the same files with the same bytes.
void expect_same_tree(const std::string& one, const std::string& many) {
  auto a = read_tree(one), b = read_tree(many);
  std::vector<std::string> na, nb;
  for (auto& [k, v] : a) na.push_back(k);
  for (auto& [k, v] : b) nb.push_back(k);
  ASSERT_EQ(na, nb);
  ASSERT_FALSE(a.empty());
  for (auto& [name, bytes] : a) {
    const std::string& other = b[name];
    if (bytes == other) continue;
    size_t at = 0;
    while (at < bytes.size() && at < other.size() && bytes[at] == other[at]) at++;
    ADD_FAILURE() << name << " differs at byte " << at << " of " << bytes.size() << " / " << other.size() << ":\n  one:  "
                  << bytes.substr(at > 80 ? at - 80 : 0, 200) << "\n  mpi:  " << other.substr(at > 80 ? at - 80 : 0, 200);
  }
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) n++;
  return n;
}

}  // namespace

TEST(MpiPrepare, ShardedCorpusMatchesOneProcess) {
  LATHE_REQUIRE_MPI();
  lathe::test::TempDir t;
  make_corpus(t / "in");
  // The planted pairs really straddle the ranks: a, b on rank 0; c, d, e on rank 1.
  std::vector<uint64_t> sizes;
  for (const char* n : {"a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl", "e.md"}) sizes.push_back(fs::file_size(t / "in/" + std::string(n)));
  ASSERT_EQ(lathe::data::shard_files(sizes, 2), (std::vector<int>{0, 0, 1, 1, 1}));
  write(t / "eval.jsonl", json{{"prompt", "What is the travel budget for a trip to Busan in winter?"}}.dump() + "\n");
  std::string model_yaml;
  if (lathe::test::has_fixture("models/stories260K-hf/tokenizer.json"))
    model_yaml = "  format: {model: " + lathe::test::fixture_path("models/stories260K-hf") + ", chat_template: chatml, max_seq_length: 256}\n";
  write(t / "data.yaml", "data:\n  inputs: [in/]\n  pii: {policy: redact}\n  dedup: {exact: true, near: true, eval_prompts: [eval.jsonl]}\n"
                         "  split: {ratios: [0.8, 0.1, 0.1], seed: 7}\n" + model_yaml);
  std::string out;
  ASSERT_EQ(run_lathe("data prepare --config " + t / "data.yaml" + " --output " + t / "one", &out, true), 0) << out;
  ASSERT_EQ(run_mpi(2, "data prepare --config " + t / "data.yaml" + " --output " + t / "two", &out), 0) << out;
  EXPECT_EQ(count_of(out, "kept "), 1u) << "only rank 0 prints the summary:\n" << out;
  expect_same_tree(t / "one", t / "two");
  // Pieces of at most 2000 bytes: every record of rank 1 travels in a round of its own or nearly.
  ASSERT_EQ(run_mpi(2, "data prepare --config " + t / "data.yaml" + " --output " + t / "three", &out, 300,
                          "-x LATHE_DATA_GATHER_BYTES=2000"),
            0)
      << out;
  expect_same_tree(t / "one", t / "three");

  // What was planted was found, across the ranks, and the counts reconcile.
  json rep = json::parse(lathe::read_file(t / "two/report.json"));
  EXPECT_TRUE(rep["totals"]["reconciles"].get<bool>()) << rep["stages"].dump(1);
  std::map<std::string, json> st;
  for (auto& s : rep["stages"]) st[s["stage"]] = s;
  EXPECT_EQ(st["collect"]["dropped"]["malformed JSON"].get<int>(), 7) << st["collect"].dump(1);
  EXPECT_EQ(st["collect"]["examples"]["malformed JSON"].size(), 5u);
  EXPECT_NE(st["collect"]["examples"]["malformed JSON"][4].get<std::string>().find("d.jsonl"), std::string::npos);
  EXPECT_EQ(st["dedup"]["dropped"]["exact duplicate"].get<int>(), 1) << st["dedup"].dump(1);
  EXPECT_EQ(st["dedup"]["dropped"]["near duplicate"].get<int>(), 1) << st["dedup"].dump(1);
  EXPECT_EQ(st["dedup"]["dropped"]["contaminated (eval prompt)"].get<int>(), 1) << st["dedup"].dump(1);
  EXPECT_EQ(st["map"]["dropped"].size(), 1u) << st["map"].dump(1);
  EXPECT_GE(st["clean"]["in"].get<int>(), st["clean"]["out"].get<int>() + 1);
  EXPECT_EQ(rep["pii"]["hits"]["EMAIL"].get<int>(), 2);
  EXPECT_EQ(rep["pii"]["hits"]["PHONE"].get<int>(), 2);
  EXPECT_EQ(rep["sources"]["read"].get<int>(), 5);
}

TEST(MpiPrepare, ExampleDataConfigMatchesOneProcess) {
  LATHE_REQUIRE_MPI();
  lathe::test::TempDir t;
  const std::string cfg = lathe::test::source_path("examples/acme-policy-qa/project.yaml");
  std::string model;
  if (lathe::test::has_fixture("models/stories260K-hf/tokenizer.json"))
    model = " --model " + lathe::test::fixture_path("models/stories260K-hf") + " --chat-template chatml";
  std::string out;
  ASSERT_EQ(run_lathe("data prepare --config " + cfg + model + " --output " + t / "one", &out, true), 0) << out;
  ASSERT_EQ(run_mpi(2, "data prepare --config " + cfg + model + " --output " + t / "two", &out), 0) << out;
  expect_same_tree(t / "one", t / "two");
  json rep = json::parse(lathe::read_file(t / "two/report.json"));
  EXPECT_TRUE(rep["totals"]["reconciles"].get<bool>());
  EXPECT_GE(rep["sources"]["read"].get<int>(), 2);
}

TEST(MpiPrepare, FailingRankStopsTheJobNamingRankAndFile) {
  LATHE_REQUIRE_MPI();
  lathe::test::TempDir t;
  fs::create_directories(t / "in");
  std::string good, bad;
  for (int i = 0; i < 30; i++) {
    good += alpaca("Question a" + std::to_string(i), words(uint64_t(i), 40));
    bad += alpaca("Question b" + std::to_string(i), words(uint64_t(i) + 99, 40));
    if (i == 11) bad += "{\"instruction\": \"cut off\n";  // line 13 of b.jsonl
  }
  write(t / "in/a.jsonl", good);
  write(t / "in/b.jsonl", bad);
  ASSERT_EQ(lathe::data::shard_files({good.size(), bad.size()}, 2), (std::vector<int>{0, 1}));
  std::string out;
  const std::string args = "data prepare --strict --input " + t / "in" + " --output " + t / "ds";
  EXPECT_NE(run_lathe(args, &out, true), 0);
  EXPECT_NE(out.find("b.jsonl:13"), std::string::npos) << out;
  const int rc = run_mpi(2, args, &out, 120);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "the job hung until the timeout:\n" << out;
  EXPECT_NE(out.find("rank 1/2"), std::string::npos) << out;
  EXPECT_NE(out.find("b.jsonl:13"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(t / "ds/manifest.json"));
}

// Preference pairs spread over the ranks: same directory; and SFT records on rank 0 with preference
// pairs on rank 1 stop the job with the error one process gives.
TEST(MpiPrepare, PreferencePairsAndMixedKinds) {
  LATHE_REQUIRE_MPI();
  lathe::test::TempDir t;
  fs::create_directories(t / "pref");
  std::string p1, p2;
  for (int i = 0; i < 20; i++) {
    const std::string prompt = "Pref question " + std::to_string(i) + ": " + words(uint64_t(i) + 7000, 10);
    (i < 10 ? p1 : p2) += json{{"prompt", prompt}, {"chosen", words(uint64_t(i) + 8000, 30)}, {"rejected", words(uint64_t(i) + 9000, 30)}}.dump() + "\n";
  }
  // The same prompt with a second pair on the other rank (records sharing a prompt stay in one split).
  p2 += json{{"prompt", "Pref question 3: " + words(7003, 10)}, {"chosen", "Another good answer, mail park@acme-korea.com."},
             {"rejected", "No."}}.dump() + "\n";
  write(t / "pref/a.jsonl", p1);
  write(t / "pref/b.jsonl", p2);
  std::string out;
  const std::string args = " --input " + t / "pref" + " --split 0.7,0.3,0 --pii redact";
  ASSERT_EQ(run_lathe("data prepare" + args + " --output " + t / "one", &out, true), 0) << out;
  ASSERT_EQ(run_mpi(2, "data prepare" + args + " --output " + t / "two", &out), 0) << out;
  expect_same_tree(t / "one", t / "two");

  fs::create_directories(t / "mixed");
  write(t / "mixed/a.jsonl", p1 + p1);  // twice b's size: a alone on rank 0
  std::string sft;
  for (int i = 0; i < 10; i++) sft += alpaca("Q" + std::to_string(i), words(uint64_t(i) + 100, 30));
  write(t / "mixed/b.jsonl", sft);
  ASSERT_EQ(lathe::data::shard_files({fs::file_size(t / "mixed/a.jsonl"), fs::file_size(t / "mixed/b.jsonl")}, 2),
            (std::vector<int>{0, 1}));
  std::string one;
  EXPECT_NE(run_lathe("data prepare --input " + t / "mixed" + " --output " + t / "m1", &one, true), 0);
  const size_t at = one.find("error: ");
  ASSERT_NE(at, std::string::npos) << one;
  const std::string message = one.substr(at + 7, one.find('\n', at) - at - 7);
  EXPECT_NE(message.find("among records of another kind"), std::string::npos) << message;
  const int rc = run_mpi(2, "data prepare --input " + t / "mixed" + " --output " + t / "m2", &out, 120);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << out;
  EXPECT_NE(out.find("rank 0/2: error: " + message), std::string::npos) << "want: " << message << "\n" << out;
  EXPECT_FALSE(fs::exists(t / "m2/manifest.json"));
}
