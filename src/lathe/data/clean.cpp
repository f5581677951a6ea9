#include "lathe/data/clean.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <cstring>
#include <unordered_set>

#include "lathe/core/utf8.h"
#include "lathe/data/clean_internal.h"
#include "lathe/data/collect.h"
#include "lathe/data/text_blocks_avx2.h"

namespace lathe::data {

namespace {

// Code points whose presence means NFC/NFKC could change the text. Precomposed Hangul syllables,
// CJK unified ideographs, general punctuation and ASCII are stable, so most Korean and English text
// skips utf8proc entirely (it costs ~10x the rest of cleaning).
bool may_change_under_nfc(std::string_view s, bool compat) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    // Hangul syllables, decoded as utf8_decode_unchecked does (input is valid UTF-8 after collect, so
    // clean decodes unchecked throughout)
    if (c >= 0xEA && c <= 0xED && i + 2 < s.size()) {
      const uint32_t cp = ((c & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                          (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
      if (cp >= 0xAC00 && cp <= 0xD7A3) {
        i += 3;
        continue;
      }
    }
    uint32_t cp = utf8_decode_unchecked(s, i);
    if (cp >= 0xAC00 && cp <= 0xD7A3) continue;
    if (cp >= 0x4E00 && cp <= 0x9FFF) continue;
    if (!compat && cp >= 0x2010 && cp <= 0x2027) continue;
    if (!compat && cp >= 0x3001 && cp <= 0x303F) continue;
    if (cp < 0x0300 && !compat) continue;  // Latin-1 and Latin Extended letters are precomposed
    return true;
  }
  return false;
}

bool zero_width(uint32_t cp) { return (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF || cp == 0x00AD; }
bool control(uint32_t cp) { return (cp < 0x20 && cp != '\n' && cp != '\t') || cp == 0x7F || (cp >= 0x80 && cp < 0xA0); }

// Bytes of the character at s[i] when no cleaning option can touch it (it is no space, control,
// zero-width or exotic-space character and is well formed), else 0. Those characters all start with
// a byte below 0x21, 0x7F, 0xC2, 0xE2, 0xE3 or 0xEF (or are 4-byte); overlong forms (0xC0, 0xC1,
// 0xE0) are left to the careful path, which decodes them as clean_text always has.
inline size_t plain_char_bytes(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c >= 0x21 && c <= 0x7E) return 1;
  if (c >= 0xC3 && c <= 0xDF) return i + 1 < s.size() && utf8_is_continuation(s[i + 1]) ? 2 : 0;
  if ((c == 0xE1 || (c >= 0xE4 && c <= 0xEE)) && i + 2 < s.size() && utf8_is_continuation(s[i + 1]) &&
      utf8_is_continuation(s[i + 2]))
    return 3;
  return 0;
}

// Scripts by index, so per-character counting needs no string compares or map lookups.
constexpr const char* kScripts[] = {"latin", "hangul", "han", "kana", "cyrillic", "other"};

int script_id(uint32_t cp) {
  if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7)) return 0;
  if ((cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F)) return 1;
  if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF)) return 2;
  if (cp >= 0x3040 && cp <= 0x30FF) return 3;
  if (cp >= 0x0400 && cp <= 0x04FF) return 4;
  if (cp < 0x80) return -1;
  auto cat = utf8proc_category(int32_t(cp));
  if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) return 5;
  return -1;
}

}  // namespace

std::string strip_html_remnants(std::string_view s) {
  static const std::unordered_set<std::string> tags = {
      "br", "p", "div", "span", "b", "i", "u", "em", "strong", "a", "img", "li", "ul", "ol", "table", "tr",
      "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "font", "center", "sup", "sub", "hr", "tbody", "thead",
      "blockquote", "small", "big", "s", "strike", "label", "section", "article", "nav", "header", "footer"};
  static const std::unordered_set<std::string> breaking = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4",
                                                           "h5", "h6", "hr", "table", "ul", "ol", "blockquote"};
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '<') {
      size_t j = i + 1 + (i + 1 < s.size() && s[i + 1] == '/');
      size_t k = j;
      while (k < s.size() && std::isalnum(static_cast<unsigned char>(s[k]))) k++;
      std::string name(s.substr(j, k - j));
      for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      size_t gt = s.find('>', k);
      size_t lt = s.find('<', k);
      if (!name.empty() && tags.count(name) && gt != std::string_view::npos && gt - i < 400 && (lt == std::string_view::npos || lt > gt) &&
          (k == gt || s[k] == ' ' || s[k] == '/' || s[k] == '\t')) {
        if (breaking.count(name)) out += '\n';
        i = gt;
        continue;
      }
    }
    out += s[i];
  }
  if (out.find('&') != std::string::npos) return decode_html_entities(out);
  return out;
}

