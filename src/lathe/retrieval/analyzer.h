// How text becomes search terms for the lexical (BM25) index. Korean attaches particles and endings
// to words (환불은 / 환불이 / 환불을 are one word to a reader and three to a whitespace tokenizer), so a
// word index misses most Korean questions. The default analyzer, "bigram", keeps every word (NFKC,
// case-folded) and adds the overlapping character bigrams of each Hangul/CJK run ("환불은" → 환불,
// 불은; a one-syllable run stays a unigram), plus the Latin/digit parts of mixed words ("15일" →
// 15일, 15, 일). SQLite FTS5 then indexes those terms with its unicode61 tokenizer and Porter
// stemming for English. "words" (unicode61 alone) and "trigram" (FTS5's trigram tokenizer: substring
// matching, but no term shorter than three characters — most Korean nouns are two syllables) are
// kept for comparison; docs/retrieval.md has the recall figures that chose "bigram".
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace lathe::retrieval {

enum class Analyzer { Bigram, Words, Trigram };

Analyzer analyzer_from_name(const std::string& name);  // throws "[index] unknown analyzer ..."
const char* analyzer_name(Analyzer a);
// The FTS5 tokenizer clause for the analyzer's table ("porter unicode61 remove_diacritics 2", "trigram").
const char* analyzer_fts_tokenizer(Analyzer a);

// NFKC + case folding, the normalization both sides of a search share.
std::string normalize_for_search(std::string_view text);

// The text stored in the FTS5 column for a chunk: for Bigram, the terms joined by spaces; for
// Words and Trigram the normalized text itself (FTS5 tokenizes it).
std::string analyze_document(std::string_view text, Analyzer a);

// The distinct terms of a query, in order of first appearance (Bigram: words + bigrams; Words:
// words; Trigram: words of at least three characters).
std::vector<std::string> query_terms(std::string_view query, Analyzer a);

// An FTS5 MATCH expression that ORs the terms, each quoted ("a" OR "b"); "" when there are none.
std::string fts_match_expression(const std::vector<std::string>& terms);

}  // namespace lathe::retrieval
