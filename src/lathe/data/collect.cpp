// Stage 1 readers for structured inputs (JSONL, JSON, CSV/TSV) and the dispatch by extension.
// JSONL lines are parsed in parallel (OpenMP) because JSON parsing dominates collect time.
#include "lathe/data/collect.h"

#include <fcntl.h>
#include <glob.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <filesystem>
#include <set>

#include "lathe/core/direct_io.h"
#include "lathe/core/error.h"
#include "lathe/core/io_worker.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/data/json_fast.h"

namespace fs = std::filesystem;

namespace lathe::data {

namespace {

std::string lower_ext(const std::string& path) {
  std::string e = fs::path(path).extension().string();
  for (auto& c : e) c = char(std::tolower((unsigned char)c));
  return e.empty() ? e : e.substr(1);
}

// A record's id names its source position, with the file as the path relative to the working
// directory when it lies under it (lathe run runs stages in the project directory): the same project
// copied elsewhere keeps its ids, and so its train/validation split.
std::string record_id(const Source& s, size_t chunk) {
  static const fs::path cwd = [] {
    std::error_code ec;
    fs::path p = fs::current_path(ec);
    return ec ? fs::path() : p.lexically_normal();
  }();
  // Every line of a file asks for the same path: the last answer is kept per thread.
  thread_local std::string last_in, last_out;
  if (s.file != last_in || last_out.empty()) {
    last_in = s.file;
    last_out = s.file;
    if (!cwd.empty() && fs::path(s.file).is_absolute()) {
      const fs::path rel = fs::path(s.file).lexically_normal().lexically_relative(cwd);
      if (!rel.empty() && *rel.begin() != "..") last_out = rel.string();
    }
  }
  // The key is "{file}\x1f{line}\x1f{page}\x1f{item}\x1f{chunk}" in decimal, as fmt::format wrote it
  // (std::to_chars gives the same digits); built by appending, since it is made for every record.
  thread_local std::string key;
  key.assign(last_out);
  char num[24];
  for (const int64_t v : {s.line, s.page, s.item}) {
    key += '\x1f';
    key.append(num, size_t(std::to_chars(num, num + sizeof num, v).ptr - num));
  }
  key += '\x1f';
  key.append(num, size_t(std::to_chars(num, num + sizeof num, chunk).ptr - num));
  return hex64(XXH3_64bits(key.data(), key.size()));
}

void add_record(CollectResult& out, nlohmann::json j, Source src, size_t chunk = 0) {
  Record r;
  r.id = record_id(src, chunk);
  r.json = std::move(j);
  r.source = std::move(src);
  out.records.push_back(std::move(r));
}

// Drop reason for a value nested deeper than kMaxJsonDepth (see core/json_io.h).
constexpr const char* kTooDeep = "JSON nested too deep";

void bad(CollectResult& out, const CollectOptions& o, const std::string& reason, const std::string& where,
         const std::string& detail) {
  if (o.strict) fail("data", "{}: {}: {}", where, reason, detail);
  out.counts.in++;
  out.counts.drop(reason, where + ": " + detail);
}

// Cuts of `text` after a '\n' about every `part` bytes (0 and text.size() included): parts of lines
// whole, to be read side by side.
std::vector<size_t> cuts_at_lines(std::string_view text, size_t part) {
  std::vector<size_t> cuts{0};
  while (cuts.back() < text.size()) {
    size_t c = std::min(text.size(), cuts.back() + part);
    if (c < text.size()) {
      const size_t nl = text.find('\n', c);
      c = nl == std::string_view::npos ? text.size() : nl + 1;
    }
    cuts.push_back(c);
  }
  return cuts;
}

// `text_valid`: the whole text is known to be valid UTF-8, so lines need no check of their own.
// `line0`: lines before `text` in its file (a piece of a file read in pieces). Returns the count of
// '\n' in `text` (its lines, for the next piece's numbers).
int64_t read_jsonl(std::string_view text, const std::string& path, const CollectOptions& o, CollectResult& out,
                   bool text_valid, int64_t line0 = 0) {
  // The non-blank lines, found in parts side by side (a serial walk over each 8 MiB piece was a step the
  // other cores waited on): per part its (offset, length) and line number within the part, then each
  // part's numbers moved on by the lines of the parts before it.
  const std::vector<size_t> cuts = cuts_at_lines(text, size_t(1) << 20);
  const int64_t parts = int64_t(cuts.size()) - 1;
  std::vector<std::vector<std::pair<size_t, size_t>>> part_lines(size_t(std::max<int64_t>(parts, 0)));
  std::vector<std::vector<int64_t>> part_numbers(part_lines.size());
  std::vector<int64_t> part_count(part_lines.size());  // lines a part spans (its '\n's, but the last)
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t k = 0; k < parts; k++) {
    const std::string_view t = text.substr(cuts[size_t(k)], cuts[size_t(k) + 1] - cuts[size_t(k)]);
    JsonlTextLines walk(t);
    for (std::string_view l; walk.next(l);) {
      part_lines[size_t(k)].emplace_back(size_t(l.data() - text.data()), l.size());
      part_numbers[size_t(k)].push_back(walk.line());
    }
    part_count[size_t(k)] = walk.line();
  }
  std::vector<std::pair<size_t, size_t>> lines;  // (offset, length) of non-blank lines
  std::vector<int64_t> numbers;
  int64_t before = line0;
  for (size_t k = 0; k < part_lines.size(); k++) {
    lines.insert(lines.end(), part_lines[k].begin(), part_lines[k].end());
    for (int64_t x : part_numbers[k]) numbers.push_back(before + x);
    before += part_count[k];  // every part but the last ends with '\n': its lines are its '\n's
  }
  const int64_t newlines = before - line0 - (text.empty() || text.back() == '\n' ? 0 : 1);
  const int64_t n = int64_t(lines.size());
  std::vector<nlohmann::json> parsed(n);
  std::vector<std::string> errors(n), ids(n);
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < n; i++) {
    ids[i] = record_id(Source{path, numbers[i], 0, 0}, 0);
    std::string_view l = text.substr(lines[i].first, lines[i].second);
    if (l.size() > o.max_line_bytes) {
      errors[i] = "line too long";
      continue;
    }
    if (!text_valid && !valid_utf8(l)) {
      errors[i] = "undecodable bytes";
      continue;
    }
    // The fast reader caps nesting itself; the fallback must reject deep values before they are
    // built, since copying or dumping them later recurses once per level.
    if (!json_parse_fast(l, parsed[i])) {
      JsonError e;
      if (!try_parse_json_bounded(l, parsed[i], &e)) {
        errors[i] = e.too_deep ? kTooDeep : "malformed JSON";
        continue;
      }
    }
    if (!parsed[i].is_object()) errors[i] = "not a JSON object";
  }
  out.records.reserve(out.records.size() + size_t(n));
  for (int64_t i = 0; i < n; i++) {
    if (!errors[i].empty()) {
      std::string where = fmt::format("{}:{}", path, numbers[i]);
      std::string_view l = text.substr(lines[i].first, std::min<size_t>(lines[i].second, 80));
      std::string snippet(l);
      repair_utf8(snippet);
      std::string detail = snippet;
      if (errors[i] == "line too long") detail = fmt::format("{} bytes", lines[i].second);
      if (errors[i] == kTooDeep) detail = fmt::format("nesting deeper than {} levels", kMaxJsonDepth);
      bad(out, o, errors[i], where, detail);
      continue;
    }
    out.counts.in++;
    Record r;
    r.id = std::move(ids[i]);
    r.json = std::move(parsed[i]);
    r.source = Source{path, numbers[i], 0, 0};
    out.records.push_back(std::move(r));
  }
  return newlines;
}

