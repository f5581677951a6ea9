// UTF-8 decoding, encoding, validation and counting: the one copy every layer uses.
//
// Invalid input has three treatments, each kept because a caller's output depends on it:
//   - strict (utf8_decode, valid_utf8, utf8_sanitize, repair_utf8, utf8_code_points): the Unicode
//     well-formedness table (no overlongs, surrogates or values past U+10FFFF, as Rust's from_utf8);
//     each invalid byte on its own is one error / one U+FFFD.
//   - maximal subparts (utf8_lossy): a truncated but well-started sequence is one U+FFFD, as Rust's
//     String::from_utf8_lossy (the tokenizers' decoders must match HF tokenizers there).
//   - unchecked (utf8_decode_unchecked): for text already made valid; it never fails, and what it
//     returns for a broken sequence is only defined so that a hot loop need not branch on errors.
// Counting (utf8_length, utf8_offset) counts bytes that are not continuation bytes, which is the
// code-point count for valid text and never fails on invalid text.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lathe {

inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";  // U+FFFD

inline bool utf8_is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Length in bytes a sequence starting with lead byte b claims (1 for a byte that cannot lead).
inline int utf8_lead_len(uint8_t b) {
  return b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
}

// Strict: the code point at s[i] (i < s.size()) with *len its length (>= 1); -1 with *len = 1 when
// the bytes there are not a well-formed sequence.
int32_t utf8_decode(std::string_view s, size_t i, int* len);

// Unchecked: the code point at s[i] for text known to be valid; advances i. On a broken sequence:
// the length comes from the lead byte's top bits (a stray continuation byte is one byte and its own
// value), continuation bytes are taken as they are, and bytes missing at the end are left out of the
// value (i still advances by the claimed length, so it may pass s.size()).
inline uint32_t utf8_decode_unchecked(std::string_view s, size_t& i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    i++;
    return c;
  }
  const int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  uint32_t cp = n == 4 ? c & 0x07 : n == 3 ? c & 0x0F : n == 2 ? c & 0x1F : c;
  for (int k = 1; k < n && i + k < s.size(); k++) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += size_t(n);
  return cp;
}

// Appends the UTF-8 bytes of cp. Callers pass a scalar value (< U+110000, no surrogate); a larger
// value still gets the 4-byte pattern with its high bits cut, never a short or empty write.
void utf8_append(std::string& out, uint32_t cp);

// Strict validation: simdjson's validator where the build has it (SIMD, chosen at run time), else
// valid_utf8_scalar. Both accept exactly the strict decoder's inputs (tests/core/utf8_unit.cpp).
bool valid_utf8(std::string_view s);
// The portable validator, with an 8-byte ASCII fast path.
bool valid_utf8_scalar(std::string_view s);

// Replaces each invalid byte (strict) with U+FFFD into `out`; returns the number replaced. Valid input
// returns 0 and leaves `out` empty (use the input as it is).
size_t utf8_sanitize(std::string_view in, std::string& out);
// The same in place: `s` is rewritten only when something was replaced.
size_t repair_utf8(std::string& s);

// Maximal subparts: each maximal invalid subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view s);

// Code points of s, strict; each invalid byte is U+FFFD.
std::vector<char32_t> utf8_code_points(std::string_view s);

// Number of code points (bytes that are not continuation bytes).
size_t utf8_length(std::string_view s);
// The same count, one byte at a time (the reference utf8_length is tested against).
size_t utf8_length_bytewise(std::string_view s);
// Byte offset of code point number n (0-based) of s; s.size() when s is shorter.
size_t utf8_offset(std::string_view s, size_t n);
// Start of the character holding byte k: k moved back over continuation bytes, never below lo.
inline size_t utf8_char_start(std::string_view s, size_t k, size_t lo = 0) {
  while (k > lo && utf8_is_continuation(s[k])) k--;
  return k;
}

}  // namespace lathe
