// The pre-tokenizer regexes that almost every BPE tokenizer uses (GPT-2's, and the cl100k form of
// Llama 3 and Qwen2/3, as tokenizer.json and llama.cpp's GGUF pre-types write them), matched by a
// hand-written scanner instead of Oniguruma. Oniguruma was 70% of encoding time in `data prepare`:
// its backtracking engine runs the seven alternatives one after another at every position. The
// scanner classifies each code point once (letter, number, white space, CR/LF, as Oniguruma does) and decides each
// alternative with the same leftmost-first, greedy-with-backtracking result the regex gives;
// tests/tokenizer/regex_fast_unit.cpp compares it with Oniguruma on every code point and on random
// text, and any other pattern (or text that is not valid UTF-8) still goes to Oniguruma.
#include <atomic>
#include <mutex>
#include <iterator>

#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {

namespace {

// How a known pattern writes its contractions ('s 't 're 've 'm 'll 'd).
enum class Contractions : uint8_t {
  Lower,        // 's|'t|...: lower case only
  AsciiAnyCase, // '[sS]|'[tT]|...: llama.cpp's spelling of the case-insensitive group
  FoldCase,     // (?i:'s|'t|...): Unicode case folding, where U+017F (long s) is an s too
};

enum class Style : uint8_t { Gpt2, Cl100k };

struct FastSpec {
  const char* pattern;
  Style kind;
  Contractions contractions;
  int max_digits;      // cl100k: \p{N}{1,max}; gpt2 style: unbounded ( ?\p{N}+)
  bool trailing_space;  // the pattern ends with |\s+ (without it a lone space before \S is a gap)
};

const FastSpec kSpecs[] = {
    // GPT-2 (tokenizers' ByteLevel use_regex) and llama.cpp's "gpt2" pre-type (no final \s+).
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", Style::Gpt2,
     Contractions::Lower, 0, true},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", Style::Gpt2,
     Contractions::Lower, 0, false},
    // Llama 3 and Qwen2/3 as tokenizer.json writes them.
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     Style::Cl100k, Contractions::FoldCase, 3, true},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     Style::Cl100k, Contractions::FoldCase, 1, true},
    // The same two as llama.cpp's GGUF pre-types spell them.
    {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     Style::Cl100k, Contractions::AsciiAnyCase, 3, true},
    {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     Style::Cl100k, Contractions::AsciiAnyCase, 1, true},
};

constexpr uint8_t kL = 1, kN = 2, kWS = 4, kNL = 8;  // \p{L}, \p{N}, \s, [\r\n]

// Classes of non-ASCII code points come from Oniguruma itself, one 256-code-point block at a time on
// first use: its Unicode tables are older than utf8proc's (U+1123F, new in Unicode 15, is a letter to
// utf8proc and not to Oniguruma 6.9.8), and the scanner must agree with the regex it replaces.
uint8_t g_class[0x110000];
std::atomic<uint8_t> g_block_ready[0x110000 >> 8];

void fill_block(uint32_t block) {
  static const Regex letter("\\p{L}"), number("\\p{N}"), space("\\s");
  static std::mutex mu;  // a block is filled once per process; readers wait only for a block not yet seen
  std::lock_guard<std::mutex> lock(mu);
  if (g_block_ready[block].load(std::memory_order_acquire)) return;
  std::string text;
  std::vector<uint32_t> cp_at;  // byte offset of each code point's first byte -> code point
  uint8_t cls[256] = {};
  for (uint32_t cp = block << 8; cp < ((block + 1) << 8); cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    cp_at.resize(text.size() + 1, 0);
    cp_at[text.size()] = cp;
    utf8_append(text, cp);
  }
  std::vector<std::pair<uint32_t, uint32_t>> m;
  const std::pair<const Regex*, uint8_t> classes[] = {{&letter, kL}, {&number, kN}, {&space, kWS}};
  for (auto [re, bit] : classes) {
    re->find_all_oniguruma(text, m);
    for (auto [b, e] : m) cls[cp_at[b] & 0xFF] |= bit;
  }
  for (uint32_t k = 0; k < 256; k++) {
    const uint32_t cp = (block << 8) | k;
    if (cp == '\r' || cp == '\n') cls[k] |= kNL;
    g_class[cp] = cls[k];
  }
  g_block_ready[block].store(1, std::memory_order_release);
}

