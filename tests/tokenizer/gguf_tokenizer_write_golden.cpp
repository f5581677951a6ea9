// Tokenizers written as GGUF vocabularies (tokenizer.ggml.*) and read back by lathe's GGUF loader
// encode like the tokenizer.json they came from, keep BOS/EOS and the chat template; the
// SentencePiece-style stories260K vocabulary matches the one llama.cpp's converter wrote.
#include <gtest/gtest.h>

#include "lathe/core/error.h"
#include "lathe/formats/gguf.h"
#include "lathe/tokenizer/gguf_tokenizer_write.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

using namespace lathe;

namespace {

// Different texts from the exporter's own probes.
const char* kTexts[] = {
    "The quick brown fox jumps over the lazy dog.",
    "She said: \"I'd rather not\" -- and left at 10:45pm.",
    "def f(x):\n    return x ** 2  # square\n",
    "Grüße aus Köln, 東京から、서울에서 🙂",
    "   multiple   spaces\n\n\nand newlines   ",
    "<|im_start|>user\nhi<|im_end|>",
};

std::string export_vocab(const std::string& dir, int vocab_size, const test::TempDir& tmp) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  add_tokenizer_to_gguf(dir, vocab_size, w);
  w.write(tmp / "vocab.gguf");
  return tmp / "vocab.gguf";
}

void expect_same(const std::string& rel, int vocab_size, const char* want_model) {
  std::string dir = test::fixture_path(rel);
  test::TempDir tmp;
  auto hf = Tokenizer::load(dir);
  std::string path = export_vocab(dir, vocab_size, tmp);
  GgufFile g = GgufFile::open(path);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model", ""), want_model);
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens").size(), size_t(vocab_size));
  auto gg = Tokenizer::load(path);
  for (const char* s : kTexts) {
    EXPECT_EQ(hf->encode(s, false), gg->encode(s, false)) << rel << ": " << s;
    EXPECT_EQ(hf->encode(s, true), gg->encode(s, true)) << rel << ": " << s;
    auto ids = hf->encode(s, false);
    EXPECT_EQ(hf->decode(ids), gg->decode(ids)) << rel << ": " << s;
  }
  EXPECT_EQ(hf->bos_id(), gg->bos_id());
  EXPECT_EQ(hf->eos_id(), gg->eos_id());
  EXPECT_EQ(hf->chat_template(), gg->chat_template());
  EXPECT_EQ(hf->eos_ids(), gg->eos_ids());
}

}  // namespace

TEST(GgufTokenizerWrite, Gpt2) {
  LATHE_REQUIRE_FIXTURE("tokenizers/gpt2/tokenizer.json");
  expect_same("tokenizers/gpt2", 50304, "gpt2");  // padded to a multiple of 64 like many models
}

TEST(GgufTokenizerWrite, Llama3KeepsChatTemplate) {
  LATHE_REQUIRE_FIXTURE("tokenizers/llama3/tokenizer.json");
  expect_same("tokenizers/llama3", 128256, "gpt2");
  EXPECT_FALSE(Tokenizer::load(test::fixture_path("tokenizers/llama3"))->chat_template().empty());
}

TEST(GgufTokenizerWrite, Qwen3) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3/tokenizer.json");
  expect_same("tokenizers/qwen3", 151936, "gpt2");
}

TEST(GgufTokenizerWrite, MistralSentencePiece) {
  LATHE_REQUIRE_FIXTURE("tokenizers/mistral-v0.1/tokenizer.json");
  expect_same("tokenizers/mistral-v0.1", 32000, "llama");
}

TEST(GgufTokenizerWrite, StoriesMatchesLlamaCppVocabulary) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  LATHE_REQUIRE_FIXTURE("models/gguf/stories260K.gguf");
  expect_same("models/stories260K-hf", 512, "llama");
  test::TempDir tmp;
  GgufFile ours = GgufFile::open(export_vocab(test::fixture_path("models/stories260K-hf"), 512, tmp));
  GgufFile ref = GgufFile::open(test::fixture_path("models/gguf/stories260K.gguf"));
  EXPECT_EQ(ours.get_string_array("tokenizer.ggml.tokens"), ref.get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(ours.get_int_array("tokenizer.ggml.token_type"), ref.get_int_array("tokenizer.ggml.token_type"));
  for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"})
    EXPECT_EQ(ours.get_int(k, -1), ref.get_int(k, -2)) << k;
  // The reference's own encodings (its real SentencePiece scores) equal ours.
  auto a = Tokenizer::load(test::fixture_path("models/gguf/stories260K.gguf"));
  auto b = Tokenizer::load(tmp / "vocab.gguf");
  for (const char* s : kTexts) EXPECT_EQ(a->encode(s, true), b->encode(s, true)) << s;
}

TEST(GgufTokenizerWrite, RefusesSmallerModelVocab) {
  LATHE_REQUIRE_FIXTURE("tokenizers/gpt2/tokenizer.json");
  GgufWriter w;
  EXPECT_THROW(add_tokenizer_to_gguf(test::fixture_path("tokenizers/gpt2"), 1000, w), Error);
}
