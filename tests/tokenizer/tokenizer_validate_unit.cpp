// Regression tests for hostile tokenizer files (security review item 14, and item 5 for ids): empty
// vocabularies, duplicate or out-of-range ids, 64-bit ids that used to be truncated, and invalid
// pre-tokenizer regexes are errors naming the file they came from.
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using ::lathe::test::error_of;

// A small valid byte-less BPE tokenizer; tests replace one part of it.
nlohmann::json base() {
  return nlohmann::json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<s>": 3, "</s>": 4}, "merges": ["a b"]},
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}, {"id": 4, "content": "</s>", "special": true}]
  })");
}

struct Written {
  test::TempDir dir;
  std::string path;
};

// Writes tokenizer.json (text, so any literal can be spliced in) into a fresh directory.
std::unique_ptr<Written> write(const std::string& text) {
  auto w = std::make_unique<Written>();
  w->path = w->dir / "tokenizer.json";
  std::ofstream(w->path) << text;
  return w;
}

std::string load_error(const std::string& text) {
  auto w = write(text);
  std::string e = error_of([&] { Tokenizer::load(w->path); });
  EXPECT_NE(e.find(w->path), std::string::npos) << "error does not name the file: " << e;
  return e;
}

TEST(TokenizerValidate, BaseLoads) {
  auto w = write(base().dump());
  auto t = Tokenizer::load(w->path);
  EXPECT_EQ(t->vocab_size(), 5);
  EXPECT_EQ(t->encode("ab", false), std::vector<int32_t>{2});
}

TEST(TokenizerValidate, EmptyVocabulary) {
  nlohmann::json j = base();
  j["model"]["vocab"] = nlohmann::json::object();
  j["model"]["merges"] = nlohmann::json::array();
  j["added_tokens"] = nlohmann::json::array();
  EXPECT_NE(load_error(j.dump()).find("model.vocab is empty"), std::string::npos);
}

TEST(TokenizerValidate, DuplicateIdsInVocab) {
  nlohmann::json j = base();
  j["model"]["vocab"]["zz"] = 1;  // "b" has 1 already
  std::string e = load_error(j.dump());
  EXPECT_NE(e.find("id 1 is used by both"), std::string::npos) << e;
}

TEST(TokenizerValidate, ConflictingAddedTokenIds) {
  nlohmann::json j = base();
  j["added_tokens"].push_back({{"id", 3}, {"content", "<other>"}, {"special", true}});
  std::string e = load_error(j.dump());
  EXPECT_NE(e.find("id 3 is used by both '<s>' and '<other>'"), std::string::npos) << e;
  j = base();
  j["added_tokens"][0]["id"] = 0;  // "<s>" claims the id of "a"
  e = load_error(j.dump());
  EXPECT_NE(e.find("model.vocab has 'a'"), std::string::npos) << e;
}

TEST(TokenizerValidate, SixtyFourBitIdsAreNotTruncated) {
  // 5000000000 mod 2^32 = 705032704: the old reader reported (and could use) that.
  std::string s = base().dump();
  std::string v = s;
  v.replace(v.find("\"ab\":2"), 6, "\"ab\":5000000000");
  std::string e = load_error(v);
  EXPECT_NE(e.find("5000000000"), std::string::npos) << e;
  EXPECT_EQ(e.find("705032704"), std::string::npos) << e;
  std::string a = s;
  a.replace(a.find("\"id\":4"), 6, "\"id\":5000000000");
  e = load_error(a);
  EXPECT_NE(e.find("5000000000"), std::string::npos) << e;
  std::string f = s;
  f.replace(f.find("\"ab\":2"), 6, "\"ab\":2.5");
  e = load_error(f);
  EXPECT_NE(e.find("not an integer"), std::string::npos) << e;
}

TEST(TokenizerValidate, PostProcessorIdsOutsideTheVocabulary) {
  nlohmann::json j = base();
  j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [99]}}})");
  std::string e = load_error(j.dump());
  EXPECT_NE(e.find("post-processor prefix id 99 is outside the vocabulary"), std::string::npos) << e;
}

TEST(TokenizerValidate, InvalidRegexNamesTheFile) {
  nlohmann::json j = base();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  std::string e = load_error(j.dump());
  EXPECT_NE(e.find("pre_tokenizer Split: regex '(unclosed'"), std::string::npos) << e;
}

TEST(TokenizerValidate, GenerationConfigIdsAreCheckedAndNamed) {
  auto w = write(base().dump());
  std::string gen = w->dir / "generation_config.json";
  std::ofstream(gen) << R"({"eos_token_id": [4, 5000000000]})";
  std::string e = error_of([&] { Tokenizer::load(w->path); });
  EXPECT_NE(e.find(gen), std::string::npos) << e;
  EXPECT_NE(e.find("eos_token_id[1]: id 5000000000"), std::string::npos) << e;
  std::ofstream(gen) << R"({"eos_token_id": 77})";
  e = error_of([&] { Tokenizer::load(w->path); });
  EXPECT_NE(e.find(gen), std::string::npos) << e;
  EXPECT_NE(e.find("eos id 77 is outside the vocabulary"), std::string::npos) << e;
  std::ofstream(gen) << R"({"eos_token_id": 4})";
  EXPECT_EQ(Tokenizer::load(w->path)->eos_ids(), std::vector<int32_t>{4});
}

}  // namespace
}  // namespace lathe
