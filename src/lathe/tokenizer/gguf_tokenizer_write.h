// The tokenizer of a Hugging Face model directory written as llama.cpp GGUF vocabulary keys
// (tokenizer.ggml.*, tokenizer.chat_template), so an exported GGUF keeps its tokenizer and chat
// template. Byte-level BPE tokenizer.json -> model "gpt2" (tokens, token_type, merges, pre);
// SentencePiece-style BPE (byte fallback, '▁') -> model "llama" (tokens, scores, token_type).
// The result is checked: the vocabulary is read back by lathe's GGUF tokenizer loader and must
// encode a set of probe texts exactly as the tokenizer.json does, else export fails.
#pragma once
#include <string>

#include "lathe/formats/gguf_write.h"

namespace lathe {

// Adds the tokenizer found in `model_dir` (tokenizer.json + tokenizer_config.json +
// generation_config.json) to `w`. `vocab_size` is the model's embedding rows: the token list is
// padded to it with "[PADn]" tokens of type unused. Throws "[export] ..." for tokenizers GGUF
// cannot describe (WordPiece/Unigram, unknown pre-tokenizer regexes).
void add_tokenizer_to_gguf(const std::string& model_dir, int vocab_size, GgufWriter& w);
// Copies every tokenizer.* key of an existing GGUF file (re-exporting a GGUF model).
void copy_gguf_tokenizer_keys(const std::string& gguf_path, GgufWriter& w);

}  // namespace lathe
