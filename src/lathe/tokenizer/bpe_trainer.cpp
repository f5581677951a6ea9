// Byte-level BPE training. Words are counted once; each merge step touches only the words that hold
// the chosen pair (pair -> word index), and the best pair comes from a priority queue whose stale
// entries are re-checked when popped (lazy invalidation), so a few MB of text trains in seconds.
#include "lathe/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_set>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/chat/chat_template.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {
namespace {

using ojson = nlohmann::ordered_json;

// Qwen2's split regex: like Llama 3's but digits split one by one (numbers generalise better in a
// small vocabulary). lathe's Split pre-tokenizer and HF's both run it.
const char* kSplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

ojson byte_level_object() {
  return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
}

ojson pre_tokenizer_object() {
  ojson split = {{"type", "Split"}, {"pattern", {{"Regex", kSplitRegex}}}, {"behavior", "Isolated"}, {"invert", false}};
  return ojson{{"type", "Sequence"}, {"pretokenizers", ojson::array({split, byte_level_object()})}};
}

// GPT-2's byte order: the printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') first, then the rest.
std::vector<int> byte_level_order() {
  std::vector<int> order;
  std::vector<bool> used(256, false);
  for (int b = 0; b < 256; b++)
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) order.push_back(b), used[b] = true;
  for (int b = 0; b < 256; b++)
    if (!used[b]) order.push_back(b);
  return order;
}

inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Word {
  std::vector<int32_t> sym;
  uint64_t count;
};

}  // namespace

std::string bpe_pre_tokenizer_json() { return pre_tokenizer_object().dump(); }

BpeTrainer::BpeTrainer(BpeTrainOptions opt) : opt_(std::move(opt)) {
  if (opt_.vocab_size < 256 + int(opt_.special_tokens.size()))
    fail("tokenizer", "vocab size {} is below 256 byte tokens + {} special tokens", opt_.vocab_size,
         opt_.special_tokens.size());
  for (auto& s : opt_.special_tokens) {
    std::string fixed;
    if (s.empty() || utf8_sanitize(s, fixed) > 0) fail("tokenizer", "special token '{}' is empty or not UTF-8", s);
  }
}

void BpeTrainer::add_text(std::string_view raw) {
  static const auto pre = make_pre_tokenizer(nlohmann::json::parse(bpe_pre_tokenizer_json()), "bpe-trainer");
  std::string fixed;
  std::string_view text = utf8_sanitize(raw, fixed) > 0 ? std::string_view(fixed) : raw;
  Pieces p;
  // Cut special-token strings out (leftmost, longest first) so they never feed merges.
  size_t pos = 0;
  auto flush = [&](size_t end) {
    if (end > pos) p.spans.push_back({uint32_t(pos), uint32_t(end - pos), -1});
  };
  p.buf.assign(text);
  while (pos < text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    for (auto& s : opt_.special_tokens) {
      size_t f = text.find(s, pos);
      if (f < best || (f == best && s.size() > best_len)) best = f, best_len = s.size();
    }
    if (best == std::string_view::npos) break;
    flush(best);
    pos = best + best_len;
  }
  flush(text.size());
  if (text.size() > UINT32_MAX) fail("tokenizer", "one text of {} bytes is too large (4 GiB max)", text.size());
  pre->apply(p);
  for (auto& s : p.spans) words_[std::string(std::string_view(p.buf).substr(s.off, s.len))]++;
}

