// Normalizers of tokenizer.json: NFC/NFD/NFKC/NFKD (utf8proc), Lowercase, Strip, Replace, Prepend,
// BertNormalizer, Sequence (Precompiled is in precompiled.cpp). Each rewrites one segment of text (the parts
// between added tokens).
#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {

// A code point NFC keeps as it is wherever it stands among such code points: no canonical combining
// class (nothing to reorder), no canonical decomposition, not a composition exclusion, and not the
// second half of any composition (a mark, a Hangul vowel or final jamo, a starter such as U+0B3E that
// composes with the one before it). Below U+0300 and precomposed Hangul syllables: always (the
// syllables decompose and compose back, and what could join them is excluded here). utf8proc's own
// tables decide, as its NFC does; tests/tokenizer/encode_fast_unit.cpp checks every code point against
// every canonical decomposition and random texts against utf8proc's NFC.
bool nfc_safe_slow(uint32_t cp) {
  if (cp < 0x300 || (cp >= 0xAC00 && cp <= 0xD7A3)) return true;
  if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2)) return false;  // V and T jamo
  if (cp >= 0x110000) return false;
  const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(cp));
  if (p->combining_class != 0 || p->comp_exclusion) return false;
  if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) return false;  // canonical decomposition
  // utf8proc marks the second code point of a composition pair with comb_index >= 0x8000.
  if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;
  return true;
}

// Text made only of such code points is already NFC: utf8proc is skipped (ASCII, Korean, CJK, most
// punctuation and symbols).
bool nfc_quick_yes(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint8_t b = uint8_t(s[i]);
    if (b < 0x80) {
      i++;
      continue;
    }
    int len;
    int32_t cp = utf8_decode(s, i, &len);
    if (cp < 0 || !nfc_safe(uint32_t(cp))) return false;
    i += len;
  }
  return true;
}

namespace {

using json = nlohmann::json;

class UnicodeNorm : public Normalizer {
 public:
  explicit UnicodeNorm(int options, bool nfc) : options_(options), nfc_(nfc) {}
  bool is_nfc() const override { return nfc_; }
  void apply(std::string& s) const override {
    if (s.empty()) return;
    if (nfc_ && nfc_quick_yes(s)) return;
    utf8proc_uint8_t* out = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &out,
                          utf8proc_option_t(options_));
    if (n < 0) return;  // input is sanitized UTF-8, so this does not happen; keep the text as is
    s.assign(reinterpret_cast<char*>(out), size_t(n));
    std::free(out);
  }

 private:
  int options_;
  bool nfc_;
};

class Lowercase : public Normalizer {
 public:
  void apply(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      int len;
      int32_t cp = utf8_decode(s, i, &len);
      if (cp == 0x130) {
        out += "i\xCC\x87";  // full lowercase mapping of U+0130, as Rust's to_lowercase
      } else {
        utf8_append(out, uint32_t(utf8proc_tolower(cp)));
      }
      i += len;
    }
    s.swap(out);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool l, bool r) : left_(l), right_(r) {}
  void apply(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        int len;
        int32_t cp = utf8_decode(s, b, &len);
        if (!is_whitespace(uint32_t(cp))) break;
        b += len;
      }
    }
    if (right_) {
      while (e > b) {
        size_t k = utf8_char_start(s, e - 1, b);
        int len;
        int32_t cp = utf8_decode(s, k, &len);
        if (!is_whitespace(uint32_t(cp))) break;
        e = k;
      }
    }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class Replace : public Normalizer {
 public:
  Replace(const json& pattern, std::string content, const std::string& origin) : content_(std::move(content)) {
    if (pattern.contains("String")) literal_ = pattern["String"].get<std::string>();
    else if (pattern.contains("Regex")) re_ = std::make_unique<Regex>(pattern["Regex"].get<std::string>());
    else fail("tokenizer", "{}: normalizer Replace: pattern needs String or Regex", origin);
  }
  void apply(std::string& s) const override {
    std::string out;
    if (re_) {
      std::vector<std::pair<uint32_t, uint32_t>> m;
      re_->find_all(s, m);
      if (m.empty()) return;
      size_t prev = 0;
      for (auto [b, e] : m) {
        out.append(s, prev, b - prev);
        out += content_;
        prev = e;
      }
      out.append(s, prev);
    } else {
      if (literal_.empty()) return;
      size_t prev = 0, pos;
      while ((pos = s.find(literal_, prev)) != std::string::npos) {
        out.append(s, prev, pos - prev);
        out += content_;
        prev = pos + literal_.size();
      }
      if (prev == 0) return;
      out.append(s, prev);
    }
    s.swap(out);
  }

 private:
  std::string literal_, content_;
  std::unique_ptr<Regex> re_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : p_(std::move(p)) {}
  void apply(std::string& s) const override {
    if (!s.empty()) s.insert(0, p_);
  }

 private:
  std::string p_;
};

