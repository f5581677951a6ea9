#include "lathe/data/json_fast.h"

#include <charconv>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/data/collect.h"

namespace lathe::data {

namespace {

using json = nlohmann::json;

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// Nonzero when one of the 8 bytes in w is '"', '\\' or below 0x20 (exact as a boolean: the bit tricks
// can only misflag bytes above a byte that really matches).
inline uint64_t string_special(uint64_t w) {
  uint64_t q = w ^ (kOnes * '"'), b = w ^ (kOnes * '\\');
  uint64_t zq = (q - kOnes) & ~q, zb = (b - kOnes) & ~b;
  uint64_t lt = (w - kOnes * 0x20) & ~w;
  return (zq | zb | lt) & kHighs;
}

inline bool special_byte(unsigned char c) { return c == '"' || c == '\\' || c < 0x20; }

// Length of the run of bytes from p that need no escaping (and do not end a string).
inline size_t plain_run(const char* p, const char* end) {
  const char* s = p;
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (string_special(w)) break;
    p += 8;
  }
  while (p < end && !special_byte(static_cast<unsigned char>(*p))) p++;
  return size_t(p - s);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Reader {
  const char* p;
  const char* end;
  int depth = 0;

  void skip_ws() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  }

  bool hex4(uint32_t& v) {
    if (end - p < 4) return false;
    v = 0;
    for (int k = 0; k < 4; k++) {
      int h = hex_value(p[k]);
      if (h < 0) return false;
      v = v * 16 + uint32_t(h);
    }
    p += 4;
    return true;
  }

  bool string(std::string& s) {
    p++;  // the opening quote
    while (true) {
      size_t n = plain_run(p, end);
      s.append(p, n);
      p += n;
      if (p >= end) return false;
      const char c = *p++;
      if (c == '"') return true;
      if (c != '\\' || p >= end) return false;  // a raw control byte: nlohmann rejects it too
      switch (*p++) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // must be followed by \u of a low surrogate
            uint32_t lo;
            if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return false;
            p += 2;
            if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8_append(s, cp);
          break;
        }
        default: return false;
      }
    }
  }

  // Integers of up to 18 digits only: they fit int64/uint64 exactly, as nlohmann stores them.
  bool number(json& out) {
    const bool neg = *p == '-';
    if (neg) p++;
    const char* d = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    const size_t nd = size_t(p - d);
    if (nd == 0 || nd > 18 || (nd > 1 && *d == '0')) return false;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return false;
    uint64_t v = 0;
    for (const char* q = d; q < p; q++) v = v * 10 + uint64_t(*q - '0');
    if (neg) out = json::number_integer_t(-int64_t(v));
    else out = json::number_unsigned_t(v);
    return true;
  }

  bool literal(const char* word, size_t n) {
    if (size_t(end - p) < n || std::memcmp(p, word, n) != 0) return false;
    p += n;
    return true;
  }

  bool value(json& out) {
    skip_ws();
    if (p >= end) return false;
    switch (*p) {
      case '"': {
        std::string s;
        if (!string(s)) return false;
        out = std::move(s);
        return true;
      }
      case '{': {
        if (++depth > 256) return false;
        p++;
        out = json::object();
        auto& obj = out.get_ref<json::object_t&>();
        skip_ws();
        if (p < end && *p == '}') {
          p++;
          depth--;
          return true;
        }
        while (true) {
          skip_ws();
          if (p >= end || *p != '"') return false;
          std::string key;
          if (!string(key)) return false;
          skip_ws();
          if (p >= end || *p != ':') return false;
          p++;
          // A repeated key keeps its last value, as nlohmann's parser does.
          if (!value(obj[std::move(key)])) return false;
          skip_ws();
          if (p >= end) return false;
          if (*p == ',') {
            p++;
            continue;
          }
          if (*p != '}') return false;
          p++;
          depth--;
          return true;
        }
      }
      case '[': {
        if (++depth > 256) return false;
        p++;
        out = json::array();
        auto& arr = out.get_ref<json::array_t&>();
        skip_ws();
        if (p < end && *p == ']') {
          p++;
          depth--;
          return true;
        }
        while (true) {
          arr.emplace_back();
          if (!value(arr.back())) return false;
          skip_ws();
          if (p >= end) return false;
          if (*p == ',') {
            p++;
            continue;
          }
          if (*p != ']') return false;
          p++;
          depth--;
          return true;
        }
      }
      case 't': return literal("true", 4) && (out = true, true);
      case 'f': return literal("false", 5) && (out = false, true);
      case 'n': return literal("null", 4) && (out = nullptr, true);
      default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) return number(out);
        return false;
    }
  }
};