void clean_detail::clean_text_general(std::string& s, const CleanOptions& o) {
  if (o.strip_html && (s.find('<') != std::string::npos || s.find('&') != std::string::npos)) s = strip_html_remnants(s);
  bool compat = o.normalize == "nfkc";
  if (o.normalize != "none" && may_change_under_nfc(s, compat)) {
    int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (compat ? UTF8PROC_COMPAT : 0);
    utf8proc_uint8_t* res = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &res,
                          utf8proc_option_t(opts));
    if (n >= 0 && res) s.assign(reinterpret_cast<char*>(res), size_t(n));
    free(res);
  }
  // One pass: drop control / zero-width characters, map exotic spaces to ' ', normalise whitespace.
  std::string out;
  out.reserve(s.size());
  const bool ws = o.normalize_whitespace;
  size_t pending_spaces = 0, pending_newlines = 0;
  bool line_start = true;
  // Before an ordinary character: the spaces and newlines held back are written out.
  auto flush_pending = [&] {
    if (pending_newlines) {
      if (!out.empty()) out.append(std::min<size_t>(pending_newlines, 2), '\n');
      pending_newlines = 0;
      if (line_start && pending_spaces && !out.empty()) out.append(pending_spaces, ' ');  // keep indentation
      pending_spaces = 0;
    } else if (pending_spaces) {
      if (!out.empty()) out.append(line_start ? pending_spaces : 1, ' ');
      pending_spaces = 0;
    }
    line_start = false;
  };
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    // Fast path: a run of characters no option touches is copied whole.
    if (size_t k = plain_char_bytes(s, i)) {
      size_t j = i + k;
      while (j < n && (k = plain_char_bytes(s, j))) j += k;
      if (ws) flush_pending();
      out.append(s, i, j - i);
      i = j;
      continue;
    }
    size_t at = i;
    uint32_t cp = utf8_decode_unchecked(s, i);
    if (cp == '\r') {
      if (i < s.size() && s[i] == '\n') continue;  // CRLF → LF
      cp = '\n';
    }
    if (o.remove_zero_width && zero_width(cp)) continue;
    if (o.remove_control && control(cp)) continue;
    if (ws && (cp == 0xA0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F)) cp = ' ';
    if (ws) {
      if (cp == ' ' || (cp == '\t' && !line_start)) {
        pending_spaces++;
        continue;
      }
      if (cp == '\n') {
        pending_spaces = 0;  // trailing spaces dropped
        pending_newlines++;
        line_start = true;
        continue;
      }
      flush_pending();
      if (cp == '\t') {
        out += '\t';
        continue;
      }
    }
    out.append(s, at, i - at);
  }
  s.swap(out);
}

namespace {
// What each byte is to already_clean: a printable ASCII character no option touches, a space, a
// newline, the lead byte of a two-byte Latin letter (U+00C0-U+02FF), of a CJK ideograph or of a Hangul
// syllable (three bytes, the range checked after decoding), or anything else (0: the general path).
enum QuickClass : uint8_t { kQOther = 0, kQAscii, kQSpace, kQNewline, kQLatin, kQThreeByte };
struct QuickTable {
  uint8_t t[256] = {};
  constexpr QuickTable() {
    for (int c = 0x21; c <= 0x7E; c++) t[c] = kQAscii;
    t[int('<')] = t[int('&')] = kQOther;  // HTML remnants
    t[int(' ')] = kQSpace;
    t[int('\n')] = kQNewline;
    for (int c = 0xC3; c <= 0xCB; c++) t[c] = kQLatin;  // C2 holds NBSP, the soft hyphen and C1 controls
    for (int c = 0xE4; c <= 0xED; c++) t[c] = kQThreeByte;
  }
};
constexpr QuickTable kQuick;
}  // namespace

