// Tokenizers exact to the Hugging Face reference: tokenizer.json (byte-level BPE as in GPT-2 / Llama 3 /
// Qwen, SentencePiece-style BPE with byte fallback as in Llama 2 / Mistral, Unigram as in XLM-R / T5 with
// SentencePiece's precompiled charsmap, WordPiece as in BERT) and GGUF vocabularies (tokenizer.ggml.model
// gpt2 and llama). The pipeline is HF's: added tokens are split out of the raw text, the rest is
// normalized, pre-tokenized into words, and each word goes through the model (BPE, Unigram, WordPiece);
// the post-processor adds special tokens when asked. Decoding runs the decoder chain over token strings.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::tok {
struct Pipeline;
}

namespace lathe {

// Where added tokens matched in the raw text split an encoded text (Tokenizer::encode with marks): for
// each such token, the byte its content ends at, the byte the next segment starts at (past whitespace an
// rstrip token swallows) and how many tokens of the encoding come up to and including it. Segments
// between these tokens are encoded independently of each other, so a prefix of the text shares the
// encoding up to the last mark inside it and only the segment after that needs encoding.
struct EncodeMarks {
  struct Mark {
    size_t content_end, resume, tokens;
  };
  std::vector<Mark> marks;
  // false: the text is not valid UTF-8, or the tokenizer has added tokens the shortcut does not model
  // (single_word, U+FFFD or invalid UTF-8 in the content); tokens_reproduced then re-encodes the prefix.
  bool exact = false;
};

class Tokenizer {
 public:
  // path: a tokenizer.json file, a model directory (tokenizer.json + tokenizer_config.json + optional
  // generation_config.json) or a .gguf file. Throws lathe::Error("[tokenizer] PATH: ...").
  static std::unique_ptr<Tokenizer> load(const std::string& path);
  // Parses tokenizer.json text (no side files); `origin` names it in error messages.
  static std::unique_ptr<Tokenizer> from_json(std::string_view json, const std::string& origin = "<memory>");
  ~Tokenizer();

  // Invalid UTF-8 in `text` is replaced with U+FFFD; the count is in *replacements (or
  // last_encode_replacements() for the calling thread).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens, size_t* replacements) const;
  // add_special_tokens = false, and the marks tokens_reproduced needs.
  std::vector<int32_t> encode(std::string_view text, EncodeMarks& marks) const;
  // How many leading tokens of full = encode(text) the encoding of text[0, b) reproduces: the length of
  // the common prefix of encode(text.substr(0, b)) and full (so a token straddling b is not counted).
  // With the marks of that encode only the segment b falls in is encoded, not text[0, b); the result
  // is the same (tests/tokenizer/tokens_reproduced_unit.cpp checks it against the definition).
  size_t tokens_reproduced(std::string_view text, size_t b, std::span<const int32_t> full,
                           const EncodeMarks& marks) const;
  // The definition itself: encodes text[0, b) (the reference, and the fallback).
  size_t tokens_reproduced(std::string_view text, size_t b, std::span<const int32_t> full) const;
  // Encodes many texts in parallel (OpenMP); the result order follows the input.
  std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string> texts,
                                                 bool add_special_tokens = false) const;
  // Number of invalid UTF-8 sequences replaced by the last encode() on this thread.
  static size_t last_encode_replacements();

  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  std::string id_to_token(int32_t id) const;   // "" when out of range
  int32_t token_to_id(std::string_view token) const;  // -1 if absent
  int vocab_size() const;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  std::vector<int32_t> eos_ids() const;  // eos token plus generation_config eos ids, no duplicates
  bool is_special(int32_t id) const;
  const std::string& chat_template() const { return chat_template_; }
  std::string bos_token() const { return id_to_token(bos_id_); }
  std::string eos_token() const { return id_to_token(eos_id_); }

  const tok::Pipeline& pipeline() const { return *p_; }

 private:
  Tokenizer();
  friend struct TokenizerLoader;
  std::unique_ptr<tok::Pipeline> p_;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, unk_id_ = -1;
  std::vector<int32_t> extra_eos_;
  std::string chat_template_;
};

// Incremental detokenization for streaming output: push() returns the text that became complete,
// holding back partial UTF-8 (a Hangul syllable or an emoji split over byte-fallback tokens) and
// decoder effects that depend on neighbours (the leading-space strip of SentencePiece).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = false)
      : tok_(tok), skip_special_(skip_special_tokens) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is still held back (incomplete bytes become U+FFFD)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  // HF's DecodeStream: ids_ holds a few context ids plus the pending ones; prefix_text_ is the decode
  // of ids_[0, prefix_index_) (already emitted), new text is what decode(ids_) adds beyond it.
  std::vector<int32_t> ids_;
  std::string prefix_text_;
  size_t prefix_index_ = 0;
};

}  // namespace lathe
