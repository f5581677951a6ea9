// Byte-level helpers: UTF-8 validation with an 8-byte ASCII fast path, and conversion of the
// encodings Korean data arrives in (CP949 is a superset of EUC-KR, so one iconv conversion covers
// both) through glibc's iconv.
#include <iconv.h>

#include <cstring>

#include "lathe/data/collect.h"

namespace lathe::data {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid (overlongs, surrogates, > U+10FFFF).
size_t utf8_seq(const unsigned char* s, size_t n, size_t i) {
  unsigned char c = s[i];
  if (c < 0x80) return 1;
  auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && s[i + 1] < 0xA0) return 0;
    if (c == 0xED && s[i + 1] > 0x9F) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && s[i + 1] < 0x90) return 0;
    if (c == 0xF4 && s[i + 1] > 0x8F) return 0;
    return 4;
  }
  return 0;
}

bool iconv_convert(const char* from, std::string_view in, std::string& out) {
  iconv_t cd = iconv_open("UTF-8", from);
  if (cd == (iconv_t)-1) return false;
  out.assign(in.size() * 2 + 16, '\0');
  char* ip = const_cast<char*>(in.data());
  size_t il = in.size();
  char* op = out.data();
  size_t ol = out.size();
  bool ok = true;
  while (il > 0) {
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    if (r == (size_t)-1) {
      if (errno == E2BIG) {
        size_t used = op - out.data();
        out.resize(out.size() * 2);
        op = out.data() + used;
        ol = out.size() - used;
        continue;
      }
      ok = false;
      break;
    }
  }
  iconv_close(cd);
  if (ok) out.resize(op - out.data());
  return ok;
}

}  // namespace

bool valid_utf8(std::string_view sv) {
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
    // of the BMP) are checked inline; the rest goes through utf8_seq.
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
    size_t k = utf8_seq(s, n, i);
    if (k == 0) return false;
    i += k;
  }
  return true;
}

size_t repair_utf8(std::string& str) {
  if (valid_utf8(str)) return 0;
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  size_t n = str.size(), replaced = 0;
  std::string out;
  out.reserve(n + 16);
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(s, n, i);
    if (k == 0) {
      out += "\xEF\xBF\xBD";
      replaced++;
      i++;
    } else {
      out.append(str, i, k);
      i += k;
    }
  }
  str.swap(out);
  return replaced;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string to_utf8(std::string_view bytes, std::string& out) {
  if (bytes.size() >= 3 && std::memcmp(bytes.data(), "\xEF\xBB\xBF", 3) == 0) {
    out.assign(bytes.substr(3));
    return valid_utf8(out) ? "utf-8-bom" : "invalid";
  }
  if (bytes.size() >= 2 && (uint8_t)bytes[0] == 0xFF && (uint8_t)bytes[1] == 0xFE)
    if (iconv_convert("UTF-16LE", bytes.substr(2), out)) return "utf-16le";
  if (bytes.size() >= 2 && (uint8_t)bytes[0] == 0xFE && (uint8_t)bytes[1] == 0xFF)
    if (iconv_convert("UTF-16BE", bytes.substr(2), out)) return "utf-16be";
  if (valid_utf8(bytes)) {
    out.assign(bytes);
    return "utf-8";
  }
  // A UTF-8 file with a few bad bytes must not be re-read as CP949 (UTF-8 Hangul often happens to
  // decode as CP949 pairs): try CP949 only when invalid sequences outnumber valid multi-byte ones.
  size_t good = 0, badn = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t i = 0; i < bytes.size();) {
    size_t k = utf8_seq(u, bytes.size(), i);
    if (k == 0) {
      badn++;
      i++;
    } else {
      good += k > 1;
      i += k;
    }
  }
  if (badn > good && iconv_convert("CP949", bytes, out) && valid_utf8(out)) return "cp949";
  out.assign(bytes);
  return "invalid";
}

}  // namespace lathe::data
