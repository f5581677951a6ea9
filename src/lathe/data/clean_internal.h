// Pieces of the clean stage shared between its source files and its tests (see clean.h for the API).
#pragma once
#include <map>
#include <string>
#include <string_view>

#include "lathe/data/clean.h"

namespace lathe::data::clean_detail {

// True when clean_text leaves `s` as it is under every option set: only ASCII printable characters
// other than '<' and '&', Hangul syllables, CJK unified ideographs (U+4E00-U+9FFF) and, for NFC,
// Latin letters U+00C0-U+02FF, separated by single spaces or one or two newlines, with no separator
// at either end. Most chat text passes, and clean_text then neither copies nor normalizes it.
bool already_clean(std::string_view s, bool compat);
// already_clean one character at a time, without its 64-byte blocks (AVX2): the reference its test
// compares with.
bool already_clean_bytewise(std::string_view s, bool compat);

// clean_text without the already_clean shortcut: the general path, kept callable so that tests can
// check the shortcut against it.
void clean_text_general(std::string& s, const CleanOptions& o);

// repetition_stats; words are runs between ASCII spaces, tabs, CR and LF.
RepetitionStats repetition_stats_of(std::string_view text);
// What the repetition filter makes of repetition_stats_of(text) under `o`'s thresholds: 0 keep (also
// for texts of fewer than 20 words), 1 repeated lines, 2 repeated n-grams. N-gram sizes whose fractions
// cannot pass a threshold are not counted.
int repetition_verdict(std::string_view text, const CleanOptions& o);
// repetition_verdict's shortcut alone: true when bounds from hashed counts show that no n-gram fraction
// of `text` passes its threshold (every threshold >= 0), so that the verdict is 0 unless lines repeat.
// False says nothing (the exact count decides). Kept callable for its test.
bool repetition_pass_proven(std::string_view text, const CleanOptions& o);

// count_scripts one byte (or character) at a time, without its eight-bytes-at-a-time ASCII runs: the
// reference its tests compare with.
void count_scripts_bytewise(std::string_view text, std::map<std::string, size_t>& counts);

}  // namespace lathe::data::clean_detail
