// Stage 1, collect: files, directories and globs → Records with their source position.
// Formats by extension: .jsonl/.ndjson, .json (array, or object whose values are arrays), .csv/.tsv
// (header row, RFC 4180 quoting, embedded newlines), .txt/.md/.markdown (chunked at headings and
// paragraphs), .html/.htm (scripts/styles dropped, text chunked), .pdf (poppler-cpp, one record per
// page, long pages chunked). Bytes: UTF-8 with or without BOM, UTF-16 with BOM, and CP949/EUC-KR
// (detected when the file is not valid UTF-8 but decodes as CP949; converted with a warning).
// Bad input never throws unless strict: each malformed line/row/file is counted as a drop reason
// with its file:line; with strict the first one throws lathe::Error naming it.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/core/utf8.h"
#include "lathe/data/record.h"

namespace lathe::data {

struct CollectOptions {
  size_t chunk_chars = 4000;    // text/markdown/html/pdf chunk budget in characters (code points)
  size_t chunk_tokens = 0;      // when > 0 and count_tokens is set: budget in tokens instead
  std::function<size_t(std::string_view)> count_tokens;
  size_t max_line_bytes = 16u << 20;  // a JSONL line or CSV row longer than this is skipped
  bool strict = false;
  // JSONL files collect_batches reads whole, not in pieces (see JsonlNotUtf8).
  std::vector<std::string> whole_jsonl;
};

// collect_batches found bytes that are not UTF-8 in a JSONL file it was reading in pieces, after some
// of the file's records had been handed on: such a file is read whole (its encoding found first), as
// collect() reads it, so the caller starts over with the file in CollectOptions::whole_jsonl.
struct JsonlNotUtf8 {
  std::string path;
};

struct InputFile {
  std::string path, hash;  // hash: xxh3-64 of the file bytes, hex
  size_t records = 0;
  std::string format;
};

// A source that was found but not read, and why ("symlink loop", "dangling symlink", "unreadable
// directory", "unreadable file", "unsupported file type", "not a regular file", ...).
struct SkippedSource {
  std::string path, reason, detail;
};

struct CollectResult {
  std::vector<Record> records;
  StageCounts counts{"collect"};  // in = units read (lines, rows, chunks, pages, files that failed)
  std::vector<InputFile> inputs;  // sources read
  std::vector<SkippedSource> skipped;  // sources seen but not read: seen = inputs + skipped
  std::vector<std::string> warnings;
  uint64_t bytes_read = 0;  // of the files read so far (progress)
};

// Files named by each pattern: a file, every file under a directory (sorted, recursive, hidden
// files skipped, directory symlinks followed once), or a glob. Throws when a pattern matches
// nothing. An entry that cannot be used (a symlink loop, a dangling symlink, an unreadable
// directory, a FIFO/device) never aborts the walk: it is appended to `skipped` with its reason.
std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns,
                                       std::vector<SkippedSource>* skipped = nullptr);

CollectResult collect(const std::vector<std::string>& patterns, const CollectOptions& options);
// collect() for inputs too large to hold: `on_batch` gets the records read so far whenever there are
// at least `batch_records` of them (and the rest at the end), and takes them (the vector is cleared
// after). A JSONL file in plain UTF-8 is read `piece_bytes` at a time, cut at line ends, so no such
// file is held whole (throws JsonlNotUtf8 when one turns out not to be); other files are read as
// collect() reads them. The rest of `out` (counts,
// inputs, skipped, warnings) ends as collect() leaves it, and the records come in the same order.
void collect_batches(const std::vector<std::string>& patterns, const CollectOptions& options, size_t batch_records,
                     size_t piece_bytes, const std::function<void(std::vector<Record>&)>& on_batch,
                     CollectResult& out);
// What collect() does with the entries expand_inputs skipped, before it reads any file: each one is a
// dropped source (or, with strict, the error). Exposed for the sharded preparation (pipeline_dist.cpp).
void collect_skipped(std::vector<SkippedSource> skipped, const CollectOptions& options, CollectResult& out);
// One file's records appended to `out` (the format from the extension; `format_hint` overrides).
void collect_file(const std::string& path, const CollectOptions& options, CollectResult& out,
                  const std::string& format_hint = "");
// Same, from bytes already in memory (tests and the fuzzer use this; `path` names them in messages).
void collect_bytes(std::string_view bytes, const std::string& path, const std::string& format,
                   const CollectOptions& options, CollectResult& out);

// --- helpers shared by the readers (encoding.cpp, collect_docs.cpp) ---
// UTF-8 checks live in core/utf8.h; these names stay usable as data::.
using ::lathe::repair_utf8;
using ::lathe::utf8_length;
using ::lathe::valid_utf8;
// Converts file bytes to UTF-8: strips a UTF-8 BOM, converts UTF-16 (BOM) and CP949/EUC-KR (when the
// bytes are not UTF-8 but CP949 decodes them). Returns the name of the encoding found ("utf-8",
// "utf-8-bom", "utf-16le", "utf-16be", "cp949"), or "invalid" leaving the bytes as they are.
std::string to_utf8(std::string_view bytes, std::string& out);
// Splits a document into chunks at headings and blank lines, each within the budget; `first_line`
// of each chunk is reported as its source line.
struct TextChunk {
  std::string text;
  int64_t line = 0;
};
std::vector<TextChunk> chunk_document(std::string_view text, const CollectOptions& options, bool markdown);
// Visible text of an HTML document (script/style/head dropped, block tags become line breaks,
// entities decoded).
std::string html_to_text(std::string_view html);
std::string decode_html_entities(std::string_view s);

}  // namespace lathe::data