BpeTrainResult BpeTrainer::train() const {
  BpeTrainResult r;
  r.special_tokens = opt_.special_tokens;
  r.distinct_words = words_.size();
  const auto& map = ByteLevelMap::get();
  std::vector<std::string>& tok = r.vocab;
  std::unordered_map<std::string, int32_t> ids;
  for (int b : byte_level_order()) {
    ids[map.byte_to_str[b]] = int32_t(tok.size());
    tok.push_back(map.byte_to_str[b]);
  }
  // Words in a fixed order (sorted) so every run builds identical indices.
  std::vector<std::pair<std::string_view, uint64_t>> sorted(words_.begin(), words_.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [w, c] : sorted) {
    Word wd{{}, c};
    for (size_t i = 0; i < w.size();) {
      int len;
      utf8_decode(w, i, &len);  // a ByteLevel char is one mapped byte
      auto it = ids.find(std::string(w.substr(i, size_t(len))));
      LATHE_CHECK(it != ids.end());
      wd.sym.push_back(it->second);
      i += size_t(len);
    }
    words.push_back(std::move(wd));
  }
  std::unordered_map<uint64_t, uint64_t> counts;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (uint32_t wi = 0; wi < words.size(); wi++) {
    auto& s = words[wi].sym;
    for (size_t i = 0; i + 1 < s.size(); i++) {
      uint64_t k = pair_key(s[i], s[i + 1]);
      counts[k] += words[wi].count;
      auto& v = where[k];
      if (v.empty() || v.back() != wi) v.push_back(wi);
    }
  }
  struct Entry {
    uint64_t count;
    uint64_t key;
  };
  // Max-heap order: higher count first, then smaller (first, second) token strings.
  auto worse = [&tok](const Entry& x, const Entry& y) {
    if (x.count != y.count) return x.count < y.count;
    const std::string& xa = tok[x.key >> 32];
    const std::string& ya = tok[y.key >> 32];
    if (xa != ya) return xa > ya;
    return tok[uint32_t(x.key)] > tok[uint32_t(y.key)];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  for (auto& [k, c] : counts) heap.push({c, k});

  const size_t target = size_t(opt_.vocab_size) - opt_.special_tokens.size();
  std::unordered_set<uint64_t> grown;
  std::vector<int32_t> merged;
  while (tok.size() < target) {
    if (heap.empty()) {
      r.pairs_exhausted = true;
      break;
    }
    Entry e = heap.top();
    heap.pop();
    auto cit = counts.find(e.key);
    uint64_t actual = cit == counts.end() ? 0 : cit->second;
    if (actual != e.count) {
      // Stale: a smaller count goes back in; a larger one has its own fresher entry.
      if (actual > 0 && actual < e.count) heap.push({actual, e.key});
      continue;
    }
    if (actual < opt_.min_frequency) {
      r.pairs_exhausted = true;
      break;
    }
    int32_t a = int32_t(e.key >> 32), b = int32_t(uint32_t(e.key));
    std::string joined = tok[a] + tok[b];
    r.merges.emplace_back(tok[a], tok[b]);
    int32_t z;
    if (auto it = ids.find(joined); it != ids.end()) {
      z = it->second;  // reached before by another split: same id, merge still recorded (as HF does)
    } else {
      z = int32_t(tok.size());
      ids.emplace(joined, z);
      tok.push_back(std::move(joined));
    }
    std::vector<uint32_t> ws = std::move(where[e.key]);
    where.erase(e.key);
    grown.clear();
    for (uint32_t wi : ws) {
      Word& w = words[wi];
      auto& s = w.sym;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; i++) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < s.size(); i++) {
        uint64_t k = pair_key(s[i], s[i + 1]);
        auto it = counts.find(k);
        if ((it->second -= w.count) == 0) counts.erase(it);
      }
      merged.clear();
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(z);
          i += 2;
        } else {
          merged.push_back(s[i++]);
        }
      }
      s.swap(merged);
      for (size_t i = 0; i + 1 < s.size(); i++) {
        uint64_t k = pair_key(s[i], s[i + 1]);
        counts[k] += w.count;
        if (s[i] == z || s[i + 1] == z) {
          grown.insert(k);
          auto& v = where[k];
          if (v.empty() || v.back() != wi) v.push_back(wi);
        }
      }
    }
    // Pairs next to the new token gained counts: they get fresh entries (sorted for determinism).
    std::vector<uint64_t> g(grown.begin(), grown.end());
    std::sort(g.begin(), g.end());
    for (uint64_t k : g)
      if (auto it = counts.find(k); it != counts.end()) heap.push({it->second, k});
  }
  return r;
}

