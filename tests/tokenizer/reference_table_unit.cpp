// The project's own text table (tests/data/tokenizer/cases.jsonl: Korean, emoji/ZWJ, whitespace, code,
// digits, special tokens inside text) against ids from the reference @huggingface/tokenizers, stored in
// expected_<name>.jsonl. Regenerate with tools/tokenizer_ref/gen_expected.mjs (see its README).
// The Unigram and WordPiece tokenizers (tools/tokenizer_ref/make_unigram_wordpiece.py) are checked on that
// table plus cases_retrieval.jsonl (edge cases) against the Rust library itself (npm `tokenizers`).
#include <fstream>
#include <nlohmann/json.hpp>

#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace {

using json = nlohmann::json;

struct Target {
  const char* name;
  const char* dir;
  bool fixture;  // under ../shared/fixtures (skipped when absent) or in the repository
};

void check_table(const Target& t) {
  std::string dir = t.fixture ? lathe::test::fixture_path(t.dir) : lathe::test::source_path(t.dir);
  if (t.fixture) LATHE_REQUIRE_FIXTURE(std::string(t.dir) + "/tokenizer.json");
  auto tok = lathe::Tokenizer::load(dir);
  std::ifstream f(lathe::test::source_path(std::string("tests/data/tokenizer/expected_") + t.name + ".jsonl"));
  ASSERT_TRUE(f.good()) << "expected file missing; run tools/tokenizer_ref/gen_expected.mjs";
  std::string line;
  int n = 0, pass = 0;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    json c = json::parse(line);
    std::string text = c["text"];
    auto ids = c["ids"].get<std::vector<int32_t>>();
    auto ids_special = c["ids_special"].get<std::vector<int32_t>>();
    n++;
    auto got = tok->encode(text, false);
    auto got_special = tok->encode(text, true);
    std::string decoded = tok->decode(ids);
    bool ok = got == ids && got_special == ids_special && decoded == c["decoded"].get<std::string>();
    pass += ok;
    EXPECT_EQ(got, ids) << t.name << " case " << c["name"] << " (regenerate: tools/tokenizer_ref/gen_expected.mjs)";
    EXPECT_EQ(got_special, ids_special) << t.name << " case " << c["name"] << " with special tokens";
    EXPECT_EQ(decoded, c["decoded"].get<std::string>()) << t.name << " case " << c["name"] << " decode";
  }
  EXPECT_GT(n, 20);
  std::printf("[table %s] %d/%d cases match\n", t.name, pass, n);
}

}  // namespace

TEST(ReferenceTable, TinyByteLevel) { check_table({"tiny_bytelevel", "tests/data/tokenizer/tiny_bytelevel", false}); }
TEST(ReferenceTable, TinySpm) { check_table({"tiny_spm", "tests/data/tokenizer/tiny_spm", false}); }
TEST(ReferenceTable, Gpt2) { check_table({"gpt2", "tokenizers/gpt2", true}); }
TEST(ReferenceTable, Llama3) { check_table({"llama3", "tokenizers/llama3", true}); }
TEST(ReferenceTable, Qwen3) { check_table({"qwen3", "tokenizers/qwen3", true}); }
TEST(ReferenceTable, MistralV01) { check_table({"mistral-v0.1", "tokenizers/mistral-v0.1", true}); }
TEST(ReferenceTable, Stories260K) { check_table({"stories260K", "models/stories260K-hf", true}); }
TEST(ReferenceTable, TinyUnigram) { check_table({"tiny_unigram", "tests/data/tokenizer/tiny_unigram", false}); }
TEST(ReferenceTable, TinyUnigramByteFallback) {
  check_table({"tiny_unigram_bf", "tests/data/tokenizer/tiny_unigram_bf", false});
}
TEST(ReferenceTable, TinyWordPiece) { check_table({"tiny_wordpiece", "tests/data/tokenizer/tiny_wordpiece", false}); }
TEST(ReferenceTable, TinyWordPieceCased) {
  check_table({"tiny_wordpiece_cased", "tests/data/tokenizer/tiny_wordpiece_cased", false});
}
