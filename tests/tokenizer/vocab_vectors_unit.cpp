// llama.cpp's tokenizer conformance vectors (fixtures/vocab-tests): each NAME.gguf.inp holds texts
// separated by lines "__ggml_vocab_test__", NAME.gguf.out the HF ids per text (encode with
// add_special_tokens=False). Vocabularies come from ggml-vocab-NAME.gguf, or from a tokenizer.json
// fixture for llama-bpe (Llama 3) and qwen2 (Qwen3).
#include <fstream>
#include <sstream>

#include "lathe/core/file_io.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace {

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> read_vectors(const std::string& inp, const std::string& out) {
  std::string in = lathe::read_file(inp);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  while (pos < in.size()) {
    size_t k = in.find(sep, pos);
    if (k == std::string::npos) break;
    texts.push_back(in.substr(pos, k - pos));
    pos = k + sep.size();
  }
  std::ifstream f(out);
  std::vector<Case> cases;
  std::string line;
  for (auto& t : texts) {
    if (!std::getline(f, line)) break;
    Case c{t, {}};
    std::istringstream ls(line);
    int32_t id;
    while (ls >> id) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

void run_vectors(const std::string& name, const std::string& vocab_rel) {
  std::string base = "vocab-tests/ggml-vocab-" + name + ".gguf";
  LATHE_REQUIRE_FIXTURE(base + ".inp");
  LATHE_REQUIRE_FIXTURE(vocab_rel);
  auto tok = lathe::Tokenizer::load(lathe::test::fixture_path(vocab_rel));
  auto cases = read_vectors(lathe::test::fixture_path(base + ".inp"), lathe::test::fixture_path(base + ".out"));
  ASSERT_FALSE(cases.empty());
  int pass = 0;
  for (auto& c : cases) {
    auto got = tok->encode(c.text, false);
    if (got == c.ids) {
      pass++;
    } else {
      ADD_FAILURE() << name << ": text '" << c.text << "'\n  expected " << testing::PrintToString(c.ids)
                    << "\n  got      " << testing::PrintToString(got);
    }
  }
  std::printf("[vocab %s] %d/%zu texts match\n", name.c_str(), pass, cases.size());
}

}  // namespace

TEST(VocabVectors, LlamaBpeFromTokenizerJson) { run_vectors("llama-bpe", "tokenizers/llama3/tokenizer.json"); }
TEST(VocabVectors, Qwen2FromTokenizerJson) { run_vectors("qwen2", "tokenizers/qwen3/tokenizer.json"); }
TEST(VocabVectors, LlamaSpmFromSentencePieceModel) {
  run_vectors("llama-spm", "tokenizers/llama2-sentencepiece.model");  // the protobuf, not the GGUF
}

class GgufVocab : public testing::TestWithParam<const char*> {};
TEST_P(GgufVocab, MatchesHuggingFace) {
  std::string n = GetParam();
  run_vectors(n, "vocab-tests/ggml-vocab-" + n + ".gguf");
}
INSTANTIATE_TEST_SUITE_P(All, GgufVocab,
                         testing::Values("gpt-2", "llama-spm", "phi-3", "deepseek-coder", "deepseek-llm", "falcon",
                                         "mpt", "refact", "starcoder"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });
