// UTF-8 helpers, Unicode character classes (via utf8proc), GPT-2's byte map and the Oniguruma wrapper.
#include <oniguruma.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "lathe/core/error.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {

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

size_t utf8_sanitize(std::string_view in, std::string& out) {
  out.clear();
  // Most input is valid: check first (ASCII runs 8 bytes at a time) and copy only when needed.
  {
    size_t i = 0;
    bool ok = true;
    while (i < in.size()) {
      if (i + 8 <= in.size()) {
        uint64_t w;
        std::memcpy(&w, in.data() + i, 8);
        if ((w & 0x8080808080808080ull) == 0) {
          i += 8;
          continue;
        }
      }
      if (uint8_t(in[i]) < 0x80) {
        i++;
        continue;
      }
      int len;
      if (utf8_decode(in, i, &len) < 0) {
        ok = false;
        break;
      }
      i += len;
    }
    if (ok) return 0;
  }
  out.reserve(in.size());
  size_t bad = 0;
  for (size_t i = 0; i < in.size();) {
    if (uint8_t(in[i]) < 0x80) {
      out.push_back(in[i++]);
      continue;
    }
    int len;
    if (utf8_decode(in, i, &len) < 0) {
      out += "\xEF\xBF\xBD";
      bad++;
    } else {
      out.append(in.data() + i, len);
    }
    i += len;
  }
  return bad;
}

bool is_whitespace(uint32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_numeric(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  auto c = utf8proc_category(utf8proc_int32_t(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
                        (cp >= 0x7B && cp <= 0x7E);
  auto c = utf8proc_category(utf8proc_int32_t(cp));
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_alnum_or_underscore(uint32_t cp) {
  if (cp == '_') return true;
  auto c = utf8proc_category(utf8proc_int32_t(cp));
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
         (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) ||
         (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME);
}

const ByteLevelMap& ByteLevelMap::get() {
  static const ByteLevelMap m = [] {
    ByteLevelMap r;
    for (auto& v : r.cp_to_byte) v = -1;
    // Printable bytes stand for themselves; the other 68 get code points 256, 257, ... in byte order.
    int next = 256;
    for (int b = 0; b < 256; b++) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(next++);
      utf8_append(r.byte_to_str[b], cp);
      r.byte_len[b] = uint8_t(r.byte_to_str[b].size());
      std::memcpy(r.byte_utf8[b], r.byte_to_str[b].data(), r.byte_len[b]);
      r.cp_to_byte[cp] = int16_t(b);
    }
    return r;
  }();
  return m;
}

// ---- Regex ----

static std::once_flag g_onig_once;

Regex::Regex(const std::string& pattern) {
  std::call_once(g_onig_once, [] {
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
  });
  OnigErrorInfo einfo;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  int r = onig_new(&re_, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &einfo);
  if (r != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, r, &einfo);
    re_ = nullptr;
    fail("tokenizer", "regex '{}': {}", pattern, reinterpret_cast<const char*>(msg));
  }
}

Regex::~Regex() {
  if (re_) onig_free(re_);
}

void Regex::find_all(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  out.clear();
  // One region per thread, reused: onig_scan is re-entrant given its own region.
  thread_local struct RegionHolder {
    OnigRegion* r = onig_region_new();
    ~RegionHolder() { onig_region_free(r, 1); }
  } holder;
  // onig_scan keeps one match stack for the whole string; calling onig_search once per word would
  // allocate and copy a fresh stack each time (that was half the encode time).
  const auto* str = reinterpret_cast<const OnigUChar*>(s.data());
  onig_scan(re_, str, str + s.size(), holder.r, ONIG_OPTION_NONE,
            [](int, int, OnigRegion* r, void* arg) -> int {
              auto* v = static_cast<std::vector<std::pair<uint32_t, uint32_t>>*>(arg);
              if (r->end[0] > r->beg[0]) v->emplace_back(uint32_t(r->beg[0]), uint32_t(r->end[0]));
              return 0;
            },
            &out);
}

void split_apply_behavior(std::vector<std::pair<uint32_t, uint32_t>>& matches, uint32_t n, SplitBehavior b,
                          bool invert, std::vector<std::pair<uint32_t, uint32_t>>& out) {
  // Runs covering [0, n): (start, end, is_match).
  struct Run {
    uint32_t s, e;
    bool m;
  };
  thread_local std::vector<Run> runs;  // scratch: this runs once per word
  runs.clear();
  uint32_t prev = 0;
  for (auto [s, e] : matches) {
    if (s > prev) runs.push_back({prev, s, invert});
    runs.push_back({s, e, !invert});
    prev = e;
  }
  if (prev < n) runs.push_back({prev, n, invert});
  out.clear();
  switch (b) {
    case SplitBehavior::Removed:
      for (auto& r : runs)
        if (!r.m) out.emplace_back(r.s, r.e);
      break;
    case SplitBehavior::Isolated:
      for (auto& r : runs) out.emplace_back(r.s, r.e);
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (auto& r : runs) {
        if (r.m && !prev_match && !out.empty()) out.back().second = r.e;
        else out.emplace_back(r.s, r.e);
        prev_match = r.m;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (size_t k = runs.size(); k-- > 0;) {
        auto& r = runs[k];
        if (r.m && !prev_match && !out.empty()) out.back().first = r.s;
        else out.emplace_back(r.s, r.e);
        prev_match = r.m;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool prev_match = false;
      for (auto& r : runs) {
        if (r.m == prev_match && !out.empty()) out.back().second = r.e;
        else out.emplace_back(r.s, r.e);
        prev_match = r.m;
      }
      break;
    }
  }
}

}  // namespace lathe::tok