void read_json(std::string_view text, const std::string& path, const CollectOptions& o, CollectResult& out) {
  nlohmann::json j;
  JsonError e;
  if (!try_parse_json_bounded(text, j, &e)) {
    // A number nlohmann refuses (overflowing a double, e.g. 9E888888) carries no position: the file
    // is named without a line.
    std::string where = e.line > 0 ? fmt::format("{}:{}", path, e.line) : path;
    return bad(out, o, e.too_deep ? kTooDeep : "malformed JSON", where, e.message);
  }
  auto take_array = [&](const nlohmann::json& arr, const std::string& key) {
    for (size_t i = 0; i < arr.size(); i++) {
      Source s{path, 0, 0, int64_t(i + 1)};
      if (!arr[i].is_object()) {
        bad(out, o, "not a JSON object", s.where() + (key.empty() ? "" : " of \"" + key + "\""), arr[i].dump().substr(0, 80));
        continue;
      }
      out.counts.in++;
      if (!key.empty()) s.file = path + "#" + key;
      add_record(out, arr[i], std::move(s));
    }
  };
  if (j.is_array()) return take_array(j, "");
  if (j.is_object()) {
    bool any_array = false;
    for (auto& [k, v] : j.items())
      if (v.is_array()) {
        any_array = true;
        take_array(v, k);
      }
    if (!any_array) {  // a single record
      out.counts.in++;
      add_record(out, std::move(j), Source{path, 1, 0, 0});
    }
    return;
  }
  bad(out, o, "not a JSON array or object", path, j.dump().substr(0, 80));
}

