// Gopher repetition statistics (clean stage filters): duplicate lines, the most frequent 2-4-grams of
// words, and the words covered by duplicated 5-10-grams.
//
// Every record goes through this, so it allocates nothing per record and compares no strings per n-gram:
// words get exact ids first (a hash table that compares the bytes on a hash match), and the n-grams of
// each size get exact ids from the (n-1)-gram id at i and the word id at i+n-1, a 64-bit key compared
// whole. Equal ids therefore mean equal n-grams, with no collision to accept; the tables are reused
// across sizes, records and calls on a thread, a generation stamp marking the current size's slots.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lathe/data/clean_internal.h"

namespace lathe::data::clean_detail {

namespace {

inline bool is_space(unsigned char c) { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r'); }

inline uint64_t mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

// Bytes of a word to 64 bits (only a bucket choice: equal words are confirmed by comparing bytes).
inline uint64_t word_hash(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull * (n + 1);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix(h ^ w);
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t k = 0; k < n; k++) w |= uint64_t(static_cast<unsigned char>(p[k])) << (8 * k);
  return mix(h ^ w);
}

struct Slot {
  uint64_t key;
  uint32_t id, gen, rep;  // rep: a word index holding this key's word (word table only)
};

// Open addressing over a per-thread table; `begin` starts a new key space (one n-gram size).
struct IdTable {
  std::vector<Slot> slots;
  uint32_t gen = 0;
  size_t mask = 0;
  int shift = 0;
  uint32_t next = 0;  // ids handed out since begin
  void begin(size_t keys) {
    size_t cap = 64;
    int bits = 6;
    while (cap < 2 * keys) cap <<= 1, bits++;
    if (slots.size() < cap) {
      slots.assign(cap, Slot{0, 0, 0, 0});
      gen = 0;
    }
    if (++gen == 0) {  // the stamp wrapped: forget every slot once
      for (Slot& s : slots) s.gen = 0;
      gen = 1;
    }
    mask = cap - 1;
    shift = 64 - bits;
    next = 0;
  }
  size_t home(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift); }
};

}  // namespace

size_t split_words(std::string_view text, std::vector<std::string_view>& words) {
  words.clear();
  const char* p = text.data();
  const size_t n = text.size();
  size_t i = 0;
  while (true) {
    while (i < n && is_space(static_cast<unsigned char>(p[i]))) i++;
    if (i == n) break;
    size_t j = i + 1;
    while (j < n && !is_space(static_cast<unsigned char>(p[j]))) j++;
    words.emplace_back(p + i, j - i);
    i = j;
  }
  return words.size();
}

