// Training a GPT-2-style byte-level BPE tokenizer from text, written as a Hugging Face tokenizer.json
// that lathe's loader and HF `tokenizers` both read. Text is pre-tokenized exactly as the written
// tokenizer will pre-tokenize it (Qwen2's split regex, then ByteLevel without prefix space), words are
// counted, and the most frequent adjacent pair is merged until the vocabulary is full.
// Tie-break (deterministic): highest count, then the smaller first token string (bytewise), then the
// smaller second token string.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lathe::tok {

struct BpeTrainOptions {
  int vocab_size = 4000;        // total ids: 256 bytes + merges + special tokens
  uint64_t min_frequency = 2;   // a pair seen fewer times than this is never merged
  std::vector<std::string> special_tokens;  // ids after the merged tokens, in this order
};

struct BpeTrainResult {
  std::vector<std::string> vocab;  // model vocabulary, id -> ByteLevel-mapped token (256 bytes first)
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<std::string> special_tokens;  // ids vocab.size() + i
  uint64_t distinct_words = 0;
  bool pairs_exhausted = false;  // stopped early: no pair left with count >= min_frequency
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainOptions opt);
  // Counts the words of `text` (special-token strings in it are cut out first, as at encode time;
  // invalid UTF-8 becomes U+FFFD as in Tokenizer::encode).
  void add_text(std::string_view text);
  BpeTrainResult train() const;

 private:
  BpeTrainOptions opt_;
  std::unordered_map<std::string, uint64_t> words_;  // ByteLevel-mapped word -> count
};

// The pre_tokenizer object written to tokenizer.json and used for training (JSON text).
std::string bpe_pre_tokenizer_json();
// tokenizer.json text for a training result (deterministic bytes).
std::string bpe_tokenizer_json(const BpeTrainResult& r);
// Writes tokenizer.json, tokenizer_config.json and generation_config.json into `dir` (created).
// chat_template: "" for none, or a builtin name ("chatml"). eos is <|im_end|> when a chat template is
// given and present among the specials, else <|endoftext|> when present; both go to eos_token_id.
void write_trained_tokenizer(const std::string& dir, const BpeTrainResult& r, const std::string& chat_template);

}  // namespace lathe::tok