#ifdef LATHE_TEXT_AVX2
namespace {
// 64 bytes p[0, 64) to bit masks (bit b: byte b) of the classes already_clean accepts in bulk.
struct QuickMasks {
  uint64_t ascii, space, newline, cont, lead3, bad3;  // bad3: a three-byte lead outside Hangul / CJK
};
LATHE_TARGET_AVX2 inline uint64_t movemask64(__m256i lo, __m256i hi) {
  return uint32_t(_mm256_movemask_epi8(lo)) | (uint64_t(uint32_t(_mm256_movemask_epi8(hi))) << 32);
}
LATHE_TARGET_AVX2 inline QuickMasks quick_masks(const unsigned char* p) {
  QuickMasks m;
  __m256i ascii[2], space[2], newline[2], cont[2], lead3[2], bad3[2];
  for (int h = 0; h < 2; h++) {
    using namespace text_blocks;
    const Window w = window(p + 32 * h);  // the caller keeps p[64, 66) inside the text
    const __m256i x = w.x, n1 = w.n1;
    ascii[h] = _mm256_andnot_si256(_mm256_or_si256(eq(x, '<'), eq(x, '&')),
                                   _mm256_and_si256(_mm256_cmpgt_epi8(x, _mm256_set1_epi8(0x20)),
                                                    _mm256_cmpgt_epi8(_mm256_set1_epi8(0x7F), x)));
    space[h] = eq(x, ' ');
    newline[h] = eq(x, '\n');
    cont[h] = continuation(x);
    lead3[h] = _mm256_and_si256(ge(x, 0xE4), _mm256_xor_si256(ge(x, 0xEE), _mm256_set1_epi8(-1)));
    // Leads E4-ED are U+4000-U+DFFF: keep U+4E00-U+9FFF and U+AC00-U+D7A3, as the scalar loop does.
    const __m256i lt = _mm256_set1_epi8(-1);
    bad3[h] = _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(eq(x, 0xE4), _mm256_xor_si256(ge(n1, 0xB8), lt)),   // < U+4E00
                        _mm256_and_si256(eq(x, 0xEA), _mm256_xor_si256(ge(n1, 0xB0), lt))),  // < U+AC00
        past_last_syllable(w));                                                              // > U+D7A3
  }
  m.ascii = movemask64(ascii[0], ascii[1]);
  m.space = movemask64(space[0], space[1]);
  m.newline = movemask64(newline[0], newline[1]);
  m.cont = movemask64(cont[0], cont[1]);
  m.lead3 = movemask64(lead3[0], lead3[1]);
  m.bad3 = movemask64(bad3[0], bad3[1]);
  return m;
}

// already_clean's loop over the text from i (a character boundary, i >= 2, i + 64 <= n), 60 bytes or
// so at once: the window is s[i - 2, i + 62), so that the two bytes before i say what came last and a
// character that starts before i + 60 can be seen whole. Only a stretch of printable ASCII, single
// spaces, one or two newlines and Hangul / CJK characters is taken (anything else, Latin letters
// included, is left to the byte loop, which decides); *last is set as the byte loop would have it.
// Returns the bytes taken, 0 for none.
LATHE_TARGET_AVX2 size_t already_clean_block(const unsigned char* s, size_t i, int* last) {
  const QuickMasks m = quick_masks(s + i - 2);
  constexpr uint64_t kIn = 0x3FFFFFFFFFFFFFFCull;  // bits 2-61: s[i, i + 60)
  const uint64_t ends = m.ascii | m.cont;             // the last byte of a character
  if (~(m.ascii | m.space | m.newline | m.cont | m.lead3) & kIn) return 0;
  if (m.bad3 & kIn) return 0;
  // A lead has its two continuation bytes after it, and every continuation byte (up to bit 63) a lead
  // one or two before it: the three-byte characters are whole, and nothing else holds a 10xxxxxx byte.
  if (m.lead3 & kIn & ~((m.cont >> 1) & (m.cont >> 2))) return 0;
  if (m.cont & ~uint64_t(3) & ~((m.lead3 << 1) | (m.lead3 << 2))) return 0;
  // A space after a character; a newline after a character, or after one newline after a character.
  if (m.space & kIn & ~(ends << 1)) return 0;
  if (m.newline & kIn & ~((ends << 1) | ((m.newline << 1) & (ends << 2)))) return 0;
  // Take s[i, i + 60) and the rest of a character that starts before i + 60.
  size_t take = 60;
  if (m.cont >> 62 & 1) take += 1 + (m.cont >> 63 & 1);
  const size_t b = take + 1;  // the bit of the last byte taken
  if (ends >> b & 1) *last = 1;
  else if (m.space >> b & 1) *last = 2;
  else *last = (m.newline >> (b - 1) & 1) ? 4 : 3;
  return take;
}
}  // namespace
#endif