RepetitionStats repetition_stats_of(std::string_view text, const std::vector<std::string_view>& words) {
  RepetitionStats r;
  // Lines (paragraph-level repetition; Gopher also checks paragraphs, which our blank-line chunking
  // already separates). Every occurrence after a line's first counts as a duplicate.
  thread_local std::vector<std::string_view> lines;
  lines.clear();
  size_t chars = 0;
  for (size_t p = 0; p <= text.size();) {
    size_t nl = std::min(text.find('\n', p), text.size());
    std::string_view l = text.substr(p, nl - p);
    p = nl + 1;
    if (l.find_first_not_of(" \t") != std::string_view::npos) {
      lines.push_back(l);
      chars += l.size();
    }
    if (nl == text.size()) break;
  }
  if (lines.size() > 1) {
    std::sort(lines.begin(), lines.end());
    size_t dup_lines = 0, dup_chars = 0;
    for (size_t i = 1; i < lines.size(); i++)
      if (lines[i] == lines[i - 1]) {
        dup_lines++;
        dup_chars += lines[i].size();
      }
    r.dup_line_fraction = double(dup_lines) / double(lines.size());
    if (chars) r.dup_line_char_fraction = double(dup_chars) / double(chars);
  }
  const size_t W = words.size();
  thread_local std::vector<size_t> pre;  // pre[i]: bytes of words [0, i)
  pre.resize(W + 1);
  pre[0] = 0;
  for (size_t i = 0; i < W; i++) pre[i + 1] = pre[i] + words[i].size();
  const size_t word_chars = pre[W];
  if (word_chars == 0) return r;

  thread_local IdTable table;
  thread_local std::vector<uint32_t> wid, cls, cnt, first, active;
  wid.resize(W);
  cls.resize(W);
  cnt.resize(W);
  first.resize(W);
  table.begin(W);
  const char* const text_end = text.data() + text.size();
  for (size_t i = 0; i < W; i++) {
    const std::string_view w = words[i];
    size_t at;
    if (w.size() < 8) {
      // Up to 7 bytes are their own key (length in the top byte, bit 63 clear): no byte compare.
      uint64_t key = 0;
      if (w.data() + 8 <= text_end) {
        std::memcpy(&key, w.data(), 8);
        key &= (uint64_t(1) << (8 * w.size())) - 1;
      } else {
        for (size_t k = 0; k < w.size(); k++) key |= uint64_t(static_cast<unsigned char>(w[k])) << (8 * k);
      }
      key |= uint64_t(w.size()) << 56;
      at = table.home(key);
      while (table.slots[at].gen == table.gen && table.slots[at].key != key) at = (at + 1) & table.mask;
      if (table.slots[at].gen != table.gen) table.slots[at] = Slot{key, table.next++, table.gen, uint32_t(i)};
    } else {
      const uint64_t key = word_hash(w.data(), w.size()) | (uint64_t(1) << 63);
      at = table.home(key);
      while (table.slots[at].gen == table.gen &&
             !(table.slots[at].key == key && words[table.slots[at].rep] == w))
        at = (at + 1) & table.mask;
      if (table.slots[at].gen != table.gen) table.slots[at] = Slot{key, table.next++, table.gen, uint32_t(i)};
    }
    wid[i] = table.slots[at].id;
  }
  // cls[i]: the id of the current size's n-gram at i, or kUnique when that n-gram occurs once. A
  // unique n-gram at i or i+1 makes the (n+1)-gram at i unique, so each size looks only at `active`,
  // the positions whose n-gram repeats: few past n = 2 or 3.
  constexpr uint32_t kUnique = ~0u;
  std::fill(cnt.begin(), cnt.begin() + table.next, 0);
  for (size_t i = 0; i < W; i++) cnt[wid[i]]++;
  active.clear();
  for (size_t i = 0; i < W; i++) {
    cls[i] = cnt[wid[i]] > 1 ? wid[i] : kUnique;
    if (cls[i] != kUnique) active.push_back(uint32_t(i));
  }
  for (size_t n = 2; n <= 10 && !active.empty(); n++) {
    if (W < n) break;
    const size_t m = W - n + 1;  // n-grams
    table.begin(active.size());
    size_t kept = 0;
    for (const uint32_t i : active) {
      if (i >= m || cls[i + 1] == kUnique) {  // no n-gram at i, or its last n-1 words occur once
        cls[i] = kUnique;
        continue;
      }
      const uint64_t key = (uint64_t(cls[i]) << 32) | wid[i + n - 1];
      size_t at = table.home(key);
      while (table.slots[at].gen == table.gen && table.slots[at].key != key) at = (at + 1) & table.mask;
      Slot& s = table.slots[at];
      if (s.gen != table.gen) {
        s = Slot{key, table.next, table.gen, 0};
        cnt[table.next] = 0;
        first[table.next] = i;
        table.next++;
      }
      cls[i] = s.id;
      cnt[s.id]++;
      active[kept++] = i;
    }
    active.resize(kept);
    // Drop the n-grams that occur once; what is left repeats.
    kept = 0;
    for (const uint32_t i : active) {
      if (cnt[cls[i]] > 1) active[kept++] = i;
      else cls[i] = kUnique;
    }
    active.resize(kept);
    if (n <= 4) {
      size_t best = 0;
      for (uint32_t id = 0; id < table.next; id++)
        if (cnt[id] > 1) best = std::max(best, (pre[first[id] + n] - pre[first[id]]) * size_t(cnt[id]));
      r.top_ngram[n - 2] = double(best) / double(word_chars);
    } else {
      // Bytes of the words covered by some repeated n-gram: each occurrence (in order) adds the words
      // past the furthest one already counted.
      size_t dup = 0, reach = 0;
      for (const uint32_t i : active) {
        const size_t from = std::max<size_t>(i, reach);
        dup += pre[i + n] - pre[from];
        reach = i + n;
      }
      r.dup_ngram[n - 5] = double(dup) / double(word_chars);
    }
  }
  return r;
}

}  // namespace lathe::data::clean_detail

namespace lathe::data {

RepetitionStats repetition_stats(std::string_view text) {
  thread_local std::vector<std::string_view> words;
  clean_detail::split_words(text, words);
  return clean_detail::repetition_stats_of(text, words);
}

}  // namespace lathe::data
