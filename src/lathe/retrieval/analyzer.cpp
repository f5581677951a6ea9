#include "lathe/retrieval/analyzer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <unordered_set>

#include "lathe/core/error.h"

namespace lathe::retrieval {

namespace {

enum class Kind { Space, Word, Cjk };

// Hangul syllables and jamo, CJK ideographs, kana: scripts written without spaces between the units
// a searcher types (or, for Korean, with particles glued on), indexed as character bigrams.
bool is_cjk(utf8proc_int32_t c) {
  return (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3130 && c <= 0x318F) ||
         (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x3040 && c <= 0x30FF);
}

Kind kind_of(utf8proc_int32_t c) {
  if (is_cjk(c)) return Kind::Cjk;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC:
      return Kind::Word;
    default:
      return Kind::Space;
  }
}

struct Piece {
  std::string text;
  Kind kind;
  size_t chars;
};

// One word (a maximal run of Word/Cjk code points) split into its same-kind runs.
struct WordRuns {
  std::string word;
  size_t chars = 0;
  std::vector<Piece> runs;
};

template <class F>
void for_each_word(std::string_view norm, F&& f) {
  WordRuns w;
  auto flush = [&] {
    if (!w.word.empty()) f(w);
    w = WordRuns{};
  };
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(norm.data());
  utf8proc_ssize_t left = utf8proc_ssize_t(norm.size());
  while (left > 0) {
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) {  // invalid byte: a separator (the text was repaired upstream; this is a guard)
      flush();
      p++;
      left--;
      continue;
    }
    Kind k = kind_of(c);
    std::string_view bytes(reinterpret_cast<const char*>(p), size_t(n));
    if (k == Kind::Space) {
      flush();
    } else {
      w.word.append(bytes);
      w.chars++;
      if (w.runs.empty() || w.runs.back().kind != k) w.runs.push_back({std::string(), k, 0});
      w.runs.back().text.append(bytes);
      w.runs.back().chars++;
    }
    p += n;
    left -= n;
  }
  flush();
}

// Code point boundaries of a run, for its bigrams.
std::vector<size_t> char_starts(const std::string& s) {
  std::vector<size_t> at;
  for (size_t i = 0; i < s.size(); i++)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) at.push_back(i);
  at.push_back(s.size());
  return at;
}

template <class F>
void bigram_terms(std::string_view norm, F&& emit) {
  for_each_word(norm, [&](const WordRuns& w) {
    emit(w.word);
    if (w.runs.size() == 1 && w.runs[0].kind == Kind::Word) return;
    for (const Piece& r : w.runs) {
      if (r.kind == Kind::Word || r.chars == 1) {
        if (w.runs.size() > 1) emit(r.text);
        continue;
      }
      std::vector<size_t> at = char_starts(r.text);
      for (size_t i = 0; i + 2 < at.size(); i++) emit(r.text.substr(at[i], at[i + 2] - at[i]));
    }
  });
}

}  // namespace

Analyzer analyzer_from_name(const std::string& name) {
  if (name == "bigram") return Analyzer::Bigram;
  if (name == "words") return Analyzer::Words;
  if (name == "trigram") return Analyzer::Trigram;
  fail("index", "unknown analyzer '{}' (bigram, words or trigram)", name);
}

const char* analyzer_name(Analyzer a) {
  switch (a) {
    case Analyzer::Bigram: return "bigram";
    case Analyzer::Words: return "words";
    case Analyzer::Trigram: return "trigram";
  }
  return "?";
}

const char* analyzer_fts_tokenizer(Analyzer a) {
  return a == Analyzer::Trigram ? "trigram" : "porter unicode61 remove_diacritics 2";
}

std::string normalize_for_search(std::string_view text) {
  utf8proc_uint8_t* out = nullptr;
  auto opts = utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    utf8proc_ssize_t(text.size()), &out, opts);
  if (n < 0) {  // invalid UTF-8: index the bytes as they are rather than lose the chunk
    std::free(out);
    return std::string(text);
  }
  std::string s(reinterpret_cast<char*>(out), size_t(n));
  std::free(out);
  return s;
}

std::string analyze_document(std::string_view text, Analyzer a) {
  std::string norm = normalize_for_search(text);
  if (a != Analyzer::Bigram) return norm;
  std::string out;
  out.reserve(norm.size() * 2);
  bigram_terms(norm, [&](const std::string& t) {
    if (!out.empty()) out += ' ';
    out += t;
  });
  return out;
}

std::vector<std::string> query_terms(std::string_view query, Analyzer a) {
  std::string norm = normalize_for_search(query);
  std::vector<std::string> terms;
  std::unordered_set<std::string> seen;
  auto emit = [&](const std::string& t) {
    if (seen.insert(t).second) terms.push_back(t);
  };
  if (a == Analyzer::Bigram) {
    bigram_terms(norm, emit);
  } else {
    for_each_word(norm, [&](const WordRuns& w) {
      if (a == Analyzer::Words || w.chars >= 3) emit(w.word);
    });
  }
  return terms;
}

std::string fts_match_expression(const std::vector<std::string>& terms) {
  std::string q;
  for (const auto& t : terms) {
    if (!q.empty()) q += " OR ";
    q += '"';
    for (char c : t) {
      if (c == '"') q += '"';  // FTS5 escapes a quote inside a string by doubling it
      q += c;
    }
    q += '"';
  }
  return q;
}

}  // namespace lathe::retrieval
