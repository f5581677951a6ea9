// Pre-tokenizers of tokenizer.json: ByteLevel, Split, Digits, Metaspace, Punctuation, Whitespace,
// WhitespaceSplit, BertPreTokenizer, Sequence. They work on Pieces (spans over one buffer); splits only
// make new spans, while ByteLevel and Metaspace rewrite text into a new buffer.
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {
namespace {

using json = nlohmann::json;
using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

// Splits every unresolved span with fn(piece, index, ranges-out); empty results are dropped, as in HF.
template <class F>
void split_pieces(Pieces& p, F&& fn) {
  thread_local std::vector<Span> out;  // scratch, swapped with p.spans: no allocation once warm
  out.clear();
  thread_local Ranges r;
  for (size_t i = 0; i < p.spans.size(); i++) {
    const Span& s = p.spans[i];
    if (s.id >= 0) {
      out.push_back(s);
      continue;
    }
    r.clear();
    fn(std::string_view(p.buf).substr(s.off, s.len), i, r);
    for (auto [b, e] : r)
      if (e > b) out.push_back({s.off + b, e - b, -1});
  }
  p.spans.swap(out);
}

// Rewrites every unresolved span with fn(piece, index, out-string).
template <class F>
void transform_pieces(Pieces& p, F&& fn) {
  thread_local std::string buf;  // scratch buffers swapped with p's: no allocation once warm
  thread_local std::vector<Span> out;
  buf.clear();
  out.clear();
  for (size_t i = 0; i < p.spans.size(); i++) {
    const Span& s = p.spans[i];
    if (s.id >= 0) {
      out.push_back(s);
      continue;
    }
    size_t start = buf.size();
    fn(std::string_view(p.buf).substr(s.off, s.len), i, buf);
    if (buf.size() > start) out.push_back({uint32_t(start), uint32_t(buf.size() - start), -1});
  }
  p.buf.swap(buf);
  p.spans.swap(out);
}

// Splits by a per-character predicate: each char is a "match" when pred(cp) holds.
template <class Pred>
void char_runs(std::string_view s, Pred pred, bool each_char, Ranges& matches) {
  matches.clear();
  for (size_t i = 0; i < s.size();) {
    int len;
    int32_t cp = utf8_decode(s, i, &len);
    if (pred(uint32_t(cp))) {
      if (!each_char && !matches.empty() && matches.back().second == i) matches.back().second = uint32_t(i + len);
      else matches.emplace_back(uint32_t(i), uint32_t(i + len));
    }
    i += len;
  }
}

SplitBehavior parse_behavior(const json& j, const std::string& origin) {
  std::string b = j.is_string() ? j.get<std::string>() : "Isolated";
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  fail("tokenizer", "{}: pre_tokenizer Split: unknown behavior '{}'", origin, b);
}

const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class RegexSplit : public PreTokenizer {
 public:
  // is_regex: `pattern` is an Oniguruma regex; otherwise a literal string.
  RegexSplit(const std::string& pattern, bool is_regex, SplitBehavior b, bool invert)
      : re_(is_regex ? std::make_unique<Regex>(pattern) : nullptr),
        literal_(is_regex ? "" : pattern), b_(b), invert_(invert) {}
  void apply(Pieces& p) const override {
    thread_local Ranges m;
    split_pieces(p, [&](std::string_view s, size_t, Ranges& out) { split_one(s, m, out); });
  }
  void split_one(std::string_view s, Ranges& m, Ranges& out) const {
    if (re_) {
      re_->find_all(s, m);
    } else {
      m.clear();
      if (!literal_.empty())
        for (size_t pos = s.find(literal_); pos != std::string_view::npos; pos = s.find(literal_, pos + literal_.size()))
          m.emplace_back(uint32_t(pos), uint32_t(pos + literal_.size()));
    }
    split_apply_behavior(m, uint32_t(s.size()), b_, invert_, out);
  }
  // The scanner's pattern index when this split is one the fused path reproduces, else -1.
  int fused_index() const {
    return re_ && b_ == SplitBehavior::Isolated && !invert_ ? re_->fast_index() : -1;
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string literal_;
  SplitBehavior b_;
  bool invert_;
};

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) split_ = std::make_unique<RegexSplit>(std::string(kGpt2Regex), true, SplitBehavior::Isolated, false);
  }
  void apply(Pieces& p) const override {
    if (add_prefix_space_) {
      transform_pieces(p, [](std::string_view s, size_t, std::string& out) {
        if (s.empty() || s[0] != ' ') out.push_back(' ');
        out.append(s);
      });
    }
    if (split_) split_->apply(p);
    const auto& map = ByteLevelMap::get();
    transform_pieces(p, [&](std::string_view s, size_t, std::string& out) {
      size_t o = out.size();
      out.resize(o + 2 * s.size());
      char* d = out.data() + o;
      for (char c : s) {
        uint8_t b = uint8_t(c);
        d[0] = map.byte_utf8[b][0];
        d[1] = map.byte_utf8[b][1];
        d += map.byte_len[b];
      }
      out.resize(size_t(d - out.data()));
    });
  }
  bool fused_byte_level(int* regex, bool* prefix_space) const override {
    *regex = split_ ? split_->fused_index() : -1;
    *prefix_space = add_prefix_space_;
    return !split_ || *regex >= 0;
  }
  // Only the mapping (Sequence [Split, ByteLevel] puts the split before it).
  bool maps_only() const { return !split_ && !add_prefix_space_; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<RegexSplit> split_;
};

class Metaspace : public PreTokenizer {
 public:
  enum class Prepend { Always, First, Never };
  Metaspace(std::string repl, Prepend scheme, bool split) : repl_(std::move(repl)), scheme_(scheme), split_(split) {}
  void apply(Pieces& p) const override {
    transform_pieces(p, [&](std::string_view s, size_t idx, std::string& out) {
      // "first": only the piece that starts the text (HF: original offset 0), so not a word after leading
      // spaces that an earlier WhitespaceSplit removed, nor text after an added token.
      bool prepend = scheme_ == Prepend::Always || (scheme_ == Prepend::First && idx == 0 && p.spans[0].off == 0);
      // HF replaces spaces first, so a leading space already counts as the replacement.
      if (prepend && !s.starts_with(' ') && !s.starts_with(repl_)) out += repl_;
      for (char c : s) {
        if (c == ' ') out += repl_;
        else out.push_back(c);
      }
    });
    if (split_) {
      thread_local Ranges m;
      split_pieces(p, [&](std::string_view s, size_t, Ranges& out) {
        m.clear();
        for (size_t pos = s.find(repl_); pos != std::string_view::npos; pos = s.find(repl_, pos + repl_.size()))
          m.emplace_back(uint32_t(pos), uint32_t(pos + repl_.size()));
        split_apply_behavior(m, uint32_t(s.size()), SplitBehavior::MergedWithNext, false, out);
      });
    }
  }

 private:
  std::string repl_;
  Prepend scheme_;
  bool split_;
};

// A split on a character class (Digits, Punctuation, WhitespaceSplit).
template <class Pred>
class CharSplit : public PreTokenizer {
 public:
  CharSplit(Pred pred, bool each_char, SplitBehavior b, bool invert)
      : pred_(pred), each_(each_char), b_(b), invert_(invert) {}
  void apply(Pieces& p) const override {
    thread_local Ranges m;
    split_pieces(p, [&](std::string_view s, size_t, Ranges& out) {
      char_runs(s, pred_, each_, m);
      split_apply_behavior(m, uint32_t(s.size()), b_, invert_, out);
    });
  }

 private:
  Pred pred_;
  bool each_;
  SplitBehavior b_;
  bool invert_;
};

template <class Pred>
std::unique_ptr<PreTokenizer> char_split(Pred pred, bool each_char, SplitBehavior b, bool invert = false) {
  return std::make_unique<CharSplit<Pred>>(pred, each_char, b, invert);
}

class Sequence : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> items;
  void apply(Pieces& p) const override {
    for (auto& t : items) t->apply(p);
  }
  bool fused_byte_level(int* regex, bool* prefix_space) const override {
    if (items.size() != 2) return false;
    auto* split = dynamic_cast<const RegexSplit*>(items[0].get());
    auto* bl = dynamic_cast<const ByteLevel*>(items[1].get());
    if (!split || !bl || !bl->maps_only() || split->fused_index() < 0) return false;
    *regex = split->fused_index();
    *prefix_space = false;
    return true;
  }
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& origin) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Split") {
    const json& pat = j.at("pattern");
    SplitBehavior b = parse_behavior(j.value("behavior", json("Isolated")), origin);
    bool invert = j.value("invert", false);
    if (pat.contains("Regex")) {
      try {
        return std::make_unique<RegexSplit>(pat["Regex"].get<std::string>(), true, b, invert);
      } catch (const Error& e) {  // Regex knows the pattern, not the file it came from
        std::string why = e.what();
        if (why.rfind("[tokenizer] ", 0) == 0) why.erase(0, 12);
        fail("tokenizer", "{}: pre_tokenizer Split: {}", origin, why);
      }
    }
    if (pat.contains("String"))
      return std::make_unique<RegexSplit>(pat["String"].get<std::string>(), false, b, invert);
    fail("tokenizer", "{}: pre_tokenizer Split: pattern needs String or Regex", origin);
  }
  if (type == "Digits") {
    bool individual = j.value("individual_digits", false);
    return char_split([](uint32_t c) { return is_numeric(c); }, individual,
                      individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }
  if (type == "Metaspace") {
    std::string repl = j.value("replacement", std::string("\xE2\x96\x81"));
    Metaspace::Prepend scheme = Metaspace::Prepend::Always;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      std::string s = j["prepend_scheme"];
      scheme = s == "first" ? Metaspace::Prepend::First : s == "never" ? Metaspace::Prepend::Never : Metaspace::Prepend::Always;
    } else if (j.contains("add_prefix_space") && !j.value("add_prefix_space", true)) {
      scheme = Metaspace::Prepend::Never;
    }
    return std::make_unique<Metaspace>(repl, scheme, j.value("split", true));
  }
  if (type == "Punctuation") {
    SplitBehavior b = parse_behavior(j.value("behavior", json("Isolated")), origin);
    return char_split([](uint32_t c) { return bert_is_punct(c); }, true, b);
  }
  if (type == "WhitespaceSplit")
    return char_split([](uint32_t c) { return is_whitespace(c); }, false, SplitBehavior::Removed);
  if (type == "Whitespace")
    return std::make_unique<RegexSplit>(std::string("\\w+|[^\\w\\s]+"), true, SplitBehavior::Removed, true);
  if (type == "BertPreTokenizer") {
    auto seq = std::make_unique<Sequence>();
    seq->items.push_back(char_split([](uint32_t c) { return is_whitespace(c); }, false, SplitBehavior::Removed));
    seq->items.push_back(char_split([](uint32_t c) { return bert_is_punct(c); }, true, SplitBehavior::Isolated));
    return seq;
  }
  if (type == "Sequence") {
    auto seq = std::make_unique<Sequence>();
    for (auto& item : j.at("pretokenizers"))
      if (auto t = make_pre_tokenizer(item, origin)) seq->items.push_back(std::move(t));
    return seq;
  }
  fail("tokenizer", "{}: pre_tokenizer: unsupported type '{}'", origin, type);
}

std::unique_ptr<PreTokenizer> make_regex_byte_level(const std::vector<std::string>& regexes) {
  auto seq = std::make_unique<Sequence>();
  for (auto& r : regexes) seq->items.push_back(std::make_unique<RegexSplit>(r, true, SplitBehavior::Isolated, false));
  seq->items.push_back(std::make_unique<ByteLevel>(false, false));
  return seq;
}

}  // namespace lathe::tok
