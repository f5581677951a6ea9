// Internal: the loaders' access to Tokenizer's private fields, and the GGUF vocabulary loader.
#pragma once
#include <memory>
#include <string>
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

// tokenizer.ggml.model gpt2 (byte-level BPE over merges) or llama (SentencePiece scores).
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);
// The pre-tokenizer regexes for a tokenizer.ggml.pre name (empty when the name is unknown).
std::vector<std::string> gguf_pre_regexes(const std::string& pre, bool* ignore_merges);

}  // namespace lathe