namespace {
bool already_clean_loop(std::string_view sv, bool compat, bool blocks) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const size_t n = sv.size();
  // What came last: 0 nothing, 1 a character, 2 a space, 3 one newline, 4 two newlines. A space must
  // follow a character (runs of spaces, trailing spaces and indentation change), a newline a character
  // or one newline, and the text must end in a character.
  int last = 0;
  size_t i = 0;
#ifdef LATHE_TEXT_AVX2
  // where a block is tried next (after a refused one, 64 bytes on)
  size_t next_block = blocks && cpu_text_avx2() ? 2 : SIZE_MAX;
#endif
  while (i < n) {
#ifdef LATHE_TEXT_AVX2
    if (i >= next_block && i + 64 <= n) {
      if (const size_t took = already_clean_block(s, i, &last)) {
        i += took;
        continue;
      }
      next_block = i + 64;
    }
#else
    (void)blocks;
#endif
    switch (kQuick.t[s[i]]) {
      case kQAscii:
        do i++;
        while (i < n && kQuick.t[s[i]] == kQAscii);
        last = 1;
        break;
      case kQSpace:
        if (last != 1) return false;
        last = 2;
        i++;
        break;
      case kQNewline:
        if (last != 1 && last != 3) return false;
        last = last == 1 ? 3 : 4;
        i++;
        break;
      case kQLatin:  // precomposed under NFC, not under NFKC (ª, ², ¼ have compatibility forms)
        if (compat || i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return false;
        i += 2;
        last = 1;
        break;
      case kQThreeByte:
        do {  // a run of them (a Korean word) without going back to the switch
          if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return false;
          const uint32_t cp = ((s[i] & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
          if (!(cp >= 0xAC00 && cp <= 0xD7A3) && !(cp >= 0x4E00 && cp <= 0x9FFF)) return false;
          i += 3;
        } while (i < n && kQuick.t[s[i]] == kQThreeByte);
        last = 1;
        break;
      default:
        return false;
    }
  }
  return n == 0 || last == 1;
}
}  // namespace

bool clean_detail::already_clean(std::string_view sv, bool compat) { return already_clean_loop(sv, compat, true); }
bool clean_detail::already_clean_bytewise(std::string_view sv, bool compat) {
  return already_clean_loop(sv, compat, false);
}

void clean_text(std::string& s, const CleanOptions& o) {
  // Most texts are already clean: checking costs one read, where the general path copies the text.
  if (clean_detail::already_clean(s, o.normalize == "nfkc")) return;
  clean_detail::clean_text_general(s, o);
}

namespace {

#ifdef LATHE_TEXT_AVX2
// count_scripts_from's Korean/English text 30 bytes or so at a time: from i (a character boundary,
// i + 34 <= n), when p[i, i + 30) holds only ASCII bytes and whole Hangul syllables (lead EA-ED with
// two continuation bytes, U+AC00-U+D7A3), adds its ASCII letters to local[0] and its syllables to
// local[1] and returns the bytes taken (30, and the rest of a syllable that starts there); 0 (nothing
// counted) for anything else, which the character loop decides.
LATHE_TARGET_AVX2 size_t count_scripts_block(const unsigned char* p, size_t* local) {
  using namespace text_blocks;
  const Window w = window(p);
  const __m256i x = w.x;
  const uint32_t ascii = ~uint32_t(_mm256_movemask_epi8(x));
  const uint32_t letter = uint32_t(_mm256_movemask_epi8(in(_mm256_or_si256(x, _mm256_set1_epi8(0x20)), 'a', 'z'))) & ascii;
  const uint32_t cont = uint32_t(_mm256_movemask_epi8(continuation(x)));
  // Leads EA-ED are U+A000-U+DFFF: syllables are U+AC00 (EA B0 80) to U+D7A3 (ED 9E A3), whole.
  const __m256i syllable_lead = _mm256_andnot_si256(
      _mm256_or_si256(_mm256_andnot_si256(ge(w.n1, 0xB0), eq(x, 0xEA)), past_last_syllable(w)),
      _mm256_and_si256(in(x, 0xEA, 0xED), _mm256_and_si256(continuation(w.n1), continuation(w.n2))));
  const uint32_t lead = uint32_t(_mm256_movemask_epi8(syllable_lead));
  constexpr uint32_t kIn = (1u << 30) - 1;  // p[0, 30)
  if (~(ascii | lead | cont) & kIn) return 0;                 // another lead or a bad byte
  if (cont & ~((lead << 1) | (lead << 2))) return 0;          // a continuation byte without its syllable
  local[0] += size_t(__builtin_popcount(letter & kIn));
  local[1] += size_t(__builtin_popcount(lead & kIn));
  size_t take = 30;
  if (cont >> 30 & 1) take += 1 + (cont >> 31 & 1);
  return take;
}
#endif

// Script counts by index (kScripts) from position i on, one character at a time.
void count_scripts_from(std::string_view text, size_t i, size_t* local, bool ascii_words) {
  const size_t n = text.size();
#ifdef LATHE_TEXT_AVX2
  static const bool avx2 = cpu_text_avx2();
  size_t next_block = ascii_words && avx2 ? i : SIZE_MAX;  // where a block is tried next
#endif
  while (i < n) {
#ifdef LATHE_TEXT_AVX2
    if (i >= next_block && i + 34 <= n) {
      if (const size_t took = count_scripts_block(reinterpret_cast<const unsigned char*>(text.data()) + i, local)) {
        i += took;
        continue;
      }
      next_block = i + 32;
    }
#endif
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      // Eight ASCII bytes at a time: a byte x (high bit clear) is a letter when (x | 0x20) is in
      // 'a'..'z'; adding 0x80 - 'a' sets its high bit when it is >= 'a', and 0x80 + 'z' minus it keeps
      // the high bit when it is <= 'z' (no carry or borrow crosses a byte, since every byte is < 0x80).
      if (ascii_words && i + 8 <= n) {
        uint64_t v;
        std::memcpy(&v, text.data() + i, 8);
        constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
        if (!(v & kHigh)) {
          const uint64_t x = v | (kOnes * 0x20);
          const uint64_t ge_a = x + kOnes * (0x80 - 'a');
          const uint64_t le_z = kOnes * (0x80 + 'z') - x;
          local[0] += size_t(__builtin_popcountll(ge_a & le_z & kHigh));
          i += 8;
          continue;
        }
      }
      local[0] += (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
      i++;
      continue;
    }
    // Precomposed Hangul (U+AC00-U+D7A3: EA B0 80 .. ED 9E A3) without decoding.
    if (c >= 0xEA && c <= 0xED && i + 2 < n) {
      const uint32_t cp = ((c & 0x0Fu) << 12) | ((static_cast<unsigned char>(text[i + 1]) & 0x3Fu) << 6) |
                          (static_cast<unsigned char>(text[i + 2]) & 0x3Fu);
      if (cp >= 0xAC00 && cp <= 0xD7A3) {
        local[1]++;
        i += 3;
        continue;
      }
    }
    const int id = script_id(utf8_decode_unchecked(text, i));
    if (id >= 0) local[id]++;
  }
}

void add_counts(const size_t* local, std::map<std::string, size_t>& counts) {
  for (size_t k = 0; k < std::size(kScripts); k++)
    if (local[k]) counts[kScripts[k]] += local[k];
}

}  // namespace

void count_scripts(std::string_view text, std::map<std::string, size_t>& counts) {
  size_t local[std::size(kScripts)] = {};
  count_scripts_from(text, 0, local, true);
  add_counts(local, counts);
}

size_t count_scripts_in_name_order(std::string_view text, ScriptCount* out) {
  static_assert(std::size(kScripts) == kScriptKinds);
  // kScripts' indices sorted by name, once.
  static const std::array<size_t, kScriptKinds> order = [] {
    std::array<size_t, kScriptKinds> o;
    for (size_t k = 0; k < kScriptKinds; k++) o[k] = k;
    std::sort(o.begin(), o.end(), [](size_t a, size_t b) { return std::string_view(kScripts[a]) < kScripts[b]; });
    return o;
  }();
  size_t local[kScriptKinds] = {};
  count_scripts_from(text, 0, local, true);
  size_t n = 0;
  for (const size_t k : order)
    if (local[k]) out[n++] = {kScripts[k], local[k]};
  return n;
}

void clean_detail::count_scripts_bytewise(std::string_view text, std::map<std::string, size_t>& counts) {
  size_t local[std::size(kScripts)] = {};
  count_scripts_from(text, 0, local, false);
  add_counts(local, counts);
}

double script_ratio(std::string_view text, const std::string& script) {
  int want = -2;  // an unknown script name matches no letter
  for (size_t k = 0; k < std::size(kScripts); k++)
    if (script == kScripts[k]) want = int(k);
  size_t letters = 0, in_script = 0;
  for (size_t i = 0; i < text.size();) {
    const int id = script_id(utf8_decode_unchecked(text, i));
    if (id >= 0) {
      letters++;
      in_script += id == want;
    }
  }
  return letters ? double(in_script) / double(letters) : 0.0;
}

namespace {

std::optional<std::string> repetition_reason(std::string_view text, const CleanOptions& o) {
  if (!o.repetition_filter) return std::nullopt;
  switch (clean_detail::repetition_verdict(text, o)) {
    case 1: return "repeated lines";
    case 2: return "repeated n-grams";
    default: return std::nullopt;
  }
}

size_t trimmed_length(const std::string& a) {
  size_t b = a.find_first_not_of(" \t\n"), e = a.find_last_not_of(" \t\n");
  return b == std::string::npos ? 0 : utf8_length(std::string_view(a).substr(b, e - b + 1));
}

// A preference record is filtered per sequence the trainer builds (prompt + one answer): a chosen
// answer that repeats much of the rejected one is a normal correction, not repetition. Every answer
// is checked for emptiness, and a pair whose answers are equal teaches nothing.
std::optional<std::string> filter_preference(const nlohmann::json& rec, const CleanOptions& o) {
  const PreferenceTexts t = preference_texts(rec);
  for (const std::string& answer : t.answers) {
    const std::string seq = t.prompt.empty() ? answer : t.prompt + "\n" + answer;
    const size_t n = utf8_length(seq);
    if (n < std::max<size_t>(o.min_chars, 1)) return n == 0 ? "empty text" : "too short (chars)";
    if (o.max_chars && n > o.max_chars) return "too long (chars)";
    const size_t alen = trimmed_length(answer);
    if (o.min_answer_chars && alen < o.min_answer_chars) return alen == 0 ? "empty answer" : "trivially short answer";
    if (auto why = repetition_reason(seq, o)) return why;
  }
  if (rec.contains("chosen") && rec.contains("rejected") && rec["chosen"] == rec["rejected"]) return "chosen equals rejected";
  if (!o.script.empty() && o.min_script_ratio > 0 && script_ratio(record_text(rec), o.script) < o.min_script_ratio)
    return "script ratio below " + o.script + " minimum";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> filter_record(const nlohmann::json& rec, const CleanOptions& o, RecordTextFacts* facts) {
  if (rec.contains("input_ids") || rec.contains("prompt_input_ids")) return std::nullopt;  // pre-tokenized: nothing to read
  if (preference_shape_of(rec) != PreferenceShape::None) return filter_preference(rec, o);
  std::string text = record_text(rec);
  size_t n = utf8_length(text);
  if (n < std::max<size_t>(o.min_chars, 1)) return n == 0 ? "empty text" : "too short (chars)";
  if (o.max_chars && n > o.max_chars) return "too long (chars)";
  if (const auto ms = rec.find("messages"); ms != rec.end()) {
    bool has_assistant = false;
    for (auto& m : *ms) has_assistant |= m.is_object() && m.value("role", "") == "assistant";
    if (!has_assistant) return "no assistant turn";
    const size_t alen = trimmed_length(record_answer(rec));
    if (o.min_answer_chars && alen < o.min_answer_chars) return alen == 0 ? "empty answer" : "trivially short answer";
  }
  if (auto why = repetition_reason(text, o)) return why;
  if (!o.script.empty() && o.min_script_ratio > 0 && script_ratio(text, o.script) < o.min_script_ratio)
    return "script ratio below " + o.script + " minimum";
  if (facts) {
    facts->has = true;
    facts->text = std::move(text);
    facts->chars = n;
  }
  return std::nullopt;
}

std::optional<std::string> clean_record(nlohmann::json& rec, const CleanOptions& o, RecordTextFacts* facts) {
  for_each_text(rec, [&](std::string& s) { clean_text(s, o); });
  return filter_record(rec, o, facts);
}

void clean_drop(const Record& r, const std::string& why, StageCounts& counts) {
  std::string ex = record_text(r.json).substr(0, 120);
  repair_utf8(ex);
  counts.drop(why, r.source.where() + ": " + ex);
}

void clean_records(std::vector<Record>& records, const CleanOptions& o, StageCounts& counts) {
  const int64_t n = int64_t(records.size());
  std::vector<std::optional<std::string>> why(n);
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; i++) why[i] = clean_record(records[i].json, o);
  counts.in += records.size();
  std::vector<Record> kept;
  kept.reserve(records.size());
  for (int64_t i = 0; i < n; i++) {
    if (why[i]) {
      clean_drop(records[i], *why[i], counts);
    } else {
      kept.push_back(std::move(records[i]));
    }
  }
  records.swap(kept);
  counts.out += records.size();
}

}  // namespace lathe::data
