// Decoders of tokenizer.json: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder,
// WordPiece, Sequence. Each rewrites the list of token strings, as HF's decode_chain does.
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {
namespace {

using json = nlohmann::json;

class ByteLevelDec : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    const auto& map = ByteLevelMap::get();
    std::string bytes;
    for (auto& t : tokens) {
      for (size_t i = 0; i < t.size();) {
        int len;
        int32_t cp = utf8_decode(t, i, &len);
        if (cp >= 0 && cp < 324 && map.cp_to_byte[cp] >= 0) bytes.push_back(char(map.cp_to_byte[cp]));
        else bytes.append(t, i, len);
        i += len;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));  // Rust from_utf8_lossy, as HF
  }
};

class ByteFallbackDec : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    size_t pending_n = 0;
    auto flush = [&] {
      if (pending_n == 0) return;
      size_t dummy = 0;
      std::string clean;
      dummy = utf8_sanitize(pending, clean);
      if (dummy == 0) {
        out.push_back(std::move(pending));
      } else {
        for (size_t k = 0; k < pending_n; k++) out.emplace_back(kUtf8Replacement);
      }
      pending.clear();
      pending_n = 0;
    };
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(uint8_t(t[3])) &&
          std::isxdigit(uint8_t(t[4]))) {
        pending.push_back(char(std::stoi(t.substr(3, 2), nullptr, 16)));
        pending_n++;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDec : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDec : public Decoder {
 public:
  StripDec(std::string content, int start, int stop) : c_(std::move(content)), start_(start), stop_(stop) {}
  void apply(std::vector<std::string>& tokens) const override {
    if (c_.empty()) return;
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (int k = 0; k < start_ && e - b >= c_.size() && t.compare(b, c_.size(), c_) == 0; k++) b += c_.size();
      for (int k = 0; k < stop_ && e - b >= c_.size() && t.compare(e - c_.size(), c_.size(), c_) == 0; k++)
        e -= c_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string c_;
  int start_, stop_;
};

class ReplaceDec : public Decoder {
 public:
  ReplaceDec(const json& pattern, std::string content, const std::string& origin) : content_(std::move(content)) {
    if (pattern.contains("String")) literal_ = pattern["String"].get<std::string>();
    else if (pattern.contains("Regex")) re_ = std::make_unique<Regex>(pattern["Regex"].get<std::string>());
    else fail("tokenizer", "{}: decoder Replace: pattern needs String or Regex", origin);
  }
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::pair<uint32_t, uint32_t>> m;
    for (auto& t : tokens) {
      m.clear();
      if (re_) {
        re_->find_all(t, m);
      } else if (!literal_.empty()) {
        for (size_t pos = t.find(literal_); pos != std::string::npos; pos = t.find(literal_, pos + literal_.size()))
          m.emplace_back(uint32_t(pos), uint32_t(pos + literal_.size()));
      }
      if (m.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [b, e] : m) {
        out.append(t, prev, b - prev);
        out += content_;
        prev = e;
      }
      out.append(t, prev);
      t.swap(out);
    }
  }

 private:
  std::string literal_, content_;
  std::unique_ptr<Regex> re_;
};

class MetaspaceDec : public Decoder {
 public:
  MetaspaceDec(std::string repl, bool strip_first) : repl_(std::move(repl)), strip_first_(strip_first) {}
  // As HF: in the first token every replacement is dropped (not only a leading one), unless the scheme is
  // "never"; elsewhere each becomes a space.
  void apply(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); i++) {
      std::string& t = tokens[i];
      std::string out;
      const bool drop = i == 0 && strip_first_;
      for (size_t pos = 0; pos < t.size();) {
        if (!repl_.empty() && t.compare(pos, repl_.size(), repl_) == 0) {
          if (!drop) out.push_back(' ');
          pos += repl_.size();
        } else {
          out.push_back(t[pos++]);
        }
      }
      t.swap(out);
    }
  }

 private:
  std::string repl_;
  bool strip_first_;
};

class SuffixDec : public Decoder {  // BPEDecoder: the end-of-word suffix becomes a space
 public:
  explicit SuffixDec(std::string suffix) : s_(std::move(suffix)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); i++) {
      std::string& t = tokens[i];
      size_t pos;
      std::string out;
      size_t prev = 0;
      while (!s_.empty() && (pos = t.find(s_, prev)) != std::string::npos) {
        out.append(t, prev, pos - prev);
        if (i + 1 < tokens.size()) out.push_back(' ');
        prev = pos + s_.size();
      }
      out.append(t, prev);
      t.swap(out);
    }
  }

 private:
  std::string s_;
};

// WordPiece: pieces after the first lose their prefix ("##") or get a leading space; `cleanup` undoes the
// spaces BERT's splitting put before punctuation and contractions, token by token as HF does.
class WordPieceDec : public Decoder {
 public:
  WordPieceDec(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void apply(std::vector<std::string>& tokens) const override {
    static const std::pair<const char*, const char*> kCleanup[] = {
        {" .", "."},       {" ?", "?"},        {" !", "!"},      {" ,", ","},    {" ' ", "'"},   {" n't", "n't"},
        {" 'm", "'m"},     {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t i = 0; i < tokens.size(); i++) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.starts_with(prefix_)) t.erase(0, prefix_.size());
        else t.insert(0, " ");
      }
      if (!cleanup_) continue;
      for (auto [from, to] : kCleanup) {
        std::string_view f(from);
        std::string out;
        size_t prev = 0, pos;
        while ((pos = t.find(f, prev)) != std::string::npos) {
          out.append(t, prev, pos - prev);
          out += to;
          prev = pos + f.size();
        }
        if (prev == 0) continue;
        out.append(t, prev);
        t.swap(out);
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class SequenceDec : public Decoder {
 public:
  std::vector<std::unique_ptr<Decoder>> items;
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& d : items) d->apply(tokens);
  }
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& origin) {
  if (j.is_null()) return nullptr;
  std::string type = j.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Strip")
    return std::make_unique<StripDec>(j.value("content", std::string(" ")), j.value("start", 0), j.value("stop", 0));
  if (type == "Replace")
    return std::make_unique<ReplaceDec>(j.at("pattern"), j.value("content", std::string()), origin);
  if (type == "Metaspace") {
    bool strip = true;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) strip = j["prepend_scheme"] != "never";
    else if (j.contains("add_prefix_space")) strip = j.value("add_prefix_space", true);
    return std::make_unique<MetaspaceDec>(j.value("replacement", std::string("\xE2\x96\x81")), strip);
  }
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDec>(j.value("prefix", std::string("##")), j.value("cleanup", true));
  }
  if (type == "BPEDecoder") return std::make_unique<SuffixDec>(j.value("suffix", std::string("</w>")));
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceDec>();
    for (auto& item : j.at("decoders"))
      if (auto d = make_decoder(item, origin)) seq->items.push_back(std::move(d));
    return seq;
  }
  fail("tokenizer", "{}: decoder: unsupported type '{}'", origin, type);
}

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDec>(); }

std::unique_ptr<Decoder> make_spm_decoder(bool strip_leading_space) {
  auto seq = std::make_unique<SequenceDec>();
  seq->items.push_back(std::make_unique<ReplaceDec>(json{{"String", "\xE2\x96\x81"}}, " ", "gguf"));
  seq->items.push_back(std::make_unique<ByteFallbackDec>());
  seq->items.push_back(std::make_unique<FuseDec>());
  if (strip_leading_space) seq->items.push_back(std::make_unique<StripDec>(" ", 1, 0));
  return seq;
}

}  // namespace lathe::tok