// RFC 4180: fields separated by `delim`, optionally quoted with '"', '""' inside quotes is a quote,
// quoted fields may span lines. Returns false at EOF inside quotes (broken quoting).
bool csv_row(std::string_view t, size_t& pos, char delim, std::vector<std::string>& fields, int64_t& line) {
  fields.clear();
  std::string f;
  bool quoted = false, was_quoted = false;
  while (pos < t.size()) {
    char c = t[pos++];
    if (quoted) {
      if (c == '"') {
        if (pos < t.size() && t[pos] == '"') {
          f += '"';
          pos++;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') line++;
        f += c;
      }
    } else if (c == '"' && f.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == delim) {
      fields.push_back(std::move(f));
      f.clear();
      was_quoted = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && pos < t.size() && t[pos] == '\n') pos++;
      line++;
      fields.push_back(std::move(f));
      return true;
    } else {
      f += c;
    }
  }
  if (quoted) return false;
  fields.push_back(std::move(f));
  return true;
}

void read_csv(std::string_view text, const std::string& path, char delim, const CollectOptions& o, CollectResult& out) {
  size_t pos = 0;
  int64_t line = 1;
  std::vector<std::string> header, fields;
  while (pos < text.size() && header.empty()) {
    int64_t start = line;
    if (!csv_row(text, pos, delim, header, line)) return bad(out, o, "broken CSV quoting", fmt::format("{}:{}", path, start), "unterminated quote in the header");
    if (header.size() == 1 && header[0].empty()) header.clear();
  }
  if (header.empty()) return;
  while (pos < text.size()) {
    int64_t start = line;
    size_t row_start = pos;
    if (!csv_row(text, pos, delim, fields, line)) {
      bad(out, o, "broken CSV quoting", fmt::format("{}:{}", path, start), "quote opened here is never closed; rest of file skipped");
      return;
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    std::string where = fmt::format("{}:{}", path, start);
    if (pos - row_start > o.max_line_bytes) {
      bad(out, o, "line too long", where, fmt::format("{} bytes", pos - row_start));
      continue;
    }
    if (fields.size() != header.size()) {
      bad(out, o, "CSV field count mismatch", where, fmt::format("{} fields, header has {}", fields.size(), header.size()));
      continue;
    }
    nlohmann::json j = nlohmann::json::object();
    for (size_t i = 0; i < header.size(); i++) j[header[i]] = fields[i];
    out.counts.in++;
    add_record(out, std::move(j), Source{path, start, 0, 0});
  }
}

void read_document(std::string_view text, const std::string& path, bool markdown, const CollectOptions& o, CollectResult& out) {
  size_t k = 0;
  for (auto& c : chunk_document(text, o, markdown)) {
    out.counts.in++;
    add_record(out, nlohmann::json{{"text", std::move(c.text)}}, Source{path, c.line, 0, 0}, k++);
  }
}

}  // namespace

// PDF reading lives in collect_docs.cpp; declared here to keep poppler out of this file.
void collect_pdf(std::string_view bytes, const std::string& path, const CollectOptions& o, CollectResult& out);

