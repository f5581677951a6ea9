// Pieces of the clean stage shared between its source files and its tests (see clean.h for the API).
#pragma once
#include <string>
#include <string_view>

#include "lathe/data/clean.h"

namespace lathe::data::clean_detail {

// True when clean_text leaves `s` as it is under every option set: only ASCII printable characters
// other than '<' and '&', Hangul syllables, CJK unified ideographs (U+4E00-U+9FFF) and, for NFC,
// Latin letters U+00C0-U+02FF, separated by single spaces or one or two newlines, with no separator
// at either end. Most chat text passes, and clean_text then neither copies nor normalizes it.
bool already_clean(std::string_view s, bool compat);

// clean_text without the already_clean shortcut: the general path, kept callable so that tests can
// check the shortcut against it.
void clean_text_general(std::string& s, const CleanOptions& o);

// The words of `text` (runs between ASCII spaces, tabs, CR and LF) into `words`; their count.
size_t split_words(std::string_view text, std::vector<std::string_view>& words);
// repetition_stats over text already split into `words` (split_words of the same text).
RepetitionStats repetition_stats_of(std::string_view text, const std::vector<std::string_view>& words);

}  // namespace lathe::data::clean_detail
