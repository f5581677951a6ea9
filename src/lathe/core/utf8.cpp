#include "lathe/core/utf8.h"

#include <cstring>

#ifdef LATHE_HAVE_SIMDJSON
#include <simdjson.h>
#endif

namespace lathe {

int32_t utf8_decode(std::string_view s, size_t i, int* len) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  size_t left = s.size() - i;
  uint8_t b = p[0];
  *len = 1;
  if (b < 0x80) return b;
  int n;
  uint32_t cp, min;
  if ((b & 0xE0) == 0xC0) n = 2, cp = b & 0x1F, min = 0x80;
  else if ((b & 0xF0) == 0xE0) n = 3, cp = b & 0x0F, min = 0x800;
  else if ((b & 0xF8) == 0xF0) n = 4, cp = b & 0x07, min = 0x10000;
  else return -1;
  if (left < size_t(n)) return -1;
  for (int k = 1; k < n; k++) {
    if ((p[k] & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (p[k] & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid, as in Rust's from_utf8.
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *len = n;
  return int32_t(cp);
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

bool valid_utf8(std::string_view sv) {
#ifdef LATHE_HAVE_SIMDJSON
  // Short ASCII strings (JSON keys, roles, ids: most of a record's strings by count) without the
  // library's dispatch and block setup, which cost more than the check itself.
  if (sv.size() <= 32) {
    uint64_t any = 0;
    size_t i = 0;
    for (; i + 8 <= sv.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, sv.data() + i, 8);
      any |= w;
    }
    for (; i < sv.size(); i++) any |= uint8_t(sv[i]);
    if (!(any & 0x8080808080808080ull)) return true;
  }
  return simdjson::validate_utf8(sv.data(), sv.size());
#else
  return valid_utf8_scalar(sv);
#endif
}

bool valid_utf8_scalar(std::string_view sv) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size(), i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    // Three-byte characters with no range exception (U+1000-U+CFFF, U+E000-U+FFFF: Hangul, CJK, most
    // of the BMP) are checked inline; the rest goes through utf8_decode.
    const unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    if (((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) && i + 2 < n && (s[i + 1] & 0xC0) == 0x80 &&
        (s[i + 2] & 0xC0) == 0x80) {
      i += 3;
      continue;
    }
    int len;
    if (utf8_decode(sv, i, &len) < 0) return false;
    i += size_t(len);
  }
  return true;
}

size_t utf8_sanitize(std::string_view in, std::string& out) {
  out.clear();
  if (valid_utf8(in)) return 0;  // most input: check first, copy only when needed
  out.reserve(in.size() + 16);
  size_t bad = 0;
  for (size_t i = 0; i < in.size();) {
    if (uint8_t(in[i]) < 0x80) {
      out.push_back(in[i++]);
      continue;
    }
    int len;
    if (utf8_decode(in, i, &len) < 0) {
      out += kUtf8Replacement;
      bad++;
    } else {
      out.append(in.data() + i, size_t(len));
    }
    i += size_t(len);
  }
  return bad;
}

size_t repair_utf8(std::string& s) {
  std::string out;
  size_t bad = utf8_sanitize(s, out);
  if (bad > 0) s.swap(out);
  return bad;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    uint8_t b = p[i];
    if (b < 0x80) {
      out.push_back(char(b));
      i++;
      continue;
    }
    int len;
    if (utf8_decode(s, i, &len) >= 0) {
      out.append(s.data() + i, size_t(len));
      i += size_t(len);
      continue;
    }
    // Invalid: swallow the longest prefix that could still have started a valid sequence.
    size_t k = i + 1;
    int need = (b >= 0xC2 && b <= 0xDF) ? 1 : (b >= 0xE0 && b <= 0xEF) ? 2 : (b >= 0xF0 && b <= 0xF4) ? 3 : 0;
    for (int c = 0; c < need && k < n; c++, k++) {
      uint8_t lo = 0x80, hi = 0xBF;
      if (c == 0) {
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
      }
      if (p[k] < lo || p[k] > hi) break;
    }
    out += kUtf8Replacement;
    i = k;
  }
  return out;
}

std::vector<char32_t> utf8_code_points(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    int len;
    int32_t cp = utf8_decode(s, i, &len);
    out.push_back(cp < 0 ? char32_t(0xFFFD) : char32_t(cp));
    i += size_t(len);
  }
  return out;
}

// Bytes that are not continuation bytes (10xxxxxx), eight at a time: a continuation byte has bit 7
// set and bit 6 clear, and w & ~(w << 1) keeps bit 7 of a byte exactly then (the shift moves each
// byte's bit 6 into its own bit 7, never across bytes once masked). The byte loop (utf8_length_bytewise)
// is the reference the tests compare with.
size_t utf8_length(std::string_view s) {
  const char* p = s.data();
  size_t left = s.size(), cont = 0;
  for (; left >= 8; p += 8, left -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    cont += size_t(__builtin_popcountll(w & ~(w << 1) & 0x8080808080808080ull));
  }
  for (; left > 0; p++, left--) cont += (static_cast<unsigned char>(*p) & 0xC0) == 0x80;
  return s.size() - cont;
}

size_t utf8_length_bytewise(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

size_t utf8_offset(std::string_view s, size_t n) {
  size_t i = 0;
  while (i < s.size() && n > 0) {
    i++;
    while (i < s.size() && utf8_is_continuation(s[i])) i++;
    n--;
  }
  return i;
}

}  // namespace lathe