constexpr uint8_t ascii_class(uint32_t cp) {
  if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return kL;
  if (cp >= '0' && cp <= '9') return kN;
  if (cp == '\r' || cp == '\n') return kWS | kNL;
  return (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) ? kWS : 0;
}

struct AsciiClasses {
  uint8_t c[128];
  constexpr AsciiClasses() : c() {
    for (uint32_t k = 0; k < 128; k++) c[k] = ascii_class(k);
  }
  constexpr uint8_t operator[](size_t k) const { return c[k]; }
};
constexpr AsciiClasses kAsciiClass;

inline uint8_t classify(uint32_t cp) {
  if (cp < 0x80) return kAsciiClass[cp];
  if (cp >= 0xAC00 && cp <= 0xD7A3) return kL;  // Hangul syllables (Lo), the most common non-ASCII here
  if (cp >= 0x110000) return 0;
  if (!g_block_ready[cp >> 8].load(std::memory_order_acquire)) fill_block(cp >> 8);
  return g_class[cp];
}

// The contraction letter for cp, lower-cased as the pattern allows; 0 when it cannot be one.
char contraction_letter(uint32_t cp, Contractions c) {
  if (cp < 0x80) {
    const char ch = char(cp);
    if (ch >= 'a' && ch <= 'z') return ch;
    if (c != Contractions::Lower && ch >= 'A' && ch <= 'Z') return char(ch + 32);
    return 0;
  }
  if (c == Contractions::FoldCase && cp == 0x17F) return 's';  // LATIN SMALL LETTER LONG S folds to s
  return 0;
}

struct Scan {
  std::vector<uint32_t> cps, off;  // code points and their byte offsets (off has one extra: the end)
  std::vector<uint8_t> cls;
};

}  // namespace

int fast_regex_for(const std::string& pattern) {
  for (size_t k = 0; k < std::size(kSpecs); k++)
    if (pattern == kSpecs[k].pattern) return int(k);
  return -1;
}