std::string bpe_tokenizer_json(const BpeTrainResult& r) {
  ojson vocab = ojson::object();
  for (size_t i = 0; i < r.vocab.size(); i++) vocab[r.vocab[i]] = i;
  ojson merges = ojson::array();
  for (auto& [a, b] : r.merges) merges.push_back(a + " " + b);  // ByteLevel tokens hold no spaces
  ojson added = ojson::array();
  for (size_t i = 0; i < r.special_tokens.size(); i++)
    added.push_back({{"id", r.vocab.size() + i}, {"content", r.special_tokens[i]}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  ojson model = {{"type", "BPE"},          {"dropout", nullptr},         {"unk_token", nullptr},
                 {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                 {"fuse_unk", false},      {"byte_fallback", false},     {"ignore_merges", false},
                 {"vocab", vocab},         {"merges", merges}};
  ojson j = {{"version", "1.0"},
             {"truncation", nullptr},
             {"padding", nullptr},
             {"added_tokens", added},
             {"normalizer", nullptr},
             {"pre_tokenizer", pre_tokenizer_object()},
             {"post_processor", byte_level_object()},
             {"decoder", byte_level_object()},
             {"model", model}};
  return j.dump(1) + "\n";
}

void write_trained_tokenizer(const std::string& dir, const BpeTrainResult& r, const std::string& chat_template) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("tokenizer", "{}: cannot create directory: {}", dir, ec.message());
  auto id_of = [&](const std::string& s) -> int64_t {
    for (size_t i = 0; i < r.special_tokens.size(); i++)
      if (r.special_tokens[i] == s) return int64_t(r.vocab.size() + i);
    return -1;
  };
  int64_t eot = id_of("<|endoftext|>"), im_end = id_of("<|im_end|>");
  // Chat models stop at the end of the assistant turn (<|im_end|>); plain text ends with <|endoftext|>.
  int64_t eos = (!chat_template.empty() && im_end >= 0) ? im_end : eot;
  auto tok_or_null = [&](int64_t id) -> ojson {
    return id < 0 ? ojson(nullptr) : ojson(r.special_tokens[size_t(id) - r.vocab.size()]);
  };
  ojson decoder = ojson::object();
  for (size_t i = 0; i < r.special_tokens.size(); i++)
    decoder[std::to_string(r.vocab.size() + i)] = {{"content", r.special_tokens[i]}, {"lstrip", false},
                                                   {"normalized", false}, {"rstrip", false},
                                                   {"single_word", false}, {"special", true}};
  ojson cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
               {"add_bos_token", false},
               {"add_eos_token", false},
               {"bos_token", nullptr},
               {"eos_token", tok_or_null(eos)},
               {"pad_token", tok_or_null(eot >= 0 ? eot : eos)},
               {"unk_token", nullptr},
               {"clean_up_tokenization_spaces", false},
               {"model_max_length", 131072},
               {"added_tokens_decoder", decoder}};
  if (!chat_template.empty()) cfg["chat_template"] = ChatTemplate::builtin_source(chat_template);
  ojson eos_ids = ojson::array();
  if (eos >= 0) eos_ids.push_back(eos);
  if (eot >= 0 && eot != eos) eos_ids.push_back(eot);
  ojson gen = {{"bos_token_id", eot >= 0 ? ojson(eot) : ojson(nullptr)}, {"eos_token_id", eos_ids}};
  if (eot >= 0) gen["pad_token_id"] = eot;
  write_file_atomic(dir + "/tokenizer.json", bpe_tokenizer_json(r));
  write_file_atomic(dir + "/tokenizer_config.json", cfg.dump(2) + "\n");
  write_file_atomic(dir + "/generation_config.json", gen.dump(2) + "\n");
}

}  // namespace lathe::tok
