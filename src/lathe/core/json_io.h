// Depth-bounded JSON reading for every file a user hands to lathe (data inputs, training JSONL,
// chat-template messages, configs).
//
// Why: nlohmann's parser is iterative, but almost everything done with the value afterwards is
// recursive: copy, dump(), get<>/from_json conversions, comparison, and our own walkers (jinja
// Value::from_json, record text walkers). A 200 KB line of 100k '[' parses fine and then overflows
// the stack. So nesting is capped before a value is ever built: a pre-scan over the bytes counts
// '[' and '{' outside strings, skipping string bytes eight at a time (measured at ~4% of nlohmann's
// parse time on chat records; a parser callback with a depth check instead cost ~20%, since every
// value becomes a std::function call). Anything deeper than kMaxJsonDepth is rejected with its
// file:line and never reaches recursive code. (Destroying a deep value is safe: nlohmann 3.11
// destroys iteratively.)
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe {

// Deepest nesting of arrays/objects accepted from a user file. Real records nest a handful of
// levels (messages → message → content parts → part); 256 leaves room for odd tool-call arguments
// while keeping recursion over a value far below any stack limit (also the fast JSONL reader's cap).
inline constexpr int kMaxJsonDepth = 256;
// Longest JSONL line JsonlReader accepts (bytes); a longer line is an error naming its file:line and
// is never held in memory whole.
inline constexpr size_t kMaxJsonlLineBytes = size_t(64) << 20;

// Offset of the first '[' or '{' (outside strings) that opens a level deeper than `max_depth`, or
// npos. Does not validate: on malformed input its answer only matters if the parser accepts.
size_t json_depth_exceeded(std::string_view text, int max_depth = kMaxJsonDepth);
// 1-based line of byte `offset` in `text`.
int64_t line_of_offset(std::string_view text, size_t offset);

struct JsonError {
  int64_t line = 0;       // 1-based line inside the text (0: unknown, e.g. a number overflowing a double)
  bool too_deep = false;  // nesting deeper than kMaxJsonDepth (else a syntax/number error)
  std::string message;    // "nesting deeper than 256 levels", or nlohmann's description of the error
};

// Parses `text`; false with `err` filled when it is malformed or nests deeper than kMaxJsonDepth.
// Never throws.
bool try_parse_json_bounded(std::string_view text, nlohmann::json& out, JsonError* err = nullptr);
bool try_parse_json_bounded(std::string_view text, nlohmann::ordered_json& out, JsonError* err = nullptr);

// Same, throwing lathe::Error "[component] source:line: nesting deeper than 256 levels" or
// "[component] source:line: malformed JSON: <what>" (`first_line`: the line of
// text[0] in the source, for a JSONL line).
nlohmann::json parse_json_bounded(std::string_view text, const std::string& source, const char* component = "json",
                                  int64_t first_line = 1);
nlohmann::ordered_json parse_ordered_json_bounded(std::string_view text, const std::string& source,
                                                  const char* component = "json", int64_t first_line = 1);
// read_file + parse_json_bounded.
nlohmann::json read_json_file_bounded(const std::string& path, const char* component = "json");
nlohmann::ordered_json read_ordered_json_file_bounded(const std::string& path, const char* component = "json");

// Streams a JSONL file line by line in bounded memory (lines up to kMaxJsonlLineBytes), skipping
// blank lines. Errors throw lathe::Error "[component] path:line: ...".
class JsonlReader {
 public:
  explicit JsonlReader(const std::string& path, const char* component = "json");
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;
  // The next non-blank line, parsed; false at the end of the file.
  bool next(nlohmann::json& out);
  // The next non-blank line as bytes (no parse); false at the end of the file.
  bool next_line(std::string& line);
  int64_t line() const { return line_; }  // line number of the last line returned
  std::string where() const;              // "path:line"

 private:
  bool read_raw(std::string& line);  // false at EOF; throws on an over-long line or read error
  std::FILE* f_ = nullptr;
  std::vector<char> buf_ = std::vector<char>(size_t(1) << 16);
  size_t pos_ = 0, len_ = 0;
  std::string path_;
  const char* component_;
  int64_t line_ = 0;
};

// The same walk over JSONL text already in memory: non-blank lines (blank: only spaces, tabs, '\r')
// with their 1-based line numbers, lines split at '\n' only (a '\r' stays on its line).
class JsonlTextLines {
 public:
  explicit JsonlTextLines(std::string_view text) : text_(text) {}
  // The next non-blank line; false at the end of the text.
  bool next(std::string_view& line);
  int64_t line() const { return line_; }  // line number of the last line returned

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int64_t line_ = 0;
};

}  // namespace lathe
