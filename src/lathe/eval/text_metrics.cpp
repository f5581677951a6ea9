#include "lathe/eval/text_metrics.h"

#include <utf8proc.h>

#include <algorithm>
#include <map>

namespace lathe::eval {

// utf8proc_encode_char, used here before core/utf8, wrote U+FFFE/U+FFFF as the single bytes 0xFE/0xFF
// (its internal markers), which is not UTF-8; utf8_append writes their 3-byte forms. Every other code
// point is encoded the same (checked over all of U+0000..U+10FFFF).
std::string utf8_from_code_points(const std::vector<char32_t>& cps) {
  std::string out;
  for (char32_t c : cps) utf8_append(out, c);
  return out;
}

std::string unicode_lower(std::string_view s) {
  std::string out;
  for (char32_t c : utf8_code_points(s)) utf8_append(out, char32_t(utf8proc_tolower(utf8proc_int32_t(c))));
  return out;
}

bool is_unicode_space(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == ' ') return true;
  if (c < 0x80) return false;
  auto cat = utf8proc_category(utf8proc_int32_t(c));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP ||
         c == 0x85;
}

static bool is_punct_or_symbol(char32_t c) {
  auto cat = utf8proc_category(utf8proc_int32_t(c));
  return (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO) ||
         (cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO);
}

// ---- chrF ----

namespace {
struct NgramStats {
  int64_t hyp = 0, ref = 0, match = 0;
};

std::vector<char32_t> without_space(std::string_view s) {
  std::vector<char32_t> out;
  for (char32_t c : utf8_code_points(s))
    if (!is_unicode_space(c)) out.push_back(c);
  return out;
}

std::map<std::u32string, int64_t> char_ngrams(const std::vector<char32_t>& s, int n) {
  std::map<std::u32string, int64_t> m;
  for (size_t i = 0; i + size_t(n) <= s.size(); i++) m[std::u32string(s.begin() + i, s.begin() + i + n)]++;
  return m;
}
}  // namespace

double chrf(std::string_view hypothesis, std::string_view reference, int char_order, double beta) {
  auto h = without_space(hypothesis), r = without_space(reference);
  double sum_p = 0, sum_r = 0;
  int effective = 0;
  for (int n = 1; n <= char_order; n++) {
    auto hm = char_ngrams(h, n), rm = char_ngrams(r, n);
    NgramStats st;
    for (auto& [g, c] : hm) st.hyp += c;
    for (auto& [g, c] : rm) st.ref += c;
    for (auto& [g, c] : hm) {
      auto it = rm.find(g);
      if (it != rm.end()) st.match += std::min(c, it->second);
    }
    if (st.hyp > 0 && st.ref > 0) {
      sum_p += double(st.match) / double(st.hyp);
      sum_r += double(st.match) / double(st.ref);
      effective++;
    }
  }
  if (effective == 0) return 0.0;
  double p = sum_p / effective, rc = sum_r / effective, b2 = beta * beta;
  if (p + rc == 0) return 0.0;
  return (1 + b2) * p * rc / (b2 * p + rc);
}

// ---- ROUGE-L ----

std::vector<std::u32string> rouge_tokens(std::string_view s, bool chars) {
  std::vector<std::u32string> out;
  std::u32string cur;
  for (char32_t c : utf8_code_points(s)) {
    c = char32_t(utf8proc_tolower(utf8proc_int32_t(c)));
    bool sep = is_unicode_space(c) || is_punct_or_symbol(c);
    if (chars) {
      if (!is_unicode_space(c)) out.push_back(std::u32string(1, c));
      continue;
    }
    if (sep) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

template <class T>
static size_t lcs_length(const std::vector<T>& a, const std::vector<T>& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); i++) {
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

double rouge_l(std::string_view hypothesis, std::string_view reference, bool chars) {
  auto h = rouge_tokens(hypothesis, chars), r = rouge_tokens(reference, chars);
  if (h.empty() || r.empty()) return 0.0;
  double lcs = double(lcs_length(h, r));
  if (lcs == 0) return 0.0;
  double p = lcs / double(h.size()), rc = lcs / double(r.size());
  return 2 * p * rc / (p + rc);
}

// ---- Levenshtein ----

int64_t levenshtein(std::string_view a_text, std::string_view b_text) {
  auto a = utf8_code_points(a_text), b = utf8_code_points(b_text);
  std::vector<int64_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = int64_t(j);
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = int64_t(i);
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// ---- diff ----

namespace {
// Words keep their trailing whitespace so that joining the pieces gives back the text.
std::vector<std::string> diff_units(std::string_view s, bool chars) {
  std::vector<std::string> out;
  std::string cur;
  bool in_space = false;
  for (char32_t c : utf8_code_points(s)) {
    if (chars) {
      std::string u;
      utf8_append(u, c);
      out.push_back(std::move(u));
      continue;
    }
    bool sp = is_unicode_space(c);
    if (!sp && in_space && !cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
    in_space = sp;
    utf8_append(cur, c);
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

void push_op(std::vector<DiffOp>& ops, DiffOp::Kind k, const std::string& t) {
  if (!ops.empty() && ops.back().kind == k)
    ops.back().text += t;
  else
    ops.push_back({k, t});
}
}  // namespace

std::vector<DiffOp> text_diff(std::string_view expected, std::string_view actual, bool chars) {
  auto a = diff_units(expected, chars), b = diff_units(actual, chars);
  std::vector<DiffOp> ops;
  // The LCS table is |a| x |b|; beyond ~4M cells show the texts as one replacement.
  constexpr size_t kMaxCells = size_t(4) << 20;
  if ((a.size() + 1) * (b.size() + 1) > kMaxCells) {
    if (!expected.empty()) ops.push_back({DiffOp::Delete, std::string(expected)});
    if (!actual.empty()) ops.push_back({DiffOp::Insert, std::string(actual)});
    return ops;
  }
  const size_t n = a.size(), m = b.size();
  // suffix LCS lengths so the walk from the front is greedy-correct
  std::vector<uint32_t> L((n + 1) * (m + 1), 0);
  auto at = [&](size_t i, size_t j) -> uint32_t& { return L[i * (m + 1) + j]; };
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      at(i, j) = a[i] == b[j] ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
  size_t i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] == b[j]) {
      push_op(ops, DiffOp::Equal, a[i]);
      i++, j++;
    } else if (at(i + 1, j) >= at(i, j + 1)) {
      push_op(ops, DiffOp::Delete, a[i++]);
    } else {
      push_op(ops, DiffOp::Insert, b[j++]);
    }
  }
  while (i < n) push_op(ops, DiffOp::Delete, a[i++]);
  while (j < m) push_op(ops, DiffOp::Insert, b[j++]);
  return ops;
}

}  // namespace lathe::eval
