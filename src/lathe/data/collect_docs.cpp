// Stage 1 readers for documents meant for continued pre-training: plain text, Markdown, HTML and
// PDF become {"text"} chunks. Chunks break at Markdown headings (a heading always starts a chunk, so
// a section keeps its title) and otherwise at blank-line paragraphs, filling each chunk up to the
// budget; a paragraph longer than the budget is cut at a sentence end or space near the limit.
#include <poppler/cpp/poppler-document.h>
#include <poppler/cpp/poppler-page.h>

#include <cstring>

#include "lathe/core/error.h"
#include "lathe/data/collect.h"

namespace lathe::data {

namespace {

bool is_heading(std::string_view l) {
  size_t i = 0;
  while (i < l.size() && i < 6 && l[i] == '#') i++;
  return i > 0 && i < l.size() && (l[i] == ' ' || l[i] == '\t');
}

// Cuts an over-long paragraph into pieces of at most `chars` code points, preferring to end a piece
// after ". ", "? ", "! ", "다. " style sentence ends, then at a space, else mid-word.
// Linear in the paragraph: the code points left are kept as a running count (recounting the
// remainder each piece made a 20 MB single-line file take 17 s and a 180 MB one never end), and
// each piece's search looks back at most `chars` code points from its limit.
std::vector<std::string> split_long(std::string_view p, size_t chars) {
  std::vector<std::string> out;
  size_t left = utf8_length(p);
  while (left > chars) {
    size_t lim = utf8_offset(p, chars);
    size_t cut = std::string_view::npos;
    for (size_t i = lim; i > lim / 2; i--) {
      char c = p[i - 1];
      if ((c == '.' || c == '?' || c == '!' || c == '\n') && i < p.size() && (p[i] == ' ' || p[i] == '\n')) {
        cut = i;
        break;
      }
    }
    if (cut == std::string_view::npos) {
      size_t sp = p.rfind(' ', lim);
      cut = (sp != std::string_view::npos && sp > lim / 2) ? sp : lim;
    }
    if (cut == 0) cut = lim;
    std::string_view piece = p.substr(0, cut);
    out.emplace_back(piece);
    left -= utf8_length(piece);
    p = p.substr(cut);
    while (!p.empty() && (p[0] == ' ' || p[0] == '\n')) {
      p.remove_prefix(1);
      left--;
    }
  }
  if (!p.empty()) out.emplace_back(p);
  return out;
}

}  // namespace

std::vector<TextChunk> chunk_document(std::string_view text, const CollectOptions& o, bool markdown) {
  const bool by_tokens = o.chunk_tokens > 0 && o.count_tokens;
  const size_t budget = by_tokens ? o.chunk_tokens : std::max<size_t>(o.chunk_chars, 1);
  auto measure = [&](std::string_view s) { return by_tokens ? o.count_tokens(s) : utf8_length(s); };
  // Paragraph blocks with their first line.
  struct Block {
    std::string text;
    int64_t line;
    bool heading;
  };
  std::vector<Block> blocks;
  bool in_fence = false, open = false;
  int64_t lineno = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view l = text.substr(pos, nl - pos);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    lineno++;
    pos = nl + 1;
    bool blank = l.find_first_not_of(" \t") == std::string_view::npos;
    if (markdown && (l.rfind("```", 0) == 0 || l.rfind("~~~", 0) == 0)) in_fence = !in_fence;
    bool heading = markdown && !in_fence && is_heading(l);
    if (blank && !in_fence) {
      open = false;
    } else {
      if (!open || heading) {
        blocks.push_back({std::string(l), lineno, heading});
        open = !heading || true;
      } else {
        blocks.back().text += '\n';
        blocks.back().text += l;
      }
    }
    if (nl == text.size()) break;
  }
  std::vector<TextChunk> chunks;
  TextChunk cur;
  size_t cur_size = 0;
  auto flush = [&] {
    if (!cur.text.empty()) chunks.push_back(std::move(cur));
    cur = TextChunk{};
    cur_size = 0;
  };
  for (auto& b : blocks) {
    if (b.heading) flush();
    size_t m = measure(b.text);
    if (m > budget) {
      flush();
      // Token budget: cut by characters at roughly the budget's share of the block.
      size_t chars = by_tokens ? std::max<size_t>(1, utf8_length(b.text) * budget / m) : budget;
      for (auto& piece : split_long(b.text, chars)) chunks.push_back({std::move(piece), b.line});
      continue;
    }
    if (!cur.text.empty() && cur_size + m + 2 > budget) flush();
    if (cur.text.empty()) {
      cur.line = b.line;
    } else {
      cur.text += "\n\n";
    }
    cur.text += b.text;
    cur_size += m + (cur_size ? 2 : 0);
  }
  flush();
  return chunks;
}

std::string decode_html_entities(std::string_view s) {
  static const struct {
    const char* name;
    const char* utf8;
  } named[] = {{"amp", "&"},    {"lt", "<"},     {"gt", ">"},      {"quot", "\""},    {"apos", "'"},
               {"nbsp", " "},   {"middot", "·"}, {"hellip", "…"},  {"mdash", "—"},    {"ndash", "–"},
               {"lsquo", "‘"},  {"rsquo", "’"},  {"ldquo", "“"},   {"rdquo", "”"},    {"copy", "©"},
               {"reg", "®"},    {"trade", "™"},  {"times", "×"},   {"bull", "•"},     {"laquo", "«"},
               {"raquo", "»"}};
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    // Entities are short: look for ';' within 10 bytes only (a search to the end of the text for
    // every '&' made "&&&&..." quadratic).
    size_t semi = s.substr(i, 11).find(';');
    if (semi != std::string_view::npos) semi += i;
    if (semi == std::string_view::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    bool done = false;
    if (!ent.empty() && ent[0] == '#') {
      uint32_t cp = 0;
      bool hex = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X');
      std::string_view digits = ent.substr(hex ? 2 : 1);
      bool ok = !digits.empty();
      for (char c : digits) {
        int d = std::isdigit((unsigned char)c) ? c - '0'
                : (hex && std::isxdigit((unsigned char)c)) ? (std::tolower((unsigned char)c) - 'a' + 10) : -1;
        if (d < 0 || cp > 0x10FFFF) {
          ok = false;
          break;
        }
        cp = cp * (hex ? 16 : 10) + uint32_t(d);
      }
      if (ok && cp > 0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF)) {
        utf8_append(out, cp);
        done = true;
      }
    } else {
      for (auto& n : named)
        if (ent == n.name) {
          out += n.utf8;
          done = true;
          break;
        }
    }
    if (done) i = semi;
    else out += '&';
  }
  return out;
}

