#include "lathe/retrieval/chunker.h"

#include "lathe/core/error.h"
#include "lathe/core/utf8.h"
#include "lathe/records/record_shape.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe::retrieval {

namespace {

bool starts_with_heading(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) i++;
  return i < s.size() && s[i] == '#';
}

bool is_lone_heading(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.remove_suffix(1);
  return starts_with_heading(s) && s.find('\n') == std::string_view::npos;
}

// The last words of `prev` worth at least `overlap` tokens (the whole text when it is shorter).
std::string tail_tokens(const std::string& prev, size_t overlap, const Tokenizer* tok) {
  if (overlap == 0) return {};
  size_t cut = prev.size();
  while (cut > 0) {
    size_t sp = prev.find_last_of(" \n", cut - 1);
    size_t start = sp == std::string::npos ? 0 : sp + 1;
    if (count_tokens(std::string_view(prev).substr(start), tok) >= overlap || sp == std::string::npos) {
      cut = start;
      break;
    }
    cut = sp;
  }
  std::string t = prev.substr(cut);
  while (!t.empty() && (t[0] == ' ' || t[0] == '\n')) t.erase(0, 1);
  return t;
}

// The text a record offers to search: {"text"} as is; any other shape, its human-written strings
// (question and answer, messages' contents, CSV columns) joined by lines.
std::string passage_text(const nlohmann::json& rec, const std::string& where) {
  if (rec.is_object() && rec.contains("text") && rec["text"].is_string() && rec.size() == 1)
    return rec["text"].get<std::string>();
  std::vector<std::string> parts;
  try {
    record_training_texts(rec.dump(), parts);
  } catch (const RecordError& e) {
    fail("index", "{}: {}", where, e.what());
  }
  std::string s;
  for (auto& p : parts) {
    if (p.empty()) continue;
    if (!s.empty()) s += '\n';
    s += p;
  }
  return s;
}

}  // namespace

size_t count_tokens(std::string_view text, const Tokenizer* tok) {
  if (tok) return tok->encode(text, false).size();
  return (utf8_length(text) + 2) / 3;
}

FileChunks chunk_file(const std::string& path, const ChunkOptions& o) {
  FileChunks fc;
  data::CollectOptions co;
  size_t budget = o.chunk_tokens > o.overlap ? o.chunk_tokens - o.overlap : o.chunk_tokens;
  co.chunk_tokens = std::max<size_t>(budget, 1);
  const Tokenizer* tok = o.tokenizer;
  co.count_tokens = [tok](std::string_view s) { return count_tokens(s, tok); };
  data::CollectResult cr;
  data::collect_file(path, co, cr);
  fc.counts.in = cr.counts.in;
  fc.counts.dropped = cr.counts.dropped;
  fc.counts.examples = cr.counts.examples;
  fc.warnings = cr.warnings;
  fc.failed = cr.inputs.empty();
  if (!cr.inputs.empty()) fc.format = cr.inputs.back().format;
  const bool documents = fc.format == "txt" || fc.format == "md" || fc.format == "html" || fc.format == "pdf";
  const data::Source* prev_src = nullptr;
  std::string prev_text, heading;
  data::Source heading_src;
  auto emit_heading = [&] {
    Passage p;
    p.text = heading;
    p.source = heading_src;
    p.tokens = count_tokens(p.text, tok);
    fc.passages.push_back(std::move(p));
    heading.clear();
  };
  for (auto& r : cr.records) {
    std::string where = r.source.where();
    std::string text;
    try {
      text = passage_text(r.json, where);
    } catch (const Error& e) {
      fc.counts.drop("unreadable record", e.what());
      continue;
    }
    bool blank = text.find_first_not_of(" \t\r\n") == std::string::npos;
    if (blank) {
      fc.counts.drop("empty passage", where);
      continue;
    }
    // A heading the collector left alone (its section was over the budget) leads the next passage
    // of the same page instead of being a passage without content.
    if (documents && is_lone_heading(text)) {
      if (!heading.empty()) emit_heading();
      heading = text;
      heading_src = r.source;
      continue;
    }
    // Overlap joins pieces of one running text: not records, not across PDF pages, not at a heading.
    bool continues = documents && prev_src && prev_src->page == r.source.page && !starts_with_heading(text);
    Passage p;
    p.source = r.source;
    if (!heading.empty()) {
      if (heading_src.page == r.source.page) {
        text = heading + "\n\n" + text;
        p.source = heading_src;
        continues = false;
      } else {
        emit_heading();
      }
      heading.clear();
    }
    p.text = continues ? tail_tokens(prev_text, o.overlap, tok) : std::string();
    if (!p.text.empty()) p.text += ' ';
    p.text += text;
    p.tokens = count_tokens(p.text, tok);
    prev_text = text;
    fc.passages.push_back(std::move(p));
    prev_src = &r.source;
  }
  if (!heading.empty()) emit_heading();
  fc.counts.out = fc.passages.size();
  return fc;
}

}  // namespace lathe::retrieval
