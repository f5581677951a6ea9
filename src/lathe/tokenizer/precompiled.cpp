// normalizer Precompiled: SentencePiece's precompiled charsmap (XLM-R, T5, mBART and other Unigram models
// converted from a SentencePiece proto). The field is base64 of
//   u32 little-endian: size in bytes of the trie | the trie: darts-clone double-array units (u32 each) |
//   the replacement strings, each ended by NUL
// The trie maps a UTF-8 key to the offset of its replacement. A unit is label (bits 0-7) | has_leaf (bit 8) |
// offset (bits 10-30, shifted by 8 more when bit 9 is set); a node's children sit at (its position ^ offset)
// ^ label, and a key's value is the low 31 bits of the unit at its last node's (position ^ offset).
//
// Applying it follows HF tokenizers, not SentencePiece's own longest-match normalizer: the text is walked by
// extended grapheme clusters; a cluster shorter than 6 bytes is looked up whole, otherwise (or when that
// finds nothing) each character is looked up alone; a lookup takes the SHORTEST key that is a prefix of the
// chunk and replaces the whole chunk with that key's string. So "ｅ" + U+0301 (one cluster) becomes what "ｅ"
// maps to, accent dropped, and "\r\n" (one cluster) becomes what "\r" maps to: the reference does exactly
// this, and ids must match it.
#include <utf8proc.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {
namespace {

using json = nlohmann::json;

// Standard base64 (RFC 4648, '=' padding), as the serde field of HF tokenizers; false on anything else.
bool base64_decode(std::string_view in, std::string& out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return false;
  out.clear();
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = in[i + size_t(k)];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        pad++;
      } else {
        if (pad) return false;  // data after padding
        v[k] = val(c);
        if (v[k] < 0) return false;
      }
    }
    uint32_t n = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out.push_back(char(n >> 16));
    if (pad < 2) out.push_back(char((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(char(n & 0xFF));
  }
  return true;
}

class Precompiled : public Normalizer {
 public:
  Precompiled(const std::string& b64, const std::string& origin) {
    auto bad = [&](const std::string& why) {
      fail("tokenizer", "{}: normalizer Precompiled: precompiled_charsmap {}", origin, why);
    };
    std::string raw;
    if (!base64_decode(b64, raw)) bad("is not base64");
    if (raw.size() < 4) bad("is shorter than its 4-byte trie size");
    uint32_t trie_bytes;
    std::memcpy(&trie_bytes, raw.data(), 4);  // little-endian on every platform lathe builds for
    if (trie_bytes % 4 != 0 || trie_bytes == 0 || trie_bytes > raw.size() - 4)
      bad(fmt::format("declares a trie of {} bytes in {} bytes of data", trie_bytes, raw.size() - 4));
    units_.resize(trie_bytes / 4);
    std::memcpy(units_.data(), raw.data() + 4, trie_bytes);
    normalized_ = raw.substr(4 + trie_bytes);
    if (!valid_utf8(normalized_)) bad("has replacement strings that are not UTF-8");
    check_trie(bad);
  }

  void apply(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    bool changed = false;
    std::string_view norm;
    // Extended grapheme clusters (utf8proc's UAX #29 rules, as the unicode-segmentation crate).
    utf8proc_int32_t state = 0, prev = -1;
    size_t start = 0;
    auto cluster = [&](std::string_view g) {
      if (g.size() < 6 && transform(g, &norm)) {
        out.append(norm);
        changed = true;
        return;
      }
      for (size_t i = 0; i < g.size();) {
        size_t len = std::min<size_t>(utf8_lead_len(uint8_t(g[i])), g.size() - i);
        if (transform(g.substr(i, len), &norm)) {
          out.append(norm);
          changed = true;
        } else {
          out.append(g, i, len);
        }
        i += len;
      }
    };
    for (size_t i = 0; i < s.size();) {
      int len;
      int32_t cp = utf8_decode(s, i, &len);
      if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state)) {
        cluster(std::string_view(s).substr(start, i - start));
        start = i;
      }
      prev = cp;
      i += size_t(len);
    }
    if (start < s.size()) cluster(std::string_view(s).substr(start));
    if (changed) s.swap(out);
  }

 private:
  std::vector<uint32_t> units_;
  std::string normalized_;

  static uint32_t offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
  static uint32_t label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
  static bool has_leaf(uint32_t u) { return (u >> 8) & 1; }
  static uint32_t value(uint32_t u) { return u & ((1u << 31) - 1); }

  // The replacement of the shortest key that is a prefix of `chunk` (up to a NUL byte, as the reference).
  bool transform(std::string_view chunk, std::string_view* norm) const {
    size_t pos = offset(units_[0]);
    for (char ch : chunk) {
      uint8_t c = uint8_t(ch);
      if (c == 0) return false;
      pos ^= c;
      uint32_t u = units_[pos];  // in range: check_trie saw every node's whole block
      if (label(u) != c) return false;
      pos ^= offset(u);
      if (has_leaf(u)) {
        size_t b = value(units_[pos]);
        size_t e = normalized_.find('\0', b);
        *norm = std::string_view(normalized_).substr(b, (e == std::string::npos ? normalized_.size() : e) - b);
        return true;
      }
    }
    return false;
  }

  // Walks every reachable node once, so that lookups never leave the array (the reference would panic) and
  // every value starts a whole character of the replacement strings.
  template <class Bad>
  void check_trie(Bad&& bad) const {
    const size_t n = units_.size();
    std::vector<bool> seen(n, false);
    std::vector<size_t> stack{0};
    seen[0] = true;
    while (!stack.empty()) {
      size_t pos = stack.back();
      stack.pop_back();
      size_t base = pos ^ offset(units_[pos]);
      if ((base | 0xFF) >= n) bad(fmt::format("has a trie node (unit {}) whose children lie past its {} units", pos, n));
      if (pos != 0 && has_leaf(units_[pos])) {
        size_t v = value(units_[base]);
        if (v > normalized_.size() || (v < normalized_.size() && utf8_is_continuation(normalized_[v])))
          bad(fmt::format("has a value {} (unit {}) outside its {} bytes of replacement strings", v, base,
                          normalized_.size()));
      }
      for (uint32_t c = 1; c < 256; c++) {
        size_t child = base ^ c;
        if (label(units_[child]) == c && !seen[child]) {
          seen[child] = true;
          stack.push_back(child);
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_precompiled(const json& j, const std::string& origin) {
  if (!j.contains("precompiled_charsmap") || !j["precompiled_charsmap"].is_string())
    fail("tokenizer", "{}: normalizer Precompiled: precompiled_charsmap must be a base64 string", origin);
  return std::make_unique<Precompiled>(j["precompiled_charsmap"].get<std::string>(), origin);
}

}  // namespace lathe::tok