namespace {

// Why `p` (a directory entry or a pattern naming one path) cannot be read as a file, or "" when it
// is a regular file (through symlinks). Sets `dir` when it is a directory.
std::string entry_problem(const fs::path& p, bool& dir, std::string& detail) {
  std::error_code ec;
  dir = false;
  fs::file_status st = fs::status(p, ec);  // follows symlinks
  if (ec) {
    detail = ec.message();
    if (ec == std::errc::too_many_symbolic_link_levels) return "symlink loop";
    if (ec == std::errc::no_such_file_or_directory && fs::is_symlink(fs::symlink_status(p, ec)))
      return "dangling symlink";
    return "unreadable entry";
  }
  if (st.type() == fs::file_type::not_found) {
    detail = "target does not exist";
    return fs::is_symlink(fs::symlink_status(p, ec)) ? "dangling symlink" : "unreadable entry";
  }
  if (st.type() == fs::file_type::directory) {
    dir = true;
    return "";
  }
  if (st.type() != fs::file_type::regular) {
    detail = "a device, FIFO or socket, not a file";  // reading a FIFO could block forever
    return "not a regular file";
  }
  return "";
}

// Every regular file under `root`, depth first without recursion. Directory symlinks are followed;
// a directory whose canonical path is already open above it is a loop, and one already read
// through another path is not read twice; both, and every entry that cannot be read, are reported
// in `skipped` rather than aborting the walk.
void walk_directory(const fs::path& root, std::vector<std::string>& found, std::vector<SkippedSource>& skipped) {
  struct Frame {
    fs::directory_iterator it;
    std::string canon;
  };
  std::vector<Frame> stack;
  std::set<std::string> open, seen;
  auto enter = [&](const fs::path& dir) {
    std::error_code ec;
    std::string canon = fs::canonical(dir, ec).string();
    if (ec) return skipped.push_back({dir.string(), "unreadable directory", ec.message()});
    if (open.count(canon)) return skipped.push_back({dir.string(), "symlink loop", "leads back to a directory that contains it"});
    if (!seen.insert(canon).second)
      return skipped.push_back({dir.string(), "directory already read", "reached twice through symlinks"});
    fs::directory_iterator it(dir, fs::directory_options::none, ec);
    if (ec) return skipped.push_back({dir.string(), "unreadable directory", ec.message()});
    open.insert(canon);
    stack.push_back({std::move(it), canon});
  };
  enter(root);
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.it == fs::directory_iterator()) {
      open.erase(f.canon);
      stack.pop_back();
      continue;
    }
    fs::path p = f.it->path();
    std::error_code ec;
    f.it.increment(ec);
    if (ec) {  // the rest of this directory cannot be listed
      skipped.push_back({p.parent_path().string(), "unreadable directory", ec.message()});
      f.it = fs::directory_iterator();
    }
    std::string name = p.filename().string();
    if (!name.empty() && name[0] == '.') continue;  // hidden files and directories, by design
    bool dir = false;
    std::string detail, problem = entry_problem(p, dir, detail);
    if (!problem.empty()) skipped.push_back({p.string(), problem, detail});
    else if (dir) enter(p);  // may invalidate `f`
    else found.push_back(p.string());
  }
}

}  // namespace

