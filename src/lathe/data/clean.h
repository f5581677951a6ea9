// Stage 3, clean: text normalisation applied to every message content / text, then record filters.
// Normalisation: Unicode NFC (or NFKC), control characters (keeping \n and \t), zero-width characters
// (U+200B..U+200D, U+2060, U+FEFF), HTML tags and entities left in the text, whitespace (runs of
// spaces collapsed, trailing spaces trimmed, 3+ newlines → 2).
// Filters (each one a drop reason): characters min/max, repeated lines and repeated n-grams
// (Gopher, Rae et al. 2021, table A1 thresholds as defaults), a script share (e.g. Hangul letters /
// all letters >= min_ratio), and an empty or trivially short final answer.
#pragma once
#include <optional>
#include <string>

#include "lathe/data/record.h"

namespace lathe::data {

struct CleanOptions {
  std::string normalize = "nfc";  // nfc | nfkc | none
  bool remove_control = true;
  bool remove_zero_width = true;
  bool strip_html = true;
  bool normalize_whitespace = true;
  size_t min_chars = 1;  // record text in code points
  size_t max_chars = 0;  // 0 = no limit
  // Gopher repetition: fraction of lines that are duplicates, and of characters in duplicate lines.
  double max_dup_line_fraction = 0.30;
  double max_dup_line_char_fraction = 0.20;
  // Characters covered by the most frequent 2/3/4-gram of words; by duplicated 5..10-grams.
  double max_top_ngram_fraction[3] = {0.20, 0.18, 0.16};
  double max_dup_ngram_fraction[6] = {0.15, 0.14, 0.13, 0.12, 0.11, 0.10};
  bool repetition_filter = true;
  std::string script;           // "" (off) | hangul | latin | han | kana | cyrillic
  double min_script_ratio = 0;  // share of letters in `script` among all letters
  size_t min_answer_chars = 1;  // assistant answer shorter than this → dropped (0 = off)
};

// Normalises one string in place per `o`.
void clean_text(std::string& s, const CleanOptions& o);
// What filter_record read of a kept record, for a caller that needs it again: record_text(rec) and
// its length in characters. `has` is false where it read none (pre-tokenized and preference records).
struct RecordTextFacts {
  bool has = false;
  std::string text;
  size_t chars = 0;
};
// Why the record should be dropped (a reason name for the report), or nullopt to keep it; `facts`,
// when given, receives the text it read.
std::optional<std::string> filter_record(const nlohmann::json& rec, const CleanOptions& o,
                                         RecordTextFacts* facts = nullptr);
// Cleans and filters all records (in parallel); drops are counted in `counts`.
void clean_records(std::vector<Record>& records, const CleanOptions& o, StageCounts& counts);
// clean_records for one record, in two halves: clean_record cleans every text of `rec` and says why it
// is dropped (filter_record); clean_drop counts a dropped record in `counts` (its reason and the start
// of its text), called in record order. The streaming driver runs the first half inside its
// per-record pass, so a record's text is cleaned, checked for personal data and hashed while in cache.
std::optional<std::string> clean_record(nlohmann::json& rec, const CleanOptions& o, RecordTextFacts* facts = nullptr);
void clean_drop(const Record& r, const std::string& why, StageCounts& counts);

// Building blocks, exposed for tests.
std::string strip_html_remnants(std::string_view s);
struct RepetitionStats {
  double dup_line_fraction = 0, dup_line_char_fraction = 0;
  double top_ngram[3] = {0, 0, 0};  // n = 2, 3, 4
  double dup_ngram[6] = {0, 0, 0, 0, 0, 0};  // n = 5..10
};
RepetitionStats repetition_stats(std::string_view text);
// Share of letters of `script` among letters (0 when there are no letters).
double script_ratio(std::string_view text, const std::string& script);
// Letter counts per script, for the report's script mix.
void count_scripts(std::string_view text, std::map<std::string, size_t>& counts);
// The same counts without the map: the scripts with a nonzero count in the order of their names (the
// map's order) into `out`, which has room for kScriptKinds; returns how many. The streaming prepare
// writes them for every record, where a map cost a node and a name string per script.
struct ScriptCount {
  std::string_view name;
  size_t count;
};
constexpr size_t kScriptKinds = 6;
size_t count_scripts_in_name_order(std::string_view text, ScriptCount* out);

}  // namespace lathe::data
