// Internal pieces of the tokenizer pipeline (not part of the public API): normalizers, pre-tokenizers,
// models, post-processors and decoders, each a small class built from its tokenizer.json object.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lathe/core/utf8.h"
#include "lathe/tokenizer/tokenizer.h"

struct re_pattern_buffer;  // Oniguruma's regex_t

namespace lathe::tok {

// ---- Unicode classes (unicode.cpp); UTF-8 decoding lives in core/utf8.h ----
bool is_whitespace(uint32_t cp);   // Rust char::is_whitespace
bool is_numeric(uint32_t cp);      // Unicode N*
bool is_alnum_or_underscore(uint32_t cp);
// The classes of HF's BERT components, from the old Unicode tables of the Rust library (bert_tables.inc).
bool bert_is_removed(uint32_t cp);  // BertNormalizer clean_text drops it
bool bert_is_mark(uint32_t cp);     // nonspacing mark: strip_accents drops it after NFD
bool bert_is_punct(uint32_t cp);    // BertPreTokenizer / Punctuation split it off
bool bert_is_cjk(uint32_t cp);      // handle_chinese_chars puts spaces around it

// GPT-2's reversible byte <-> printable code point map.
struct ByteLevelMap {
  std::string byte_to_str[256];          // UTF-8 of the code point standing for each byte
  char byte_utf8[256][2];                // the same, unboxed for the hot loop (1 or 2 bytes)
  uint8_t byte_len[256];
  int16_t cp_to_byte[324];               // code point (< 324) -> byte, -1 if none
  static const ByteLevelMap& get();
};

// ---- Oniguruma regex, compiled once ----
class Regex {
 public:
  explicit Regex(const std::string& pattern);  // throws lathe::Error on a bad pattern
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // All non-empty, non-overlapping matches in s as (start, end) byte offsets. The common BPE split
  // patterns run on regex_fast.cpp's scanner, everything else on Oniguruma.
  void find_all(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const;
  // Always Oniguruma (the reference the scanner is tested against).
  void find_all_oniguruma(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const;
  bool has_fast_path() const { return fast_ >= 0; }
  int fast_index() const { return fast_; }  // regex_fast.cpp's pattern index, -1: none

 private:
  re_pattern_buffer* re_ = nullptr;
  int fast_ = -1;  // index of the pattern in regex_fast.cpp's table, -1: none
};

// regex_fast.cpp: the index of a pattern the scanner knows (-1: none), and its matches; false when
// it cannot decide (unknown index, text that is not valid UTF-8: the scan checks it as it decodes, so
// callers make no pass of their own), and the caller uses Oniguruma. nfc_quick: receives
// nfc_quick_yes(s), found on the way (the fused encode then needs no pass of its own). On false,
// out and *nfc_quick mean nothing.
int fast_regex_for(const std::string& pattern);
bool fast_find_all(int which, std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out,
                   bool* nfc_quick = nullptr);
// The same from the general scanner alone (every code point decoded first), without the byte-level
// path for ASCII and Hangul that fast_find_all tries first: for tests, which compare the two.
bool fast_find_all_general(int which, std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out,
                           bool* nfc_quick = nullptr);

// ---- Pre-tokenized text: spans over one buffer; id >= 0 marks an added token already resolved ----
struct Span {
  uint32_t off, len;
  int32_t id;
};
struct Pieces {
  std::string buf;
  std::vector<Span> spans;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
// Turns (range, is_match) runs covering a piece into the pieces HF keeps for `behavior`.
void split_apply_behavior(std::vector<std::pair<uint32_t, uint32_t>>& matches, uint32_t n, SplitBehavior b,
                          bool invert, std::vector<std::pair<uint32_t, uint32_t>>& out);

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
  // NFC alone: text nfc_quick_yes accepts is left as it is, so the fused encode skips the copy.
  virtual bool is_nfc() const { return false; }
};
// A code point NFC leaves alone whatever its neighbours (normalizers.cpp), and text made only of
// such code points, which is then already NFC.
bool nfc_safe_slow(uint32_t cp);
inline bool nfc_safe(uint32_t cp) { return cp < 0x300 || (cp >= 0xAC00 && cp <= 0xD7A3) || nfc_safe_slow(cp); }
bool nfc_quick_yes(std::string_view s);
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& origin);
std::unique_ptr<Normalizer> make_spm_normalizer(bool add_space_prefix);  // Prepend ▁ + Replace ' '

// normalizer Precompiled (precompiled.cpp): SentencePiece's charsmap, a double-array trie of rewrite rules.
std::unique_ptr<Normalizer> make_precompiled(const nlohmann::json& j, const std::string& origin);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(Pieces& p) const = 0;
  // True when this pre-tokenizer is a split by one of regex_fast.cpp's patterns (Isolated) followed by
  // the ByteLevel mapping, as GPT-2, Llama 3 and Qwen write it: *regex receives the pattern's index
  // (-1: no split, the whole piece is one word), *prefix_space whether a space is put before each
  // piece first (ByteLevel add_prefix_space with its own regex). Pipeline::encode then runs the fused
  // path, which gives the same pieces without building them (tokenizer.cpp).
  virtual bool fused_byte_level(int* regex, bool* prefix_space) const {
    (void)regex, (void)prefix_space;
    return false;
  }
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& origin);
// Sequence of Isolated regex splits followed by byte-level mapping (GGUF gpt2 vocabularies).
std::unique_ptr<PreTokenizer> make_regex_byte_level(const std::vector<std::string>& regexes);

// Hash for string-keyed maps looked up with string_view (no temporary std::string).
struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>>;

class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(std::string_view word, std::vector<int32_t>& out) const = 0;
  std::vector<std::string> vocab;  // id -> token
  TokenMap token_ids;
  int32_t find(std::string_view s) const {
    auto it = token_ids.find(s);
    return it == token_ids.end() ? -1 : it->second;
  }
  uint64_t instance = 0;  // unique per model, keys the per-thread word cache
};

