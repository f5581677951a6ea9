// Documents → passages for the retrieval index. The data layer's collectors read every format
// (Markdown/TXT cut at headings and paragraphs, HTML, PDF page by page, JSONL/CSV/JSON records) and
// keep each unit's source (file and line, page or item); this cuts them to a token budget and adds
// overlap: a passage that continues the previous one (same file, not starting at a heading, not a
// separate record or page) begins with the last `overlap` tokens of it, cut at a word boundary, so a
// fact split across the cut is whole in one of the two.
//
// Tokens are the model's when a tokenizer is given (--model), else estimated as one per three code
// points (about right for English subwords and generous for Hangul, whose syllables are 1–2 tokens in
// the tokenizers people use).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "lathe/data/collect.h"

namespace lathe {
class Tokenizer;
}

namespace lathe::retrieval {

struct ChunkOptions {
  size_t chunk_tokens = 256;
  size_t overlap = 32;
  const Tokenizer* tokenizer = nullptr;
};

struct Passage {
  std::string text;
  data::Source source;
  size_t tokens = 0;
};

struct FileChunks {
  std::vector<Passage> passages;
  data::StageCounts counts{"chunk"};  // in = units the collector read; out = passages; drops with reasons
  std::vector<std::string> warnings;
  std::string format;
  bool failed = false;  // the whole file was unusable (its reason is in counts)
};

size_t count_tokens(std::string_view text, const Tokenizer* tok);
FileChunks chunk_file(const std::string& path, const ChunkOptions& o);

}  // namespace lathe::retrieval
