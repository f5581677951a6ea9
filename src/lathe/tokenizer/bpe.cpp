// Models: rank-based BPE (tokenizer.json "BPE", GGUF gpt2) and score-based SentencePiece BPE (GGUF
// llama). Both run a priority-queue merge loop over a linked list of symbols; the per-word result cache
// lives in the pipeline, so a model sees each distinct word once per thread.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "lathe/core/error.h"
#include "lathe/core/json_int.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {
namespace {

using json = nlohmann::json;

std::atomic<uint64_t> g_instances{1};

// Open-addressing map (id_a, id_b) -> (rank, new_id); the merge loop's hot lookup.
class MergeTable {
 public:
  void build(const std::vector<std::array<int32_t, 4>>& entries) {  // a, b, rank, new_id
    size_t cap = 16;
    while (cap < entries.size() * 2) cap <<= 1;
    mask_ = cap - 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, {0, 0});
    for (auto& e : entries) {
      uint64_t k = key(e[0], e[1]);
      size_t h = hash(k) & mask_;
      while (keys_[h] != kEmpty && keys_[h] != k) h = (h + 1) & mask_;
      if (keys_[h] == k) continue;  // a duplicate merge keeps its first (best) rank
      keys_[h] = k;
      vals_[h] = {e[2], e[3]};
    }
  }
  const std::pair<int32_t, int32_t>* find(int32_t a, int32_t b) const {
    if (keys_.empty()) return nullptr;
    uint64_t k = key(a, b);
    for (size_t h = hash(k) & mask_;; h = (h + 1) & mask_) {
      if (keys_[h] == k) return &vals_[h];
      if (keys_[h] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static size_t hash(uint64_t k) { return size_t((k * 0x9E3779B97F4A7C15ull) >> 17); }
  size_t mask_ = 0;
  std::vector<uint64_t> keys_;
  std::vector<std::pair<int32_t, int32_t>> vals_;
};

struct Symbol {
  int32_t id;
  int32_t prev, next;
  uint32_t off, len;  // bytes of the word this symbol covers
};

class Bpe : public Model {
 public:
  BpeOptions opt;
  MergeTable merges;
  int32_t unk_id = -1;
  int32_t byte_ids[256];

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    if (opt.ignore_merges) {
      int32_t id = find(word);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    thread_local std::vector<Symbol> syms;
    thread_local std::string key;
    syms.clear();
    int32_t pending_unk_len = -1;  // fused run of unknown characters, not yet emitted
    uint32_t pending_unk_off = 0;
    auto add = [&](int32_t id, uint32_t off, uint32_t len) {
      syms.push_back({id, int32_t(syms.size()) - 1, int32_t(syms.size()) + 1, off, len});
    };
    const bool affix = !opt.continuing_subword_prefix.empty() || !opt.end_of_word_suffix.empty();
    for (size_t i = 0; i < word.size();) {
      uint32_t len = uint32_t(std::min<size_t>(utf8_lead_len(uint8_t(word[i])), word.size() - i));
      std::string_view c = word.substr(i, len);
      int32_t id;
      if (affix) {
        key.clear();
        if (i > 0) key += opt.continuing_subword_prefix;
        key.append(c);
        if (i + len == word.size()) key += opt.end_of_word_suffix;
        id = find(key);
      } else {
        id = find(c);
      }
      if (id >= 0) {
        if (pending_unk_len >= 0) add(unk_id, pending_unk_off, uint32_t(pending_unk_len)), pending_unk_len = -1;
        add(id, uint32_t(i), len);
      } else {
        bool done = false;
        if (opt.byte_fallback) {
          bool all = true;
          for (char b : c) all = all && byte_ids[uint8_t(b)] >= 0;
          if (all) {
            for (uint32_t k = 0; k < len; k++) add(byte_ids[uint8_t(c[k])], uint32_t(i + k), 1);
            done = true;
          }
        }
        if (!done && unk_id >= 0) {
          if (pending_unk_len >= 0 && opt.fuse_unk) {
            pending_unk_len += int32_t(len);
          } else {
            if (pending_unk_len >= 0) add(unk_id, pending_unk_off, uint32_t(pending_unk_len));
            pending_unk_off = uint32_t(i);
            pending_unk_len = int32_t(len);
          }
        }
      }
      i += len;
    }
    if (pending_unk_len >= 0) add(unk_id, pending_unk_off, uint32_t(pending_unk_len));
    if (syms.empty()) return;
    syms.back().next = -1;
    merge_all(syms);
    for (auto& s : syms)
      if (s.len > 0) out.push_back(s.id);
  }

 private:
  struct Merge {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator<(const Merge& o) const {  // std::priority_queue pops the largest: invert
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };

  void merge_all(std::vector<Symbol>& s) const {
    thread_local std::vector<Merge> heap;
    heap.clear();
    for (size_t i = 0; i + 1 < s.size(); i++)
      if (auto m = merges.find(s[i].id, s[i + 1].id)) heap.push_back({m->first, int32_t(i), m->second});
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      Merge top = heap.back();
      heap.pop_back();
      Symbol& cur = s[top.pos];
      if (cur.len == 0 || cur.next < 0) continue;
      Symbol& right = s[cur.next];
      auto m = merges.find(cur.id, right.id);
      if (!m || m->second != top.new_id) continue;  // stale entry
      cur.id = top.new_id;
      cur.len += right.len;
      right.len = 0;
      cur.next = right.next;
      if (right.next >= 0) s[right.next].prev = top.pos;
      if (cur.prev >= 0) {
        if (auto pm = merges.find(s[cur.prev].id, cur.id)) {
          heap.push_back({pm->first, cur.prev, pm->second});
          std::push_heap(heap.begin(), heap.end());
        }
      }
      if (cur.next >= 0) {
        if (auto nm = merges.find(cur.id, s[cur.next].id)) {
          heap.push_back({nm->first, top.pos, nm->second});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
  }
};

class SpmScores : public Model {
 public:
  std::vector<float> scores;
  int32_t unk_id = -1;
  int32_t byte_ids[256];

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    thread_local std::vector<Symbol> syms;
    syms.clear();
    for (size_t i = 0; i < word.size();) {
      uint32_t len = uint32_t(std::min<size_t>(utf8_lead_len(uint8_t(word[i])), word.size() - i));
      syms.push_back({-1, int32_t(syms.size()) - 1, int32_t(syms.size()) + 1, uint32_t(i), len});
      i += len;
    }
    if (syms.empty()) return;
    syms.back().next = -1;
    struct Bigram {
      float score;
      int32_t left, right;
      uint32_t size;
      bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
    };
    std::priority_queue<Bigram> q;
    auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      std::string_view t = word.substr(syms[l].off, syms[l].len + syms[r].len);
      int32_t id = find(t);
      if (id < 0) return;
      q.push({scores[size_t(id)], l, r, uint32_t(t.size())});
    };
    for (size_t i = 1; i < syms.size(); i++) try_add(int32_t(i - 1), int32_t(i));
    while (!q.empty()) {
      Bigram b = q.top();
      q.pop();
      Symbol& l = syms[b.left];
      Symbol& r = syms[b.right];
      if (l.len == 0 || r.len == 0 || l.len + r.len != b.size || l.next != b.right) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (int32_t i = 0; i >= 0 && i < int32_t(syms.size()); i = syms[i].next) {
      const Symbol& s = syms[i];
      std::string_view t = word.substr(s.off, s.len);
      int32_t id = find(t);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char c : t) {
        int32_t b = byte_ids[uint8_t(c)];
        if (b >= 0) out.push_back(b);
        else if (unk_id >= 0) out.push_back(unk_id);
      }
    }
  }
};

}  // namespace

void set_model_vocab(Model& m, std::vector<std::string> vocab) {
  m.vocab = std::move(vocab);
  m.token_ids.reserve(m.vocab.size());
  for (size_t i = 0; i < m.vocab.size(); i++)
    if (!m.vocab[i].empty()) m.token_ids.emplace(m.vocab[i], int32_t(i));
  m.instance = g_instances.fetch_add(1);
}

void fill_byte_ids(const Model& m, int32_t* byte_ids) {
  for (int b = 0; b < 256; b++) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_ids[b] = m.find(name);
  }
}


std::unique_ptr<Model> make_bpe(std::vector<std::string> vocab,
                                const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt,
                                const std::string& origin) {
  auto m = std::make_unique<Bpe>();
  set_model_vocab(*m, std::move(vocab));
  m->opt = std::move(opt);
  if (!m->opt.unk_token.empty()) m->unk_id = m->find(m->opt.unk_token);
  fill_byte_ids(*m, m->byte_ids);
  size_t prefix_len = m->opt.continuing_subword_prefix.size();
  std::vector<std::array<int32_t, 4>> entries;
  entries.reserve(merges.size());
  std::string joined;
  for (size_t r = 0; r < merges.size(); r++) {
    const auto& [a, b] = merges[r];
    int32_t ia = m->find(a), ib = m->find(b);
    if (ia < 0 || ib < 0)
      fail("tokenizer", "{}: model.merges[{}]: '{} {}' uses a token missing from the vocabulary", origin, r, a, b);
    joined = a;
    joined.append(b, std::min(prefix_len, b.size()));
    int32_t id = m->find(joined);
    if (id < 0) fail("tokenizer", "{}: model.merges[{}]: merged token '{}' is not in the vocabulary", origin, r, joined);
    entries.push_back({ia, ib, int32_t(r), id});
  }
  m->merges.build(entries);
  return m;
}

std::vector<std::string> parse_vocab_object(const json& v, const std::string& origin) {
  if (!v.is_object()) fail("tokenizer", "{}: model.vocab must be an object", origin);
  if (v.empty()) fail("tokenizer", "{}: model.vocab is empty", origin);
  std::vector<std::string> vocab;
  std::vector<bool> taken;  // ids seen, so a second token claiming one is reported, not silently kept
  for (auto it = v.begin(); it != v.end(); ++it) {
    int64_t id;
    if (!json_to_int64(it.value(), &id))
      fail("tokenizer", "{}: model.vocab['{}']: id is {}", origin, it.key(), json_int_problem(it.value()));
    if (id < 0 || id > kMaxTokenId)
      fail("tokenizer", "{}: model.vocab['{}']: id {} is outside [0, {}]", origin, it.key(), id, kMaxTokenId);
    if (size_t(id) >= vocab.size()) {
      vocab.resize(size_t(id) + 1);
      taken.resize(size_t(id) + 1);
    }
    if (taken[size_t(id)])
      fail("tokenizer", "{}: model.vocab: id {} is used by both '{}' and '{}'", origin, id, vocab[size_t(id)], it.key());
    taken[size_t(id)] = true;
    vocab[size_t(id)] = it.key();
  }
  return vocab;
}

std::unique_ptr<Model> make_bpe_from_json(const json& j, const std::string& origin) {
  std::string type = j.value("type", "BPE");
  if (type != "BPE") fail("tokenizer", "{}: model.type '{}' is not supported (BPE, Unigram or WordPiece)", origin, type);
  std::vector<std::string> vocab = parse_vocab_object(j.at("vocab"), origin);
  std::vector<std::pair<std::string, std::string>> merges;
  if (j.contains("merges") && j["merges"].is_array()) {
    merges.reserve(j["merges"].size());
    for (auto& mj : j["merges"]) {
      if (mj.is_string()) {
        const std::string& s = mj.get_ref<const std::string&>();
        size_t sp = s.find(' ');  // tokens never hold a plain space (it is Ġ or ▁), so the first one splits
        if (sp == std::string::npos) fail("tokenizer", "{}: model.merges: '{}' is not 'a b'", origin, s);
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (mj.is_array() && mj.size() == 2) {
        merges.emplace_back(mj[0].get<std::string>(), mj[1].get<std::string>());
      } else {
        fail("tokenizer", "{}: model.merges: entry must be 'a b' or [a, b]", origin);
      }
    }
  }
  return make_bpe_from_parts(j, std::move(vocab), merges, origin);
}

std::unique_ptr<Model> make_bpe_from_parts(const json& j, std::vector<std::string> vocab,
                                           const std::vector<std::pair<std::string, std::string>>& merges,
                                           const std::string& origin) {
  BpeOptions opt;
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  opt.unk_token = str("unk_token");
  opt.continuing_subword_prefix = str("continuing_subword_prefix");
  opt.end_of_word_suffix = str("end_of_word_suffix");
  auto flag = [&](const char* k) { return j.contains(k) && j[k].is_boolean() && j[k].get<bool>(); };
  opt.fuse_unk = flag("fuse_unk");
  opt.byte_fallback = flag("byte_fallback");
  opt.ignore_merges = flag("ignore_merges");
  return make_bpe(std::move(vocab), merges, std::move(opt), origin);
}

std::unique_ptr<Model> make_spm_scores(std::vector<std::string> vocab, std::vector<float> scores, int32_t unk_id) {
  auto m = std::make_unique<SpmScores>();
  set_model_vocab(*m, std::move(vocab));
  scores.resize(m->vocab.size(), 0.0f);
  m->scores = std::move(scores);
  m->unk_id = unk_id;
  fill_byte_ids(*m, m->byte_ids);
  return m;
}

}  // namespace lathe::tok