struct BpeOptions {
  std::string unk_token, continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
};
// Largest token id a tokenizer file may use (model.vocab, added_tokens, post-processor and special
// ids). Real vocabularies stop near 262k; the cap keeps a hostile id from sizing the id -> token
// table (it is resized to the largest id).
inline constexpr int64_t kMaxTokenId = 4'000'000;

// vocab: id -> token (gaps allowed as empty strings); merges: pairs of token strings in rank order.
std::unique_ptr<Model> make_bpe(std::vector<std::string> vocab,
                                const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt,
                                const std::string& origin);
std::unique_ptr<Model> make_bpe_from_json(const nlohmann::json& j, const std::string& origin);
// The rest of make_bpe_from_json once model.vocab and model.merges are read (by it, or by the loader's
// reader that takes them straight from the file, loader_fast.cpp): the options from j, then make_bpe.
std::unique_ptr<Model> make_bpe_from_parts(const nlohmann::json& j, std::vector<std::string> vocab,
                                           const std::vector<std::pair<std::string, std::string>>& merges,
                                           const std::string& origin);
// Unigram (unigram.cpp): Viterbi over [piece, score] pairs, as HF's Unigram with its unknown-piece penalty.
// *unk_id receives model.unk_id.
std::unique_ptr<Model> make_unigram_from_json(const nlohmann::json& j, const std::string& origin, int32_t* unk_id);
// WordPiece (wordpiece.cpp): greedy longest match with a continuing-subword prefix, as BERT.
std::unique_ptr<Model> make_wordpiece_from_json(const nlohmann::json& j, const std::string& origin);
// Shared by the models: the id -> token table, its reverse map and a fresh cache key; byte-fallback ids.
void set_model_vocab(Model& m, std::vector<std::string> vocab);
void fill_byte_ids(const Model& m, int32_t* byte_ids);  // <0xNN> ids, -1 where absent
// model.vocab as {token: id} (BPE, WordPiece) -> id -> token; ids checked and unique.
std::vector<std::string> parse_vocab_object(const nlohmann::json& v, const std::string& origin);
// SentencePiece BPE by scores (GGUF tokenizer.ggml.model = llama): merge the adjacent pair whose
// concatenation is a vocabulary token of the highest score; byte-fallback <0xNN> for the rest.
std::unique_ptr<Model> make_spm_scores(std::vector<std::string> vocab, std::vector<float> scores, int32_t unk_id);

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& origin);
std::unique_ptr<Decoder> make_byte_level_decoder();
std::unique_ptr<Decoder> make_spm_decoder(bool strip_leading_space);

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

