// Reference-based text similarity for assertions: chrF, ROUGE-L, Levenshtein, and the word/char
// diff the report shows. Everything works on Unicode code points (UTF-8 in, invalid bytes count as
// U+FFFD), so Korean syllables are single characters. Scores are in [0, 1].
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/core/utf8.h"

namespace lathe::eval {

using ::lathe::utf8_code_points;  // core/utf8.h: strict, each invalid byte is U+FFFD
std::string utf8_from_code_points(const std::vector<char32_t>& cps);
std::string unicode_lower(std::string_view s);  // Unicode simple lowercase (utf8proc)
bool is_unicode_space(char32_t c);

// chrF (Popović 2015) as sacreBLEU computes a sentence score with its defaults: character n-grams
// n = 1..char_order taken from the text with whitespace removed, word n-grams off (word_order 0),
// beta 2. Per order n: precision P_n = matched / hypothesis n-grams, recall R_n = matched / reference
// n-grams (matched = sum over n-grams of min(count_hyp, count_ref)). P and R are the means of P_n and
// R_n over the orders where both sides have n-grams; chrF = (1 + b^2) P R / (b^2 P + R).
// Returned as a fraction: sacreBLEU's 0..100 score / 100.
double chrf(std::string_view hypothesis, std::string_view reference, int char_order = 6, double beta = 2.0);

// ROUGE-L F-measure (Lin 2004, as Google's rouge-score reports it, beta 1): LCS of the token
// sequences, P = LCS / |hyp|, R = LCS / |ref|, F = 2PR / (P + R). Tokens are lowercased; with
// `chars` false they are whitespace-separated words with punctuation treated as whitespace (for
// Korean this gives eojeol — space-separated words — so a different particle makes the word differ);
// with `chars` true every non-space code point is a token (finer for Korean).
double rouge_l(std::string_view hypothesis, std::string_view reference, bool chars = false);

// Edit distance (insert, delete, substitute, each cost 1) between code-point sequences.
int64_t levenshtein(std::string_view a, std::string_view b);

// Tokens for ROUGE-L and the diff: lowercase words or characters as described above.
std::vector<std::u32string> rouge_tokens(std::string_view s, bool chars);

// A minimal diff of `actual` against `expected`, as runs of equal / deleted (in expected only) /
// inserted (in actual only) text. Words (whitespace kept with the word before it) by default,
// code points with `chars`. LCS-based; long inputs fall back to a whole-text replacement.
struct DiffOp {
  enum Kind { Equal, Delete, Insert } kind;
  std::string text;
};
std::vector<DiffOp> text_diff(std::string_view expected, std::string_view actual, bool chars = false);

}  // namespace lathe::eval
