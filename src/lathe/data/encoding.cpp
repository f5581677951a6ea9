// Conversion of the encodings Korean data arrives in (CP949 is a superset of EUC-KR, so one iconv
// conversion covers both) through glibc's iconv. UTF-8 validation and repair are in core/utf8.
#include <iconv.h>

#include <cstring>

#include "lathe/data/collect.h"

namespace lathe::data {

namespace {

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
  for (size_t i = 0; i < bytes.size();) {
    int len;
    if (utf8_decode(bytes, i, &len) < 0) badn++;
    else good += len > 1;
    i += size_t(len);
  }
  if (badn > good && iconv_convert("CP949", bytes, out) && valid_utf8(out)) return "cp949";
  out.assign(bytes);
  return "invalid";
}

}  // namespace lathe::data
