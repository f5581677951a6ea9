// Tokenizer::tokens_reproduced with marks (encode only the segment a byte boundary falls in) against its
// definition (the common prefix of encode(text[0, b)) and encode(text)) on random texts built from each
// tokenizer's added tokens, pieces of them, whitespace runs, Korean, emoji and combining marks, at every
// byte boundary: inside multi-byte characters, inside added tokens, at whitespace runs and at the ends.
// Every fixture tokenizer (skipped when ../shared/fixtures is absent), the project's tiny ones, and
// variants of those with lstrip/rstrip/normalized/prefix-of-another added tokens and single_word (which
// must take the re-encoding fallback).
#include <random>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using json = nlohmann::json;

std::string own(const std::string& rel) { return test::source_path(rel); }

const std::vector<std::string>& common_pieces() {
  static const std::vector<std::string> p = {
      "Hello", " world", "  ", "   ", "\n", "\n\n", " \n ", "\t", "\r\n", "안녕하세요", " 한국어", "👨‍👩‍👧‍👦",
      "🎉", "e\xCC\x81", "\xC3\x85", "\xEF\xAC\x81", "123", "4567", "'s", "'ll", "don't", "[INST]", " [/INST]",
      "\xE2\x96\x81", "_", "!?", "...", "\xE3\x80\x80", "\xC2\xA0", "x", "A", "\xC3\x84\xC3\x96", "中文", "<", "|",
      ">", "<|", "assistant\n", "user", ":", "\xE2\x80\x8B", " ", "a", "the", " of"};
  return p;
}

// A random text: mostly common pieces, often an added token (whole, cut short, or with spaces around).
std::string random_text(std::mt19937& rng, const std::vector<std::string>& added) {
  std::string s;
  const int n = int(rng() % 24);
  for (int i = 0; i < n; i++) {
    const unsigned r = rng() % 10;
    if (!added.empty() && r < 3) {
      const std::string& t = added[rng() % added.size()];
      if (r == 0) s += t.substr(0, rng() % (t.size() + 1));  // a token cut short (maybe mid-character)
      else if (r == 1) s += " " + t + (rng() % 2 ? " " : "\n");
      else s += t;
    } else {
      s += common_pieces()[rng() % common_pieces().size()];
    }
  }
  return s;
}

struct Outcome {
  size_t pairs = 0, with_marks = 0, exact_texts = 0;
  bool exact = false;       // the tokenizer allows the shortcut at all
  bool raw_tokens = false;  // it has added tokens matched in the raw text (marks come from those alone)
};

// Every byte boundary of `texts` random texts; stops at the first mismatch with the text and boundary.
Outcome check(const Tokenizer& tok, int texts, uint32_t seed) {
  std::vector<std::string> added;
  for (const auto& t : tok.pipeline().added)
    if (!t.content.empty()) added.push_back(t.content);
  // Long vocabularies carry hundreds of reserved tokens: keep a sample so texts also hold plain text.
  std::mt19937 rng(seed);
  std::shuffle(added.begin(), added.end(), rng);
  if (added.size() > 24) added.resize(24);
  Outcome o;
  o.exact = tok.pipeline().marks_exact;
  for (const auto& t : tok.pipeline().added) o.raw_tokens = o.raw_tokens || (!t.normalized && !t.content.empty());
  for (int i = 0; i < texts; i++) {
    const std::string text = random_text(rng, added);
    EncodeMarks marks;
    const std::vector<int32_t> full = tok.encode(text, marks);
    EXPECT_EQ(full, tok.encode(text, false)) << "encode with marks differs on " << testing::PrintToString(text);
    if (marks.exact) o.exact_texts++;  // not the texts with a token cut short mid-character
    if (!marks.marks.empty()) o.with_marks++;
    for (size_t b = 0; b <= text.size(); b++) {
      const size_t want = tok.tokens_reproduced(text, b, full);
      const size_t got = tok.tokens_reproduced(text, b, full, marks);
      o.pairs++;
      if (got != want) {
        ADD_FAILURE() << "b = " << b << " of " << text.size() << ": " << got << " tokens, definition " << want
                      << "\n  text " << testing::PrintToString(text) << "\n  prefix "
                      << testing::PrintToString(text.substr(0, b));
        return o;
      }
    }
  }
  return o;
}

void check_file(const std::string& path, bool expect_exact, int texts = 150) {
  auto tok = Tokenizer::load(path);
  const Outcome o = check(*tok, texts, 1234);
  EXPECT_EQ(o.exact, expect_exact) << path;
  // GPT-2's one added token is `normalized`, matched inside segments: no marks, every boundary re-encodes.
  if (expect_exact && o.raw_tokens) {
    EXPECT_GT(o.with_marks, size_t(texts / 4)) << path << ": the texts hardly hold added tokens";
    EXPECT_GT(o.exact_texts, size_t(texts / 2)) << path;
  }
  std::printf("[tokens_reproduced] %s: %zu boundaries agree (%zu of %d texts split at added tokens, %zu valid UTF-8)\n",
              path.c_str(), o.pairs, o.with_marks, texts, o.exact_texts);
}

TEST(TokensReproduced, ProjectTokenizers) {
  for (const char* d : {"tiny_bytelevel", "tiny_spm", "tiny_unigram", "tiny_unigram_bf", "tiny_wordpiece",
                        "tiny_wordpiece_cased"})
    check_file(own(std::string("tests/data/tokenizer/") + d), true);
  check_file(own("tests/data/golden/encoder/bert/tokenizer.json"), true);
  check_file(own("tests/data/golden/encoder/xlm-roberta/tokenizer.json"), true);
}

