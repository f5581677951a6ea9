// dedup_normalize and exact_hash: the text form that exact and near dedup compare (rules in dedup.h).
#include <utf8proc.h>
#include <xxhash.h>


#include <cstdlib>
#include <cstring>
#include <vector>

#include "lathe/data/dedup.h"
#include "lathe/data/text_blocks_avx2.h"

namespace lathe::data {

uint64_t exact_hash(std::string_view normalized_text) {
  return XXH3_64bits(normalized_text.data(), normalized_text.size());
}

namespace {

// Bytes that end a word: ASCII whitespace and control characters.
constexpr bool ascii_space(unsigned char c) { return c <= 0x20 || c == 0x7f; }
constexpr bool ascii_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// What an ASCII byte becomes: dropped (punctuation, symbols; also every byte >= 0x80, so that a run
// loop stops there), a word break, or itself lower-cased (letters and digits, always > kSpace).
constexpr uint8_t kDrop = 0, kSpace = 1;
struct AsciiTable {
  uint8_t t[256] = {};
  constexpr AsciiTable() {
    for (int c = 0; c < 0x80; c++) {
      if (ascii_alnum(static_cast<unsigned char>(c))) t[c] = static_cast<uint8_t>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      else if (ascii_space(static_cast<unsigned char>(c))) t[c] = kSpace;
      else t[c] = kDrop;
    }
  }
};
constexpr AsciiTable kAscii;

inline bool hangul_syllable(const uint8_t* s, size_t i, size_t n) {
  if (i + 2 >= n || s[i] < 0xEA || s[i] > 0xED) return false;
  const uint32_t cp = ((s[i] & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
  return cp >= 0xAC00 && cp <= 0xD7A3 && (s[i + 1] & 0xC0) == 0x80 && (s[i + 2] & 0xC0) == 0x80;
}

// Why the NFC pass is conditional: utf8proc_map allocates and runs ~10x slower than the byte loop, and
// nearly all Korean/English text is already composed. Only combining marks and conjoining jamo
// (U+1100-U+11FF, U+A960-U+A97F, U+D7B0-U+D7FF) can change under NFC.
bool may_change_under_nfc(int32_t cp) {
  if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xA960 && cp <= 0xA97F) || (cp >= 0xD7B0 && cp <= 0xD7FF))
    return true;
  return utf8proc_get_property(cp)->combining_class != 0;
}

#ifdef LATHE_TEXT_AVX2
// Where most of a Korean/English text goes: 64 bytes p[0, 64) (and p[64, 66), read for the last
// characters' ranges) that are lower-case ASCII letters and digits, whole Hangul syllables and single
// spaces after word characters come out of the byte loop exactly as they went in (runs copied, each
// space a separator emitted before the next word). Returns how many of them, up to 60, can be copied
// as they are, less a final space, which is left pending (*trailing_space): the copy stops before the
// first byte that is not like that (a full stop, a capital), so most of a sentence still goes at
// once. 0: none. first_space_ok: a space at p[0] is emitted (something was written before it, and the
// loop has no separator pending).
LATHE_TARGET_AVX2 size_t plain_block(const uint8_t* p, bool first_space_ok, bool* trailing_space) {
  uint64_t word = 0, space = 0, lead = 0, cont = 0, bad = 0;
  for (int h = 0; h < 2; h++) {
    using namespace text_blocks;
    const Window w = window(p + 32 * h);
    const __m256i x = w.x, n1 = w.n1;
    const int shift = 32 * h;  // (a lambda would not inherit the AVX2 target)
#define bits(m) (uint64_t(uint32_t(_mm256_movemask_epi8(m))) << shift)
    word |= bits(_mm256_or_si256(in(x, 'a', 'z'), in(x, '0', '9')));
    space |= bits(eq(x, ' '));
    lead |= bits(in(x, 0xEA, 0xED));
    cont |= bits(continuation(x));
    // Leads EA-ED are U+A000-U+DFFF: syllables are U+AC00 (EA B0 80) to U+D7A3 (ED 9E A3).
    bad |= bits(_mm256_or_si256(
        _mm256_andnot_si256(ge(n1, 0xB0), eq(x, 0xEA)),
        past_last_syllable(w)));
#undef bits
  }
  // Bytes that end the copy: anything else than the four classes, a lead outside the syllables or
  // without its two continuation bytes, a continuation byte without a lead one or two before it (one
  // at p[0] or p[1] is the byte loop's to judge), a space not after a letter, digit or a syllable's
  // last byte (at p[0]: unless the loop would emit it). The copy stops at the first, or at 60.
  const uint64_t stop = ~(word | space | lead | cont) | (bad & lead) | (lead & ~((cont >> 1) & (cont >> 2))) |
                        (cont & ~((lead << 1) | (lead << 2))) |
                        (space & ~(((word | cont) << 1) | (first_space_ok ? 1 : 0))) | (uint64_t(1) << 60);
  size_t take = size_t(__builtin_ctzll(stop));
  // A syllable cut by the stop is left whole to the loop.
  if (take > 0 && (cont >> take & 1)) {
    if (lead >> (take - 1) & 1) take -= 1;
    else if (take > 1 && (lead >> (take - 2) & 1)) take -= 2;
  }
  if (take == 0) return 0;
  *trailing_space = space >> (take - 1) & 1;
  return take;
}
#endif

// Returns false (and leaves `out` partial) when the text needs NFC first.
// Written through a raw pointer into a per-thread scratch buffer (push_back per byte was most of the
// cost): a character of L >= 2 bytes lower-cases to at most 4 bytes, an ASCII byte to at most 1 plus
// the separator its preceding space byte owes, so 2 * size + 4 bytes always suffice.
bool normalize_composed(std::string_view text, std::string& out, bool allow_nfc_restart) {
  thread_local std::vector<char> scratch;
  const size_t n = text.size();
  if (scratch.size() < 2 * n + 4) scratch.resize(2 * n + 4);
  char* const begin = scratch.data();
  char* o = begin;
  bool pending_space = false;
  auto emit_sep = [&] {
    if (pending_space && o != begin) *o++ = ' ';
    pending_space = false;
  };
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  size_t i = 0;
  bool complete = true;
#ifdef LATHE_TEXT_AVX2
  size_t next_block = cpu_text_avx2() ? 0 : SIZE_MAX;  // where a block is tried next
  size_t refused = 0;                                   // blocks refused in a row
#endif
  while (i < n) {
#ifdef LATHE_TEXT_AVX2
    if (!pending_space && i >= next_block && i + 66 <= n) {
      bool trailing = false;
      if (const size_t take = plain_block(s + i, o != begin, &trailing)) {
        const size_t copy = take - (trailing ? 1 : 0);
        std::memcpy(o, s + i, copy);
        o += copy;
        i += take;
        pending_space = trailing;
        refused = 0;
        continue;
      }
      // A block refused at a sentence's full stop takes the next words once the loop has passed it
      // (dedup stage 0.145 -> 0.136 CPU-s over the 100 MB bench corpus, bench/clean_pii_bench); text
      // the blocks keep refusing (capitals, other scripts) is tried 1, 2, 4, 8, then 16 bytes on, so
      // it pays little for them.
      next_block = i + (size_t(1) << std::min<size_t>(refused++, 4));
    }
#endif
    uint8_t c = s[i];
    if (c < 0x80) {
      uint8_t a = kAscii.t[c];
      if (a > kSpace) {  // a run of letters and digits, lower-cased
        emit_sep();
        do {
          *o++ = static_cast<char>(a);
          ++i;
        } while (i < n && (a = kAscii.t[s[i]]) > kSpace);
        continue;
      }
      if (a == kSpace) pending_space = true;  // ASCII punctuation and symbols are dropped
      ++i;
      continue;
    }
    // Precomposed Hangul syllables U+AC00-U+D7A3 (EA B0 80 .. ED 9E A3): letters with no case; a run
    // of them is copied as it is.
    if (hangul_syllable(s, i, n)) {
      emit_sep();
      const size_t from = i;
      do i += 3;
      while (hangul_syllable(s, i, n));
      std::memcpy(o, s + from, i - from);
      o += i - from;
      continue;
    }
    int32_t cp = -1;
    utf8proc_ssize_t len = utf8proc_iterate(s + i, static_cast<utf8proc_ssize_t>(n - i), &cp);
    if (len <= 0) {  // invalid UTF-8 byte: dropped, like a symbol
      ++i;
      continue;
    }
    i += static_cast<size_t>(len);
    if (allow_nfc_restart && may_change_under_nfc(cp)) {
      complete = false;
      break;
    }
    switch (utf8proc_category(cp)) {
      case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
      case UTF8PROC_CATEGORY_CC:
        pending_space = true;
        break;
      case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
      case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
      case UTF8PROC_CATEGORY_PO: case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC:
      case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO: case UTF8PROC_CATEGORY_CF:
        break;  // punctuation, symbols, format characters (zero-width joiners etc.): dropped
      default:
        emit_sep();
        o += utf8proc_encode_char(utf8proc_tolower(cp), reinterpret_cast<uint8_t*>(o));
    }
  }
  out.assign(begin, size_t(o - begin));
  return complete;
}

}  // namespace

std::string dedup_normalize(std::string_view text) {
  std::string out;
  if (normalize_composed(text, out, true)) return out;
  utf8proc_uint8_t* composed = nullptr;
  utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &composed,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (len < 0) {  // invalid UTF-8 somewhere: fall back to the byte loop without NFC
    normalize_composed(text, out, false);
    return out;
  }
  normalize_composed(std::string_view(reinterpret_cast<const char*>(composed), static_cast<size_t>(len)), out,
                     false);
  std::free(composed);
  return out;
}

}  // namespace lathe::data
