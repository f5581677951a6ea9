// Internal: the loaders' access to Tokenizer's private fields, and the GGUF vocabulary loader.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe {

struct TokenizerLoader {
  static std::unique_ptr<Tokenizer> make();
  static void set_special(Tokenizer& t, int32_t bos, int32_t eos, int32_t pad, int32_t unk);
  static void set_chat_template(Tokenizer& t, std::string s);
  static void add_eos_ids(Tokenizer& t, const std::vector<int32_t>& ids);
  static tok::Pipeline& pipeline(Tokenizer& t);
};

// What read_tokenizer_json_fast took from a tokenizer.json without the DOM: a BPE model's vocab (id ->
// token) and merges, exactly as make_bpe_from_json would read them (bpe false: they stayed in the DOM).
struct TokenizerJsonParts {
  bool bpe = false;
  std::vector<std::string> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};
// tokenizer.json text -> *rest, the value nlohmann::json::parse gives, less model.vocab and model.merges
// when they went to *parts (loader_fast.cpp). False: not read (no simdjson in the build, a document it
// rejects, or escaped surrogates); the caller parses with nlohmann, which words any error as before.
bool read_tokenizer_json_fast(std::string_view text, nlohmann::json& rest, TokenizerJsonParts& parts);
// Whether this build has the fast reader (simdjson found at configure time).
bool tokenizer_json_fast_available();
// Tokenizer::from_json with the fast reader allowed or not (tests compare the two); *fast_used: whether
// vocab and merges came from the fast reader.
std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view text, const std::string& origin, bool allow_fast,
                                               bool* fast_used = nullptr);

// Checks a loaded tokenizer (empty vocabulary, ids beyond kMaxTokenId, conflicting added-token ids,
// special and post-processor ids outside the vocabulary); errors name `origin` (the file).
void validate_tokenizer(const Tokenizer& t, const std::string& origin);

// tokenizer.ggml.model gpt2 (byte-level BPE over merges) or llama (SentencePiece scores).
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);
// A SentencePiece model proto (tokenizer.model, BPE type), built like a GGUF 'llama' vocabulary.
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path);
// Shared by GGUF 'llama' vocabularies and SentencePiece protos (token types use the same numbering:
// 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
void build_spm_model(tok::Pipeline& p, const std::vector<std::string>& tokens, std::vector<float> scores,
                     const std::vector<int64_t>& types, int32_t* unk, bool space_prefix);
void add_typed_tokens(tok::Pipeline& p, const std::vector<std::string>& tokens, const std::vector<int64_t>& types);
// The pre-tokenizer regexes for a tokenizer.ggml.pre name (empty when the name is unknown).
std::vector<std::string> gguf_pre_regexes(const std::string& pre, bool* ignore_merges);

}  // namespace lathe