class Sequence : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> items;
  void apply(std::string& s) const override {
    for (auto& n : items) n->apply(s);
  }
};

// HF's BertNormalizer, in its order: clean_text, CJK spacing, strip accents (NFD, then nonspacing marks
// dropped), lowercase. The character classes are the Rust library's (bert_tables.inc).
class BertNorm : public Normalizer {
 public:
  BertNorm(bool clean, bool cjk, bool strip, bool lower) : clean_(clean), cjk_(cjk), strip_(strip), lower_(lower) {}
  void apply(std::string& s) const override {
    if (clean_ || cjk_) {
      std::string out;
      out.reserve(s.size() + 8);
      for (size_t i = 0; i < s.size();) {
        int len;
        uint32_t cp = uint32_t(utf8_decode(s, i, &len));
        i += size_t(len);
        if (clean_ && (cp == 0xFFFD || bert_is_removed(cp))) continue;
        if (clean_ && (cp == '\t' || cp == '\n' || cp == '\r' || is_whitespace(cp))) {
          out.push_back(' ');
        } else if (cjk_ && bert_is_cjk(cp)) {
          out.push_back(' ');
          utf8_append(out, cp);
          out.push_back(' ');
        } else {
          utf8_append(out, cp);
        }
      }
      s.swap(out);
    }
    if (strip_) {
      nfd_.apply(s);
      std::string out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        int len;
        int32_t cp = utf8_decode(s, i, &len);
        if (!bert_is_mark(uint32_t(cp))) out.append(s, i, size_t(len));
        i += size_t(len);
      }
      s.swap(out);
    }
    if (lower_) lowercase_.apply(s);
  }

 private:
  bool clean_, cjk_, strip_, lower_;
  UnicodeNorm nfd_{UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, false};
  Lowercase lowercase_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& origin) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "NFC") return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE, true);
  if (type == "NFD") return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, false);
  if (type == "NFKC")
    return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, false);
  if (type == "NFKD")
    return std::make_unique<UnicodeNorm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, false);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip")  // HF serializes the sides as strip_left / strip_right
    return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "Replace")
    return std::make_unique<Replace>(j.at("pattern"), j.value("content", std::string()), origin);
  if (type == "Prepend") return std::make_unique<Prepend>(j.value("prepend", std::string()));
  if (type == "Sequence") {
    auto seq = std::make_unique<Sequence>();
    for (auto& item : j.at("normalizers"))
      if (auto n = make_normalizer(item, origin)) seq->items.push_back(std::move(n));
    return seq;
  }
  if (type == "BertNormalizer") {
    auto flag = [&](const char* k, bool dflt) {
      if (!j.contains(k) || j[k].is_null()) return dflt;
      if (!j[k].is_boolean()) fail("tokenizer", "{}: normalizer BertNormalizer: '{}' must be true, false or null", origin, k);
      return j[k].get<bool>();
    };
    bool lower = flag("lowercase", true);
    return std::make_unique<BertNorm>(flag("clean_text", true), flag("handle_chinese_chars", true),
                                      flag("strip_accents", lower), lower);  // null strip_accents follows lowercase
  }
  if (type == "Precompiled") return make_precompiled(j, origin);
  fail("tokenizer", "{}: normalizer: unsupported type '{}'", origin, type);
}

std::unique_ptr<Normalizer> make_spm_normalizer(bool add_space_prefix) {
  auto seq = std::make_unique<Sequence>();
  if (add_space_prefix) seq->items.push_back(std::make_unique<Prepend>("\xE2\x96\x81"));
  seq->items.push_back(std::make_unique<Replace>(json{{"String", " "}}, "\xE2\x96\x81", "gguf"));
  return seq;
}

}  // namespace lathe::tok