// The whole pipeline; Tokenizer owns one.
struct Pipeline {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<Decoder> decoder;
  std::vector<AddedToken> added;                   // all added tokens
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index in added
  std::vector<int32_t> prefix_ids, suffix_ids;      // post-processor (single sequence)
  bool has_post_processor = false;
  // First-byte index of added tokens for matching: bucket per byte, longest first; the scan skips to
  // the next byte that starts one (memchr when they all start with the same byte, as <|...|> do).
  struct AddedIndex {
    // head: the token's first (up to) 8 bytes, little-endian, masked by mask: one compare rejects
    // almost every candidate (Qwen's 26 tokens all start with '<').
    struct Cand {
      uint32_t k;  // index in added
      uint64_t head, mask;
    };
    std::vector<std::vector<Cand>> buckets;
    bool any = false;
    int single_first = -1;  // the one first byte all tokens share; -1: none or several
    bool starts[256] = {};
  };
  AddedIndex raw_index, norm_index;
  int vocab_size = 0;

  // True when no raw-matched added token is single_word (its match depends on the character after it,
  // which a prefix may cut off) or holds U+FFFD or invalid UTF-8 (it could match the U+FFFD that stands
  // for a character a prefix cuts in half): then a prefix of a text splits at the same added tokens as
  // the text itself up to the last one it holds whole (see Tokenizer::tokens_reproduced).
  bool marks_exact = false;

  // The fused byte-level path (set by index_added_tokens from the pre-tokenizer's fused_byte_level):
  // per segment between added tokens, normalize (no copy when NFC's quick check passes), split with
  // regex_fast.cpp's scanner and look each word up in the word cache by its bytes before the ByteLevel
  // mapping; only a word not cached yet is mapped and run through the model. Same ids as the general
  // path (tests/tokenizer/encode_fast_unit.cpp compares the two).
  struct FastPath {
    bool on = false;
    int regex = -1;
    bool prefix_space = false, nfc = false;
    // scan_raw: no normalized added tokens, a split and no prefix space: segments between raw added
    // tokens are scanned as they are (NFC only when the scan's quick check fails). checks_utf8: then
    // the scan also checks the text is UTF-8 (Tokenizer::encode makes no pass of its own).
    bool scan_raw = false, checks_utf8 = false;
  } fast;

  void index_added_tokens();  // also sets `fast`
  // text must be valid UTF-8. marks: filled for the raw added tokens (tokens counted from out's size on
  // entry). after_token: text is the rest of a longer text after an added token, so its first piece is
  // not the start of the text (Metaspace's prepend_scheme "first").
  void encode(std::string_view text, std::vector<int32_t>& out, std::vector<EncodeMarks::Mark>* marks = nullptr,
              bool after_token = false) const;
  // The two paths encode chooses between; tests call them directly.
  void encode_general(std::string_view text, std::vector<int32_t>& out, std::vector<EncodeMarks::Mark>* marks,
                      bool after_token) const;
  // unchecked: text may be invalid UTF-8 (fast.checks_utf8 needed); false when it is, with out and
  // marks as they were, and the caller sanitizes the text and encodes again.
  bool encode_fused(std::string_view text, std::vector<int32_t>& out, std::vector<EncodeMarks::Mark>* marks,
                    bool unchecked) const;
  std::string decode(const int32_t* ids, size_t n, bool skip_special) const;
};

}  // namespace lathe::tok