namespace {

// The general scanner: appends the matches of s, offset by base (s is the tail of a text from base on).
bool find_all_general(const FastSpec* spec, std::string_view s, uint32_t base,
                      std::vector<std::pair<uint32_t, uint32_t>>& out, bool* nfc_quick) {
  // Decode and classify every code point once, into buffers sized once per call (no push_back per
  // code point: this loop is most of the scanner's time on ASCII and Hangul text).
  thread_local Scan sc;
  if (sc.off.size() < s.size() + 1) {
    sc.cps.resize(s.size() + 1);
    sc.off.resize(s.size() + 1);
    sc.cls.resize(s.size() + 1);
  }
  uint32_t* cpw = sc.cps.data();
  uint32_t* offw = sc.off.data();
  uint8_t* clw = sc.cls.data();
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data());
  bool nfc_ok = true;  // every code point nfc_safe (nfc_quick_yes)
  size_t n = 0;
  for (size_t i = 0; i < s.size(); n++) {
    offw[n] = uint32_t(i);
    const unsigned char b = bytes[i];
    if (b < 0x80) {
      cpw[n] = b;
      clw[n] = kAsciiClass[b];
      i++;
      continue;
    }
    // Strict decode (as valid_utf8: no overlong forms, surrogates or values past U+10FFFF), so the
    // scanner is its own validity check and a caller need not make a pass of its own first.
    const size_t left = s.size() - i;
    uint32_t c;
    if (b < 0xE0) {
      if (b < 0xC2 || left < 2 || (bytes[i + 1] & 0xC0) != 0x80) return false;
      c = (uint32_t(b & 0x1F) << 6) | (bytes[i + 1] & 0x3F);
      i += 2;
    } else if (b < 0xF0) {
      if (left < 3 || (bytes[i + 1] & 0xC0) != 0x80 || (bytes[i + 2] & 0xC0) != 0x80) return false;
      c = (uint32_t(b & 0x0F) << 12) | (uint32_t(bytes[i + 1] & 0x3F) << 6) | (bytes[i + 2] & 0x3F);
      if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return false;
      i += 3;
    } else {
      if (b > 0xF4 || left < 4 || (bytes[i + 1] & 0xC0) != 0x80 || (bytes[i + 2] & 0xC0) != 0x80 ||
          (bytes[i + 3] & 0xC0) != 0x80)
        return false;
      c = (uint32_t(b & 0x07) << 18) | (uint32_t(bytes[i + 1] & 0x3F) << 12) | (uint32_t(bytes[i + 2] & 0x3F) << 6) |
          (bytes[i + 3] & 0x3F);
      if (c < 0x10000 || c > 0x10FFFF) return false;
      i += 4;
    }
    cpw[n] = c;
    clw[n] = classify(c);
    nfc_ok = nfc_ok && nfc_safe(c);
  }
  offw[n] = uint32_t(s.size());
  if (nfc_quick) *nfc_quick = nfc_ok;
  const uint32_t* cp = sc.cps.data();
  const uint8_t* cl = sc.cls.data();
  auto is = [&](size_t j, uint8_t bits) { return j < n && (cl[j] & bits); };
  auto punct = [&](size_t j) { return j < n && !(cl[j] & (kL | kN | kWS)); };  // [^\s\p{L}\p{N}]
  auto run = [&](size_t j, auto pred) {
    while (pred(j)) j++;
    return j;
  };
  auto emit = [&](size_t b, size_t e) { out.emplace_back(base + sc.off[b], base + sc.off[e]); };
  const bool cl100k = spec->kind == Style::Cl100k;
  size_t i = 0;
  while (i < n) {
    // 's 't 're 've 'm 'll 'd (their first letters differ, so the first that fits is the only one)
    if (cp[i] == '\'' && i + 1 < n) {
      const char a = contraction_letter(cp[i + 1], spec->contractions);
      const char b = i + 2 < n ? contraction_letter(cp[i + 2], spec->contractions) : 0;
      size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') len = 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) len = 3;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    size_t e = i;
    if (cl100k) {
      if (!(cl[i] & (kL | kN | kNL)) && is(i + 1, kL)) e = run(i + 1, [&](size_t j) { return is(j, kL); });  // [^\r\n\p{L}\p{N}]?\p{L}+
      else if (cl[i] & kL) e = run(i, [&](size_t j) { return is(j, kL); });
      else if (cl[i] & kN) {  // \p{N}{1,max}
        e = i + 1;
        while (e < n && e - i < size_t(spec->max_digits) && (cl[e] & kN)) e++;
      } else {
        const size_t p = (cp[i] == ' ' && punct(i + 1)) ? i + 1 : i;  //  ?[^\s\p{L}\p{N}]+[\r\n]*
        if (punct(p)) e = run(run(p, punct), [&](size_t j) { return is(j, kNL); });
      }
    } else {
      // " ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+": a space can only lead (it is in none of the classes),
      // and the classes are disjoint, so the alternatives' order does not matter here.
      const size_t p = cp[i] == ' ' ? i + 1 : i;
      if (is(p, kL)) e = run(p, [&](size_t j) { return is(j, kL); });
      else if (is(p, kN)) e = run(p, [&](size_t j) { return is(j, kN); });
      else if (punct(p)) e = run(p, punct);
    }
    if (e == i && (cl[i] & kWS)) {
      const size_t w = run(i, [&](size_t j) { return is(j, kWS); });
      if (cl100k) {  // \s*[\r\n]+: up to and with the run's last CR/LF
        for (size_t k = w; k > i; k--)
          if (cl[k - 1] & kNL) {
            e = k;
            break;
          }
      }
      if (e == i) {
        if (w == n) e = w;                       // \s+(?!\S) at the end
        else if (w - i >= 2) e = w - 1;          // \s+(?!\S): leave the last space to the word after it
        else if (spec->trailing_space) e = w;    // \s+
      }
    }
    if (e == i) {  // nothing matches here: a gap, as a regex search moves on one character
      i++;
      continue;
    }
    emit(i, e);
    i = e;
  }
  return true;
}

// ---- The byte-level path ----
// Most text here is ASCII and Hangul syllables, and most pieces are " word" or ".": decoding every
// code point into three arrays first (9 bytes written per code point) cost more than matching. This
// path matches on the UTF-8 bytes while it knows every class involved (ASCII, and Hangul syllables,
// which are letters and nfc_safe), and hands the rest of the text to the general scanner at the start
// of the first piece whose end depends on any other code point (or on bytes that are not UTF-8). The
// hand-over is exact because the patterns have no look-behind: the matches from a piece's start on
// depend only on the text from there on.

constexpr uint8_t kHi = 16;  // a byte >= 0x80: the code point must be looked at

struct ByteClasses {
  uint8_t c[256];
  constexpr ByteClasses() : c() {
    for (uint32_t k = 0; k < 256; k++) c[k] = k < 0x80 ? ascii_class(k) : kHi;
  }
  constexpr uint8_t operator[](unsigned char k) const { return c[k]; }
};
constexpr ByteClasses kByteClass;

// A Hangul syllable U+AC00..U+D7A3 at b[j]; other non-ASCII is not decided here. UTF-8 keeps code
// point order: with both continuation bytes in place, the three bytes read as one big-endian number
// lie between those of U+AC00 (EA B0 80) and U+D7A3 (ED 9E A3) exactly for the syllables (decoding
// the code point to test its range took 24% more instructions and 10% more time on the corpus).
inline bool hangul_at(const unsigned char* b, size_t j, size_t n) {
  if (n - j < 3) return false;
  const uint32_t v = (uint32_t(b[j]) << 16) | (uint32_t(b[j + 1]) << 8) | b[j + 2];
  return (v & 0xC0C0) == 0x8080 && v - 0xEAB080u <= 0xED9EA3u - 0xEAB080u;
}

constexpr size_t kBail = ~size_t(0);

// Matches s from the start while the bytes decide; returns where the general scanner must go on
// (s.size(): nowhere). Every byte before that offset is ASCII or a Hangul syllable, so valid and nfc_safe.
size_t scan_bytes(const FastSpec& spec, std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  // The class of the code point at j < n, kHi when it is neither ASCII nor a Hangul syllable; *len its bytes.
  auto class_at = [&](size_t j, size_t* len) -> uint8_t {
    const uint8_t c = kByteClass[b[j]];
    if (!(c & kHi)) {
      *len = 1;
      return c;
    }
    *len = 3;
    return hangul_at(b, j, n) ? kL : kHi;
  };
  // The end of the run from j of code points whose class has a bit of `bits` (none: punctuation);
  // kBail at a code point it cannot classify, which could go on the run.
  auto run = [&](size_t j, uint8_t bits) -> size_t {
    while (j < n) {
      const uint8_t c = kByteClass[b[j]];
      if (!(c & kHi)) {
        if (bits ? !(c & bits) : c != 0) break;
        j++;
      } else if (hangul_at(b, j, n)) {
        if (bits != kL) break;
        j += 3;
      } else {
        return kBail;
      }
    }
    return j;
  };
  const bool cl100k = spec.kind == Style::Cl100k;
  size_t i = 0;
  while (i < n) {
    size_t len0;
    const uint8_t c0 = class_at(i, &len0);
    if (c0 & kHi) return i;
    if (b[i] == '\'' && i + 1 < n) {  // contractions, as the general scanner
      // Only ASCII letters are read here: a code point past ASCII right after the apostrophe is no
      // contraction letter, except U+017F under FoldCase, and neither style takes it as one here: the
      // apostrophe is punctuation, and the test of the next code point's class below hands the piece
      // over. One past ASCII in second place can only fold to s, never to the e or l asked there.
      const char a = contraction_letter(b[i + 1], spec.contractions);
      const char c = i + 2 < n && b[i + 2] < 0x80 ? contraction_letter(b[i + 2], spec.contractions) : 0;
      size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') len = 2;
      else if ((a == 'r' && c == 'e') || (a == 'v' && c == 'e') || (a == 'l' && c == 'l')) len = 3;
      if (len) {
        out.emplace_back(uint32_t(i), uint32_t(i + len));
        i += len;
        continue;
      }
    }
    size_t e = i;
    if (cl100k) {
      if (c0 & kL) {
        e = run(i, kL);
      } else if (c0 & kN) {  // \p{N}{1,max}: ASCII digits; a code point it cannot tell could be one
        e = i + 1;
        while (e < n && e - i < size_t(spec.max_digits)) {
          const uint8_t c = kByteClass[b[e]];
          if (c & kN) e++;
          else if (!(c & kHi)) break;
          else if (hangul_at(b, e, n)) break;
          else return i;
        }
      } else {
        // [^\r\n\p{L}\p{N}]?\p{L}+ first, then  ?[^\s\p{L}\p{N}]+[\r\n]*: the next code point decides
        size_t len1 = 0;
        const uint8_t c1 = i + 1 < n ? class_at(i + 1, &len1) : 0;
        if (c1 & kHi) return i;
        if (!(c0 & kNL) && (c1 & kL)) {
          e = run(i + 1, kL);
        } else {
          const size_t p = (b[i] == ' ' && i + 1 < n && c1 == 0) ? i + 1 : i;
          if (p < n && kByteClass[b[p]] == 0) {
            e = run(p, 0);
            // [\r\n]*: never a code point past ASCII, so one this path cannot classify ends it too
            if (e != kBail)
              while (e < n && (kByteClass[b[e]] & kNL)) e++;
          }
        }
      }
    } else {
      // " ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+", as the general scanner
      size_t p = i, lenp = len0;
      uint8_t cp = c0;
      if (b[i] == ' ') {
        p = i + 1;
        cp = p < n ? class_at(p, &lenp) : kWS;  // the end: none of the three
        if (cp & kHi) return i;
      }
      if (cp & kL) e = run(p, kL);
      else if (cp & kN) e = run(p, kN);
      else if (!(cp & kWS)) e = run(p, 0);
    }
    if (e == kBail) return i;
    if (e == i && (c0 & kWS)) {
      const size_t w = run(i, kWS);
      if (w == kBail) return i;  // the run, or what follows it, is a code point this path cannot classify
      if (cl100k) {  // \s*[\r\n]+: up to and with the run's last CR/LF
        for (size_t k = w; k > i; k--)
          if (kByteClass[b[k - 1]] & kNL) {
            e = k;
            break;
          }
      }
      if (e == i) {
        if (w == n) e = w;                     // \s+(?!\S) at the end
        else if (w - i >= 2) e = w - 1;        // \s+(?!\S): the run's code points are one byte each
        else if (spec.trailing_space) e = w;   // \s+
      }
    }
    if (e == i) {  // a gap: the regex search moves on one code point
      i += len0;
      continue;
    }
    out.emplace_back(uint32_t(i), uint32_t(e));
    i = e;
  }
  return n;
}

}  // namespace

bool fast_find_all(int which, std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out, bool* nfc_quick) {
  if (which < 0 || size_t(which) >= std::size(kSpecs)) return false;
  out.clear();
  const size_t p = scan_bytes(kSpecs[which], s, out);
  if (p == s.size()) {
    if (nfc_quick) *nfc_quick = true;
    return true;
  }
  // The prefix was ASCII and Hangul syllables, so valid and nfc_safe: the tail decides both.
  return find_all_general(&kSpecs[which], s.substr(p), uint32_t(p), out, nfc_quick);
}

bool fast_find_all_general(int which, std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out,
                           bool* nfc_quick) {
  if (which < 0 || size_t(which) >= std::size(kSpecs)) return false;
  out.clear();
  return find_all_general(&kSpecs[which], s, 0, out, nfc_quick);
}

}  // namespace lathe::tok