void dump_string(std::string_view s, std::string& out) {
  if (!valid_utf8(s)) {  // nlohmann's replacement rules for broken UTF-8
    out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  out += '"';
  const char* p = s.data();
  const char* end = p + s.size();
  while (true) {
    size_t n = plain_run(p, end);
    out.append(p, n);
    p += n;
    if (p >= end) break;
    const unsigned char c = static_cast<unsigned char>(*p++);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default: {
        static const char* kHex = "0123456789abcdef";  // nlohmann writes "\\u%04x": lower case
        char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(u, 6);
      }
    }
  }
  out += '"';
}

}  // namespace

bool json_parse_fast(std::string_view text, nlohmann::json& out) {
  if (!text.empty() && static_cast<unsigned char>(text[0]) == 0xEF) return false;  // a BOM: nlohmann's call
  Reader r{text.data(), text.data() + text.size()};
  if (!r.value(out)) return false;
  r.skip_ws();
  return r.p == r.end;
}

void json_dump_fast(const nlohmann::json& j, std::string& out) {
  switch (j.type()) {
    case json::value_t::object: {
      const auto& obj = j.get_ref<const json::object_t&>();
      out += '{';
      bool first = true;
      for (const auto& [k, v] : obj) {
        if (!first) out += ',';
        first = false;
        dump_string(k, out);
        out += ':';
        json_dump_fast(v, out);
      }
      out += '}';
      return;
    }
    case json::value_t::array: {
      const auto& arr = j.get_ref<const json::array_t&>();
      out += '[';
      for (size_t i = 0; i < arr.size(); i++) {
        if (i) out += ',';
        json_dump_fast(arr[i], out);
      }
      out += ']';
      return;
    }
    case json::value_t::string: dump_string(j.get_ref<const std::string&>(), out); return;
    case json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case json::value_t::null: out += "null"; return;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: {
      char buf[24];
      auto res = j.is_number_unsigned() ? std::to_chars(buf, buf + sizeof buf, j.get<json::number_unsigned_t>())
                                        : std::to_chars(buf, buf + sizeof buf, j.get<json::number_integer_t>());
      out.append(buf, res.ptr);
      return;
    }
    default: out += j.dump(-1, ' ', false, json::error_handler_t::replace); return;  // floats, binary
  }
}

void json_dump_record(const nlohmann::json& rec, std::string_view id, const Source& src, std::string& out) {
  LATHE_CHECK(rec.is_object(), "json_dump_record: a record is an object");
  bool first = true;
  auto key = [&](std::string_view k) {
    if (!first) out += ',';
    first = false;
    dump_string(k, out);
    out += ':';
  };
  auto number = [&](std::string_view k, int64_t v) {
    out += ',';
    dump_string(k, out);
    out += ':';
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  };
  auto put_source = [&] {  // Source::to_json's members, in the object's (name) order
    key("_source");
    out += "{\"file\":";
    dump_string(src.file, out);
    if (src.item > 0) number("item", src.item);
    if (src.line > 0) number("line", src.line);
    if (src.page > 0) number("page", src.page);
    out += '}';
  };
  // "_id" and "_source" go where the object's name order puts them; the record's own members of
  // those names are replaced, as assigning them would.
  constexpr std::string_view kId = "_id", kSource = "_source";
  int placed = 0;  // 0: neither written yet, 1: "_id", 2: both
  out += '{';
  for (const auto& [k, v] : rec.get_ref<const json::object_t&>()) {
    if (placed == 0 && std::string_view(k) >= kId) {
      key(kId);
      dump_string(id, out);
      placed = 1;
    }
    if (placed == 1 && std::string_view(k) >= kSource) {
      put_source();
      placed = 2;
    }
    if (k == kId || k == kSource) continue;
    key(k);
    json_dump_fast(v, out);
  }
  if (placed == 0) {
    key(kId);
    dump_string(id, out);
  }
  if (placed < 2) put_source();
  out += '}';
}

}  // namespace lathe::data