std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns, std::vector<SkippedSource>* skipped) {
  std::vector<std::string> files;
  std::vector<SkippedSource> skip;
  for (const auto& p : patterns) {
    std::error_code ec;
    bool dir = false;
    std::string detail, problem = entry_problem(p, dir, detail);
    if (problem.empty() && dir) {
      std::vector<std::string> found;
      walk_directory(p, found, skip);
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (problem.empty()) {
      files.push_back(p);
    } else if (fs::symlink_status(p, ec).type() != fs::file_type::not_found) {
      skip.push_back({p, problem, detail});  // the name exists (a loop, a dangling link, a FIFO...)
    } else {
      glob_t g{};
      int rc = glob(p.c_str(), 0, nullptr, &g);
      if (rc != 0 || g.gl_pathc == 0) {
        globfree(&g);
        fail("data", "{}: no such file, directory or glob match", p);
      }
      for (size_t i = 0; i < g.gl_pathc; i++) {
        std::string m = g.gl_pathv[i];
        std::string why = entry_problem(m, dir, detail);
        if (why.empty() && !dir) files.push_back(m);
        else if (!why.empty()) skip.push_back({m, why, detail});
      }
      globfree(&g);
    }
  }
  std::sort(skip.begin(), skip.end(), [](const SkippedSource& a, const SkippedSource& b) { return a.path < b.path; });
  if (skipped) skipped->insert(skipped->end(), skip.begin(), skip.end());
  return files;
}

void collect_bytes(std::string_view bytes, const std::string& path, const std::string& format, const CollectOptions& o,
                   CollectResult& out) {
  if (format == "pdf") return collect_pdf(bytes, path, o, out);
  if (bytes.empty()) return bad(out, o, "empty file", path, "no content");
  std::string text;
  std::string enc = to_utf8(bytes, text);
  if (enc == "cp949") out.warnings.push_back(fmt::format("{}: not UTF-8; decoded as CP949/EUC-KR", path));
  if (enc == "utf-16le" || enc == "utf-16be") out.warnings.push_back(fmt::format("{}: decoded from {}", path, enc));
  bool structured = format == "jsonl" || format == "json" || format == "csv" || format == "tsv";
  if (enc == "invalid" && !structured) {
    size_t n = repair_utf8(text);
    out.warnings.push_back(fmt::format("{}: {} undecodable byte sequence(s) replaced with U+FFFD", path, n));
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return bad(out, o, "empty file", path, "only whitespace");
  if (format == "jsonl") {
    read_jsonl(text, path, o, out, enc == "utf-8" || enc == "utf-8-bom" || enc == "cp949");
    return;
  }
  if (enc == "invalid" && structured && format != "jsonl") {
    // Whole-document formats cannot skip a line: report the first bad byte's line and skip the file.
    int64_t line = 1;
    for (size_t p = 0; p < text.size(); line++) {
      size_t nl = std::min(text.find('\n', p), text.size());
      if (!valid_utf8(std::string_view(text).substr(p, nl - p))) break;
      p = nl + 1;
    }
    return bad(out, o, "undecodable bytes", fmt::format("{}:{}", path, line), "not UTF-8, UTF-16 or CP949; file skipped");
  }
  if (format == "json") return read_json(text, path, o, out);
  if (format == "csv") return read_csv(text, path, ',', o, out);
  if (format == "tsv") return read_csv(text, path, '\t', o, out);
  if (format == "html") return read_document(html_to_text(text), path, false, o, out);
  if (format == "md") return read_document(text, path, true, o, out);
  return read_document(text, path, false, o, out);
}

void collect_file(const std::string& path, const CollectOptions& o, CollectResult& out, const std::string& hint) {
  std::string ext = hint.empty() ? lower_ext(path) : hint;
  std::string format;
  if (ext == "jsonl" || ext == "ndjson") format = "jsonl";
  else if (ext == "json") format = "json";
  else if (ext == "csv") format = "csv";
  else if (ext == "tsv" || ext == "tab") format = "tsv";
  else if (ext == "md" || ext == "markdown") format = "md";
  else if (ext == "html" || ext == "htm" || ext == "xhtml") format = "html";
  else if (ext == "pdf") format = "pdf";
  else if (ext == "txt" || ext == "text") format = "txt";
  else {
    out.skipped.push_back({path, "unsupported file type", "extension '." + ext + "'"});
    return bad(out, o, "unsupported file type", path, "extension '." + ext + "'");
  }
  size_t before = out.records.size();
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    out.skipped.push_back({path, "unreadable file", e.what()});
    return bad(out, o, "unreadable file", path, e.what());
  }
  collect_bytes(bytes, path, format, o, out);
  out.bytes_read += bytes.size();
  out.counts.out = out.records.size();
  InputFile f;
  f.path = path;
  f.hash = hex64(XXH3_64bits(bytes.data(), bytes.size()));
  f.records = out.records.size() - before;
  f.format = format;
  out.inputs.push_back(std::move(f));
}

void collect_skipped(std::vector<SkippedSource> skipped, const CollectOptions& o, CollectResult& out) {
  // An entry the walk could not use is one dropped source, counted and named like a bad file, and
  // never a reason to lose the good files.
  for (auto& s : skipped) {
    bad(out, o, s.reason, s.path, s.detail);
    out.skipped.push_back(std::move(s));
  }
}

namespace {

// Reads a file `piece` bytes at a time, each piece cut after its last '\n' (a line longer than a piece
// makes the piece longer). fn(piece) for each; false when the file cannot be opened or read. The next
// piece is read on an IoWorker while fn works on this one, into the other of two aligned buffers, and
// around the page cache where the file system allows (direct_io.h): the read was a serial step of a
// prepare run, the kernel copying 8 MiB from the page cache while the other cores waited. A piece is
// read from where the last one was cut, so no leftover line is copied.
// `behind`, when given, also gets each piece, on the reading thread while fn works on it (the file
// hash: a serial step otherwise); it has been called for every piece when this returns true.
bool for_each_piece(const std::string& path, size_t piece, const std::function<void(std::string_view)>& fn,
                    const std::function<void(std::string_view)>& behind = nullptr) {
  bool direct = false;
  const int fd = open_direct(path, O_RDONLY | O_CLOEXEC, 0, direct);
  if (fd < 0) return false;
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  struct Buffer {
    AlignedBlock block;
    size_t cap = 0, skip = 0, got = 0;  // the bytes asked for start at block + skip; got of them came
  };
  Buffer bufs[2];
  // Bytes [off, off + want) into b (one aligned read around them); fewer only at the end of the file.
  auto read_into = [&](Buffer& b, uint64_t off, size_t want) {
    const uint64_t a0 = align_down(off), len = align_up(off + want) - a0;
    if (b.cap < len) {
      b.block = aligned_block(size_t(len));
      b.cap = size_t(len);
    }
    const size_t n = pread_full(fd, a0, size_t(len), b.block.get(), path);
    b.skip = size_t(off - a0);
    b.got = std::min(want, n > b.skip ? n - b.skip : 0);
  };
  IoWorker io;  // (its queue runs out before the buffers and the descriptor go: declared after them)
  uint64_t off = 0;
  size_t want = piece;
  int cur = 0;
  std::future<void> next = io.submit([&, want] { read_into(bufs[0], 0, want); }), last_behind;
  while (true) {
    try {
      next.get();
    } catch (const Error&) {
      return false;  // a read error (fn's errors go to the caller)
    }
    {
      const Buffer& b = bufs[cur];
      const std::string_view v(b.block.get() + b.skip, b.got);
      const bool end = b.got < want;  // the rest of the file
      size_t cut = v.size();
      if (!end) {
        const size_t nl = v.rfind('\n');
        if (nl == std::string_view::npos) {  // a line longer than the piece: read it all
          want = 2 * want;
          next = io.submit([&, cur, off, want] { read_into(bufs[cur], off, want); });
          continue;
        }
        cut = nl + 1;
        want = piece;
      }
      // The buffer stays until behind is done with it: the read into it comes two jobs later.
      if (behind && cut > 0) last_behind = io.submit([&behind, p = v.substr(0, cut)] { behind(p); });
      if (!end) next = io.submit([&, other = cur ^ 1, at = off + cut, want] { read_into(bufs[other], at, want); });
      if (!v.empty()) fn(v.substr(0, cut));
      if (end) {
        if (last_behind.valid()) last_behind.get();
        return true;
      }
      off += cut;
      cur ^= 1;
    }
  }
}

constexpr size_t kCheckPiece = size_t(1) << 20;

// Whether `text` (pieces of a file end at '\n', which never sits inside a character) is UTF-8,
// checked in parallel parts cut at line ends.
bool piece_valid_utf8(std::string_view text) {
  constexpr size_t kPart = size_t(1) << 20;
  if (text.size() <= kPart) return valid_utf8(text);
  const std::vector<size_t> cuts = cuts_at_lines(text, kPart);
  const int64_t parts = int64_t(cuts.size()) - 1;
  int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : bad)
  for (int64_t k = 0; k < parts; k++) bad |= !valid_utf8(text.substr(cuts[size_t(k)], cuts[size_t(k) + 1] - cuts[size_t(k)]));
  return !bad;
}

// A JSONL file in plain UTF-8 (no BOM), not blank, read in pieces: the records, counts and input entry
// collect_file gives, without holding the file. False, with nothing added, for any other file, which
// the caller then reads whole (the encoding checks and conversions need all of it). Each piece is
// checked before its lines are parsed, so the file is read once: a BOM shows in the first piece, a
// blank file at its end, bytes that are not UTF-8 in the piece that has them — the file's records so
// far are then taken back, or, when some went on to the caller (`flush` hands out the records
// collected), JsonlNotUtf8 is thrown. With strict, the first bad line's error waits until the rest
// of the file is known to be UTF-8 (else the file is read whole and errs, or not, as collect()'s would).
bool collect_jsonl_pieces(const std::string& path, const CollectOptions& o, size_t piece, CollectResult& out,
                          const std::function<void()>& flush) {
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  struct FreeState {
    XXH3_state_t* h;
    ~FreeState() { XXH3_freeState(h); }
  } free_state{h};
  // What to put back when the file turns out not to be read in pieces.
  const StageCounts counts_before = out.counts;
  const uint64_t bytes_before = out.bytes_read;
  size_t first_mine = out.records.size();  // where this file's records start in out.records
  bool handed = false, blank = true, first = true, not_utf8 = false;
  std::exception_ptr strict_error;
  InputFile f;
  f.path = path;
  f.format = "jsonl";
  int64_t line0 = 0;
  const bool read = for_each_piece(path, piece, [&](std::string_view p) {
    if (not_utf8 || strict_error) return;
    if (first && p.size() >= 2 && (p.substr(0, 3) == "\xEF\xBB\xBF" || uint8_t(p[0]) == 0xFF || uint8_t(p[0]) == 0xFE)) {
      not_utf8 = true;  // a BOM: the file is read whole, its encoding named by it
      return;
    }
    first = false;
    if (!piece_valid_utf8(p)) {
      not_utf8 = true;
      return;
    }
    if (blank) blank = p.find_first_not_of(" \t\r\n") == std::string_view::npos;
    const size_t before = out.records.size();
    try {
      line0 += read_jsonl(p, path, o, out, true, line0);
    } catch (const Error&) {
      if (!o.strict) throw;
      strict_error = std::current_exception();
      return;
    }
    f.records += out.records.size() - before;
    out.bytes_read += p.size();
    const bool mine = out.records.size() > first_mine;
    flush();
    if (out.records.empty()) {  // handed on
      handed |= mine;
      first_mine = 0;
    }
  }, [h](std::string_view p) { XXH3_64bits_update(h, p.data(), p.size()); });
  if (strict_error) {
    bool valid = true;
    for_each_piece(path, kCheckPiece, [&](std::string_view p) { valid = valid && valid_utf8(p); });
    if (valid) std::rethrow_exception(strict_error);
    not_utf8 = true;
  }
  if (!read || not_utf8 || blank) {
    if (handed && !read) fail("data", "{}: the file changed or became unreadable while it was read", path);
    if (handed) throw JsonlNotUtf8{path};
    out.records.erase(out.records.begin() + std::ptrdiff_t(first_mine), out.records.end());
    out.counts = counts_before;
    out.bytes_read = bytes_before;
    return false;  // (an unreadable file: collect_file names the error)
  }
  f.hash = hex64(XXH3_64bits_digest(h));
  out.inputs.push_back(std::move(f));
  return true;
}

std::string format_of(const std::string& ext) {
  if (ext == "jsonl" || ext == "ndjson") return "jsonl";
  return ext;
}

}  // namespace