// The tiny files with added tokens that swallow whitespace, match after normalization, or are a prefix of
// another token (a cut may leave the shorter one matching); single_word takes the fallback.
json with_tokens(const std::string& dir, bool single_word) {
  json j = json::parse(read_file(own("tests/data/tokenizer/" + dir + "/tokenizer.json")));
  int32_t next = 0;
  for (const auto& [k, v] : j["model"]["vocab"].items()) next = std::max(next, (v.is_number() ? v.get<int32_t>() : 0) + 1);
  if (j["model"]["vocab"].is_array()) next = int32_t(j["model"]["vocab"].size());
  for (const auto& a : j["added_tokens"]) next = std::max(next, a["id"].get<int32_t>() + 1);
  auto add = [&](const std::string& content, bool lstrip, bool rstrip, bool normalized, bool sw) {
    j["added_tokens"].push_back({{"id", next++}, {"content", content}, {"single_word", sw}, {"lstrip", lstrip},
                                 {"rstrip", rstrip}, {"normalized", normalized}, {"special", true}});
  };
  add("<R>", false, true, false, false);
  add("<L>", true, false, false, false);
  add("<LR>", true, true, false, false);
  add("<|im", false, false, false, false);        // prefix of <|im_start|> / <|im_end|> where present
  add("<|im_start|>user", false, false, false, false);  // and one that extends one
  add("한국", false, false, true, false);           // normalized: matched inside segments
  add("\xE2\x96\x81<N>", false, false, true, false);
  if (single_word) add("world", false, false, false, true);
  return j;
}

TEST(TokensReproduced, AddedTokenOptions) {
  for (const char* d : {"tiny_bytelevel", "tiny_spm", "tiny_unigram", "tiny_wordpiece"}) {
    for (bool sw : {false, true}) {
      auto tok = Tokenizer::from_json(with_tokens(d, sw).dump(), d);
      const Outcome o = check(*tok, 200, 77);
      EXPECT_EQ(o.exact, !sw) << d;
      std::printf("[tokens_reproduced] %s + added tokens%s: %zu boundaries agree\n", d, sw ? " (single_word)" : "",
                  o.pairs);
    }
  }
}

TEST(TokensReproduced, InvalidUtf8FallsBack) {
  auto tok = Tokenizer::load(own("tests/data/tokenizer/tiny_bytelevel"));
  const std::string text = "ab\xFF<|im_start|>cd\xE3\x80<|im_end|>";
  EncodeMarks marks;
  const auto full = tok->encode(text, marks);
  EXPECT_FALSE(marks.exact);
  for (size_t b = 0; b <= text.size(); b++)
    EXPECT_EQ(tok->tokens_reproduced(text, b, full, marks), tok->tokens_reproduced(text, b, full)) << b;
}

TEST(TokensReproduced, ChatMlBoundariesNeedNoPrefixEncode) {
  // What the record encoder asks: the turn of an assistant message begins after "<|im_start|>assistant\n"
  // and ends after "<|im_end|>".
  auto tok = Tokenizer::load(own("tests/data/tokenizer/tiny_bytelevel"));
  const std::string head = "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n";
  const std::string turn = "Hello world<|im_end|>";
  const std::string text = head + turn + "\n";
  EncodeMarks marks;
  const auto full = tok->encode(text, marks);
  ASSERT_TRUE(marks.exact);
  EXPECT_EQ(marks.marks.size(), 4u);
  const size_t a = tok->tokens_reproduced(text, head.size(), full, marks);
  const size_t z = tok->tokens_reproduced(text, head.size() + turn.size(), full, marks);
  EXPECT_EQ(a, tok->encode(head).size());
  EXPECT_EQ(z, tok->encode(head + turn).size());
  EXPECT_EQ(full[z - 1], tok->token_to_id("<|im_end|>"));
}

TEST(TokensReproduced, FixtureTokenizers) {
  LATHE_REQUIRE_FIXTURE("tokenizers");
  const std::vector<std::string> files = {
      "tokenizers/gpt2/tokenizer.json", "tokenizers/llama3/tokenizer.json", "tokenizers/qwen3/tokenizer.json",
      "tokenizers/mistral-v0.1/tokenizer.json", "tokenizers/llama2-sentencepiece.model", "models/stories260K-hf",
      "models/gguf/stories260K.gguf", "models/gguf/llama-2-tiny-random.gguf"};
  for (const auto& f : files) {
    if (!test::has_fixture(f)) {
      std::printf("[tokens_reproduced] %s absent, skipped\n", f.c_str());
      continue;
    }
    check_file(test::fixture_path(f), true, 100);
  }
}

TEST(TokensReproduced, FixtureGgufVocabularies) {
  LATHE_REQUIRE_FIXTURE("vocab-tests");
  for (const char* n : {"gpt-2", "llama-spm", "phi-3", "deepseek-coder", "deepseek-llm", "falcon", "mpt", "refact",
                        "starcoder", "gpt-neox"}) {
    const std::string f = std::string("vocab-tests/ggml-vocab-") + n + ".gguf";
    if (!test::has_fixture(f)) continue;
    auto tok = Tokenizer::load(test::fixture_path(f));
    const Outcome o = check(*tok, 60, 99);
    EXPECT_TRUE(o.exact) << n;
    std::printf("[tokens_reproduced] %s: %zu boundaries agree (%zu of 60 texts split at added tokens)\n", n, o.pairs,
                o.with_marks);
  }
}

}  // namespace
}  // namespace lathe
