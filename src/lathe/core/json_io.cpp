#include "lathe/core/json_io.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"

namespace lathe {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// Nonzero when one of the 8 bytes of w is '"' or '\\' (as a boolean exact; see data/json_fast.cpp).
inline uint64_t quote_or_backslash(uint64_t w) {
  uint64_t q = w ^ (kOnes * '"'), b = w ^ (kOnes * '\\');
  return (((q - kOnes) & ~q) | ((b - kOnes) & ~b)) & kHighs;
}

}  // namespace

size_t json_depth_exceeded(std::string_view t, int max_depth) {
  const char* s = t.data();
  const size_t n = t.size();
  int depth = 0;
  size_t i = 0;
  while (i < n) {
    const char c = s[i++];
    // nlohmann's lexer takes a NUL outside a string as the end of input and never reads past it
    // (found by fuzz/json_bounded.cpp: "38\0[[[..." parses as 38), so neither does the scan.
    if (c == '\0') break;
    if (c == '"') {
      // Most bytes of a record are inside strings: skip them eight at a time.
      while (i < n) {
        while (n - i >= 8) {
          uint64_t w;
          std::memcpy(&w, s + i, 8);
          if (quote_or_backslash(w)) break;
          i += 8;
        }
        while (i < n && s[i] != '"' && s[i] != '\\') i++;
        if (i >= n || s[i] == '"') break;
        i += 2;  // an escape: the next byte is never a string end
      }
      i++;  // the closing quote (past the end when unterminated: the outer loop ends)
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i - 1;
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return std::string_view::npos;
}

int64_t line_of_offset(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + std::count(text.begin(), text.begin() + std::ptrdiff_t(offset), '\n');
}

namespace {

template <class Json>
bool try_parse(std::string_view text, Json& out, JsonError* err) {
  size_t deep = json_depth_exceeded(text, kMaxJsonDepth);
  if (deep != std::string_view::npos) {
    if (err) *err = {line_of_offset(text, deep), true, fmt::format("nesting deeper than {} levels", kMaxJsonDepth)};
    return false;
  }
  try {
    out = Json::parse(text);
    return true;
  } catch (const typename Json::parse_error& e) {
    if (err) *err = {line_of_offset(text, e.byte ? e.byte - 1 : 0), false, e.what()};
  } catch (const typename Json::exception& e) {
    // Not a syntax error but a value nlohmann refuses (a number overflowing a double): no position.
    if (err) *err = {0, false, e.what()};
  }
  return false;
}

template <class Json>
Json parse_or_fail(std::string_view text, const std::string& source, const char* component, int64_t first_line) {
  Json out;
  JsonError e;
  if (!try_parse(text, out, &e)) {
    const std::string what = e.too_deep ? e.message : "malformed JSON: " + e.message;
    if (e.line == 0 && text.find('\n') == std::string_view::npos) e.line = 1;  // one line (a JSONL record): it is that line
    if (e.line > 0) fail(component, "{}:{}: {}", source, first_line + e.line - 1, what);
    fail(component, "{}: {}", source, what);
  }
  return out;
}

}  // namespace

bool try_parse_json_bounded(std::string_view text, nlohmann::json& out, JsonError* err) {
  return try_parse(text, out, err);
}
bool try_parse_json_bounded(std::string_view text, nlohmann::ordered_json& out, JsonError* err) {
  return try_parse(text, out, err);
}

nlohmann::json parse_json_bounded(std::string_view text, const std::string& source, const char* component,
                                  int64_t first_line) {
  return parse_or_fail<nlohmann::json>(text, source, component, first_line);
}
nlohmann::ordered_json parse_ordered_json_bounded(std::string_view text, const std::string& source,
                                                  const char* component, int64_t first_line) {
  return parse_or_fail<nlohmann::ordered_json>(text, source, component, first_line);
}
nlohmann::json read_json_file_bounded(const std::string& path, const char* component) {
  return parse_json_bounded(read_file(path), path, component);
}
nlohmann::ordered_json read_ordered_json_file_bounded(const std::string& path, const char* component) {
  return parse_ordered_json_bounded(read_file(path), path, component);
}

JsonlReader::JsonlReader(const std::string& path, const char* component) : path_(path), component_(component) {
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) fail(component_, "{}: cannot open: {}", path, std::strerror(errno));
}

JsonlReader::~JsonlReader() {
  if (f_) std::fclose(f_);
}

std::string JsonlReader::where() const { return fmt::format("{}:{}", path_, line_); }

bool JsonlReader::read_raw(std::string& line) {
  line.clear();
  bool any = false, too_long = false;
  while (true) {
    if (pos_ == len_) {
      len_ = std::fread(buf_.data(), 1, buf_.size(), f_);
      pos_ = 0;
      if (len_ == 0) break;
    }
    any = true;
    const char* start = buf_.data() + pos_;
    const void* nl = std::memchr(start, '\n', len_ - pos_);
    size_t take = nl ? size_t(static_cast<const char*>(nl) - start) : len_ - pos_;
    if (!too_long) {
      if (line.size() + take > kMaxJsonlLineBytes) {  // stop holding it; skip to the newline
        too_long = true;
        std::string().swap(line);
      } else {
        line.append(start, take);
      }
    }
    pos_ += take;
    if (nl) {
      pos_++;
      break;
    }
  }
  if (std::ferror(f_)) fail(component_, "{}:{}: read error: {}", path_, line_ + 1, std::strerror(errno));
  if (!any) return false;
  line_++;
  if (too_long) fail(component_, "{}:{}: line longer than {} bytes", path_, line_, kMaxJsonlLineBytes);
  return true;
}

bool JsonlReader::next_line(std::string& line) {
  while (read_raw(line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) return true;
  return false;
}

bool JsonlTextLines::next(std::string_view& line) {
  while (pos_ < text_.size()) {
    size_t nl = text_.find('\n', pos_);
    if (nl == std::string_view::npos) nl = text_.size();
    line = text_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    line_++;
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) return true;
  }
  return false;
}

bool JsonlReader::next(nlohmann::json& out) {
  std::string line;
  if (!next_line(line)) return false;
  out = parse_json_bounded(line, path_, component_, line_);
  return true;
}

}  // namespace lathe