void collect_batches(const std::vector<std::string>& patterns, const CollectOptions& o, size_t batch_records,
                     size_t piece_bytes, const std::function<void(std::vector<Record>&)>& on_batch,
                     CollectResult& out) {
  size_t handed = 0;
  auto flush = [&](bool last) {
    if (out.records.empty() || (!last && out.records.size() < batch_records)) return;
    handed += out.records.size();
    on_batch(out.records);
    out.records.clear();
  };
  std::vector<SkippedSource> skipped;
  std::vector<std::string> files = expand_inputs(patterns, &skipped);
  collect_skipped(std::move(skipped), o, out);
  for (const auto& f : files) {
    const bool whole = std::find(o.whole_jsonl.begin(), o.whole_jsonl.end(), f) != o.whole_jsonl.end();
    if (format_of(lower_ext(f)) == "jsonl" && !whole && collect_jsonl_pieces(f, o, piece_bytes, out, [&] { flush(false); }))
      continue;
    collect_file(f, o, out);
    flush(false);
  }
  flush(true);
  out.counts.out = handed;
}

CollectResult collect(const std::vector<std::string>& patterns, const CollectOptions& o) {
  CollectResult out;
  std::vector<SkippedSource> skipped;
  std::vector<std::string> files = expand_inputs(patterns, &skipped);
  collect_skipped(std::move(skipped), o, out);
  for (const auto& f : files) collect_file(f, o, out);
  out.counts.out = out.records.size();
  return out;
}

}  // namespace lathe::data