std::string html_to_text(std::string_view h) {
  static const char* blocks[] = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                                 "section", "article", "table", "ul", "ol", "blockquote", "pre", "hr", "title"};
  auto ieq_prefix = [&](size_t at, std::string_view w) {
    if (at + w.size() > h.size()) return false;
    for (size_t k = 0; k < w.size(); k++)
      if (std::tolower((unsigned char)h[at + k]) != w[k]) return false;
    return true;
  };
  std::string out;
  // No '>' after this offset: a '<' past it is text, found without searching to the end again (once
  // per stray '<' made "<<<<..." quadratic).
  const size_t last_gt = h.rfind('>');
  size_t i = 0;
  while (i < h.size()) {
    if (h[i] != '<') {
      size_t j = h.find('<', i);
      if (j == std::string_view::npos) j = h.size();
      out.append(h.substr(i, j - i));
      i = j;
      continue;
    }
    if (ieq_prefix(i, "<!--")) {
      size_t e = h.find("-->", i + 4);
      i = e == std::string_view::npos ? h.size() : e + 3;
      continue;
    }
    // Elements whose content is never visible text.
    bool skipped = false;
    for (std::string_view el : {"script", "style", "head", "noscript", "template", "svg"}) {
      if (ieq_prefix(i + 1, el) && i + 1 + el.size() < h.size() && !std::isalnum((unsigned char)h[i + 1 + el.size()])) {
        std::string close = "</" + std::string(el);
        size_t e = i;
        while (true) {
          e = h.find("</", e + 1);
          if (e == std::string_view::npos || ieq_prefix(e, close)) break;
        }
        if (e == std::string_view::npos) {
          i = h.size();
        } else {
          size_t gt = h.find('>', e);
          i = gt == std::string_view::npos ? h.size() : gt + 1;
        }
        skipped = true;
        break;
      }
    }
    if (skipped) continue;
    size_t gt = last_gt == std::string_view::npos || last_gt < i ? std::string_view::npos : h.find('>', i);
    if (gt == std::string_view::npos) {  // a stray '<' is text
      out += '<';
      i++;
      continue;
    }
    size_t name_at = i + 1 + (i + 1 < h.size() && h[i + 1] == '/');
    bool block = false;
    for (std::string_view b : blocks)
      if (ieq_prefix(name_at, b) && name_at + b.size() <= gt && !std::isalnum((unsigned char)h[name_at + b.size()])) block = true;
    if (block) out += "\n\n";
    i = gt + 1;
  }
  // Collapse horizontal whitespace runs inside lines; entity decoding last so "&lt;b&gt;" stays text.
  std::string decoded = decode_html_entities(out), res;
  bool space = false;
  for (char c : decoded) {
    if (c == ' ' || c == '\t' || c == '\r') {
      space = true;
      continue;
    }
    if (space && c != '\n' && !res.empty() && res.back() != '\n') res += ' ';
    space = false;
    res += c;
  }
  return res;
}

void collect_pdf(std::string_view bytes, const std::string& path, const CollectOptions& o, CollectResult& out) {
  auto bad = [&](const std::string& reason, const std::string& where, const std::string& detail) {
    if (o.strict) fail("data", "{}: {}: {}", where, reason, detail);
    out.counts.in++;
    out.counts.drop(reason, where + ": " + detail);
  };
  if (bytes.empty()) return bad("empty file", path, "no content");
  poppler::byte_array data(bytes.begin(), bytes.end());
  std::unique_ptr<poppler::document> doc(poppler::document::load_from_data(&data));
  if (!doc) return bad("unreadable PDF", path, "poppler could not open it");
  if (doc->is_locked()) return bad("unreadable PDF", path, "encrypted");
  int pages = doc->pages();
  for (int p = 0; p < pages; p++) {
    std::unique_ptr<poppler::page> pg(doc->create_page(p));
    std::string where = fmt::format("{} page {}", path, p + 1);
    if (!pg) {
      bad("unreadable PDF page", where, "poppler could not read it");
      continue;
    }
    auto bytes8 = pg->text().to_utf8();
    std::string text(bytes8.begin(), bytes8.end());
    repair_utf8(text);
    if (text.find_first_not_of(" \t\r\n\f") == std::string::npos) {
      bad("empty PDF page", where, "no text layer (scanned image?)");
      continue;
    }
    size_t k = 0;
    for (auto& c : chunk_document(text, o, false)) {
      out.counts.in++;
      Record r;
      r.source = Source{path, 0, p + 1, 0};
      r.id = hex64(std::hash<std::string>{}(fmt::format("{}\x1f{}\x1f{}", path, p + 1, k++)));
      r.json = nlohmann::json{{"text", std::move(c.text)}};
      out.records.push_back(std::move(r));
    }
  }
}

}  // namespace lathe::data
