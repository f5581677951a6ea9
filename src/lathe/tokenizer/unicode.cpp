// Unicode character classes (via utf8proc, and HF's BERT tables), GPT-2's byte map and the Oniguruma wrapper.
#include <oniguruma.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "lathe/core/error.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {

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

bool is_alnum_or_underscore(uint32_t cp) {
  if (cp == '_') return true;
  auto c = utf8proc_category(utf8proc_int32_t(cp));
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
         (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) ||
         (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME);
}

namespace {
struct CodeRange {
  uint32_t lo, hi;
};
#include "lathe/tokenizer/bert_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&r)[N], uint32_t cp) {
  auto it = std::upper_bound(r, r + N, cp, [](uint32_t c, const CodeRange& x) { return c < x.lo; });
  return it != r && cp <= (it - 1)->hi;
}
}  // namespace

bool bert_is_removed(uint32_t cp) { return in_ranges(kBertRemoved, cp); }
bool bert_is_mark(uint32_t cp) { return cp >= 0x300 && in_ranges(kBertMarks, cp); }
bool bert_is_punct(uint32_t cp) { return in_ranges(kBertPunct, cp); }

bool bert_is_cjk(uint32_t cp) {  // the CJK Unified Ideographs blocks and compatibility ideographs, as HF
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
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
  fast_ = fast_regex_for(pattern);
}

Regex::~Regex() {
  if (re_) onig_free(re_);
}

void Regex::find_all(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  if (fast_ >= 0 && fast_find_all(fast_, s, out)) return;
  find_all_oniguruma(s, out);
}

void Regex::find_all_oniguruma(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const {
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
