// BpeTrainer: deterministic output, lathe's loader reads it, round trips, frequent words become one
// token, merge count, special tokens split out. Expectations follow from the BPE definition, not from
// earlier runs of the trainer.
#include <gtest/gtest.h>

#include <algorithm>

#include "lathe/core/file_io.h"
#include "lathe/tokenizer/bpe_trainer.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

std::string corpus() {
  std::string s;
  const char* lines[] = {"안녕하세요 반갑습니다. The quick brown fox jumps over the lazy dog.\n",
                         "한국어 문장을 학습합니다. Training a tokenizer is fun!\n",
                         "오늘은 날씨가 좋습니다. It's 2024, isn't it?\n"};
  for (int i = 0; i < 40; i++) s += lines[i % 3];
  return s;
}

tok::BpeTrainResult train(int vocab, const std::string& text) {
  tok::BpeTrainOptions o;
  o.vocab_size = vocab;
  o.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  tok::BpeTrainer t(o);
  t.add_text(text);
  return t.train();
}

TEST(BpeTrainer, DeterministicBytes) {
  std::string a = tok::bpe_tokenizer_json(train(400, corpus()));
  std::string b = tok::bpe_tokenizer_json(train(400, corpus()));
  EXPECT_EQ(a, b);
}

TEST(BpeTrainer, MergeCountAndLoaderRoundTrip) {
  // 300: well below the merges this three-line corpus allows, so the size is reached exactly.
  auto r = train(300, corpus());
  ASSERT_FALSE(r.pairs_exhausted);
  EXPECT_EQ(r.vocab.size() + r.special_tokens.size(), 300u);
  EXPECT_GE(r.merges.size(), 300u - 256 - 3);  // more only when a merge re-creates an existing token
  test::TempDir d;
  tok::write_trained_tokenizer(d.path, r, "chatml");
  auto tk = Tokenizer::load(d.path);
  EXPECT_EQ(tk->vocab_size(), 300);
  EXPECT_EQ(tk->eos_token(), "<|im_end|>");
  EXPECT_FALSE(tk->chat_template().empty());
  for (std::string s : {std::string("안녕하세요 반갑습니다."), std::string("처음 보는 글자: 뷁 똠방각하 🦊🎉 ünïcödé\t\n  x"),
                        std::string("123456 + 7 = ?"), corpus()}) {
    auto ids = tk->encode(s);
    EXPECT_EQ(tk->decode(ids), s);
  }
  // Frequent words of the corpus become single tokens (the leading space is part of the word).
  // With room for every merge (training stops when pairs run out), each word seen >= 2 times ends
  // as one token.
  auto full = train(5000, corpus());
  EXPECT_TRUE(full.pairs_exhausted);
  test::TempDir d2;
  tok::write_trained_tokenizer(d2.path, full, "chatml");
  auto tf = Tokenizer::load(d2.path);
  for (const char* w : {" 반갑습니다", " quick", "안녕하세요"}) EXPECT_EQ(tf->encode(w).size(), 1u) << w;
  // Special tokens are split out as one id each.
  auto ids = tk->encode("<|im_start|>user\n안녕<|im_end|><|endoftext|>");
  EXPECT_EQ(ids.front(), tk->token_to_id("<|im_start|>"));
  EXPECT_EQ(ids[ids.size() - 2], tk->token_to_id("<|im_end|>"));
  EXPECT_EQ(ids.back(), tk->token_to_id("<|endoftext|>"));
  EXPECT_TRUE(tk->is_special(ids.back()));
  auto eos = tk->eos_ids();
  EXPECT_NE(std::find(eos.begin(), eos.end(), tk->token_to_id("<|endoftext|>")), eos.end());
}

TEST(BpeTrainer, PairsRunOutAndMinFrequency) {
  auto r = train(5000, "abc abc abc xyz");
  EXPECT_TRUE(r.pairs_exhausted);
  // Words " abc" x2 and "abc" x1: pairs seen >= 2 times are a-b, b-c, Ġ-a...; xyz pairs appear once.
  for (auto& [a, b] : r.merges) EXPECT_EQ(std::string(a + b).find('x'), std::string::npos);
  EXPECT_LT(r.vocab.size(), 5000u);
}

TEST(BpeTrainer, HangulShrinks) {
  auto r = train(600, corpus());
  test::TempDir d;
  tok::write_trained_tokenizer(d.path, r, "");
  auto tk = Tokenizer::load(d.path);
  std::string s = "한국어 문장을 학습합니다.";
  EXPECT_LT(tk->encode(s).size(), 10u);  // 12 syllables = 36 bytes before merging
  EXPECT_EQ(tk->eos_token(), "<|endoftext|>");
}

}  // namespace
}  // namespace lathe
