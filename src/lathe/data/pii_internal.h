// Pieces of the PII detector shared between its source files (see pii.h for the public API).
#pragma once
#include <string_view>
#include <vector>

#include "lathe/data/pii.h"

namespace lathe::data::pii_detail {

// One interpretation of a span. Several candidates may cover the same bytes (a 13-digit run may be an
// RRN or a card number); context scoring and overlap resolution pick one.
struct Candidate {
  PiiType type;
  size_t begin, end;
  float base;          // confidence from shape and validators alone
  float boost;         // added when a positive context word for `type` is near
  const char* rule;
};
using Candidates = std::vector<Candidate>;

inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
inline bool is_alnum(unsigned char c) { return is_digit(c) || is_alpha(c); }
inline bool is_word(unsigned char c) { return is_alnum(c) || c == '_'; }
inline bool is_hex(unsigned char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

// Scanners. Each starts at `pos`, appends candidates and returns the position to continue from (> pos).
// At a digit, '+' or '('. `after_label`: the digits follow a phone label glued to them ("Tel010-..."),
// which lifts the rule that a number glued to a word is a code.
size_t scan_number(std::string_view s, size_t pos, Candidates& out, bool after_label = false);
// At a full-width digit or parenthesis (bytes EF BC ..): the run read as ASCII, offsets mapped back.
size_t scan_wide_number(std::string_view s, size_t pos, Candidates& out);
size_t scan_word(std::string_view s, size_t pos, Candidates& out);    // at an ASCII letter word start
void scan_email(std::string_view s, size_t at, Candidates& out);      // at '@'
size_t scan_ipv6(std::string_view s, size_t colon, Candidates& out);  // at ':'
size_t scan_private_key(std::string_view s, size_t pos, Candidates& out);  // at '-'

// The first position >= i whose byte may start a candidate (a digit, an ASCII letter, one of + ( @ : -,
// or EF, a full-width form's lead), n when none does: detect's skip over Korean text, spaces and
// punctuation. `blocks`: 32 bytes at a time with AVX2 where the CPU has it (the same answer).
size_t skip_inert(const unsigned char* b, size_t i, size_t n, bool blocks = true);

// Final confidence of a candidate after looking at the words around it (pii_context.cpp).
float score_with_context(std::string_view s, const Candidate& c);

}  // namespace lathe::data::pii_detail
