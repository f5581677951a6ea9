// Gopher repetition statistics (clean stage filters): duplicate lines, the most frequent 2-4-grams of
// words, and the words covered by duplicated 5-10-grams.
//
// Every record goes through this, so it allocates nothing per record and compares no strings per n-gram:
// words get exact ids first (a hash table that compares the bytes on a hash match), and the n-grams of
// each size get exact ids from the (n-1)-gram id at i and the word id at i+n-1, a 64-bit key compared
// whole. Equal ids therefore mean equal n-grams, with no collision to accept; the tables are reused
// across sizes, records and calls on a thread, a generation stamp marking the current size's slots.
// The filter (repetition_verdict) first tries to show from hashed counts that nothing can pass a
// threshold (PassSketch: most texts end there); otherwise it computes a size only while a bound says
// its fraction or a later one could still pass its threshold.
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

// The next word of p[0, len) at or after i: false when none is left; else i and j are its bounds and
// (k1, k2) its key. The end of a word is found 8 bytes at a time. A word of up to 15 bytes is its own
// 128-bit key (its bytes, its length in the top byte), so equal keys are equal words; a longer word is
// keyed by a hash and its length (equal words have equal keys, and the word table compares the bytes).
inline bool next_word(const char* p, size_t len, size_t& i, size_t& j, uint64_t& k1, uint64_t& k2) {
  while (i < len && is_space(static_cast<unsigned char>(p[i]))) i++;
  if (i == len) return false;
  j = i + 1;
  while (true) {
    if (j + 8 <= len) {
      uint64_t x;
      std::memcpy(&x, p + j, 8);
      // Bytes below 0x21; the lowest flag is exact (a borrow only runs upwards from a real one).
      const uint64_t low = (x - 0x2121212121212121ull) & ~x & 0x8080808080808080ull;
      if (low == 0) {
        j += 8;
        continue;
      }
      const size_t k = j + size_t(__builtin_ctzll(low) >> 3);
      if (is_space(static_cast<unsigned char>(p[k]))) {
        j = k;
        break;
      }
      j = k + 1;  // a control byte inside the word
      continue;
    }
    while (j < len && !is_space(static_cast<unsigned char>(p[j]))) j++;
    break;
  }
  const size_t wl = j - i;
  k1 = 0;
  k2 = 0;
  if (wl <= 15) {
    if (i + 16 <= len) {
      std::memcpy(&k1, p + i, 8);
      std::memcpy(&k2, p + i + 8, 8);
      k1 &= wl >= 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * wl)) - 1;
      k2 &= wl <= 8 ? 0 : (uint64_t(1) << (8 * (wl - 8))) - 1;
    } else {
      for (size_t k = 0; k < wl; k++) {
        const uint64_t b = static_cast<unsigned char>(p[i + k]);
        if (k < 8) k1 |= b << (8 * k);
        else k2 |= b << (8 * (k - 8));
      }
    }
    k2 |= uint64_t(wl) << 56;
  } else {
    k1 = word_hash(p + i, wl);
    k2 = (uint64_t(0xFF) << 56) | wl;
  }
  return true;
}

struct Slot {
  uint64_t key, key2;  // key2: the second half of a word's key (word table only)
  uint32_t id, gen;
  uint64_t rep;        // byte offset of a word with this key (word table only)
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
      slots.assign(cap, Slot{0, 0, 0, 0, 0});
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

constexpr uint32_t kUnique = ~0u;

// The n-grams of one text, one size at a time. After `start` the size is 1 (words); `step` moves to
// the next size. At every size: cls[i] is the id of the n-gram at i, or kUnique when it occurs once;
// `active` lists the positions whose n-gram repeats, in order; cnt and first (per id) count the
// n-grams of `active` before the once-only ones were dropped.
struct Ngrams {
  IdTable table;
  std::vector<uint32_t> wid, cls, cnt, first, active;
  std::vector<size_t> pre;  // pre[i]: bytes of words [0, i)
  size_t W = 0, n = 0;
  // Size 2 straight from a table of (first word, second word) counts over the repeated words, when
  // they are few enough: rid numbers them densely, cells counts (all 0 between uses).
  std::vector<uint32_t> rid;
  std::vector<uint16_t> cells;
  uint32_t repeated_words = 0;
  bool direct = false;     // the current size (2) was counted in `cells`
  size_t direct_top = 0;   // its top()

  // Splits `text` into words (runs between ASCII spaces, tabs, CR and LF) and gives each an id; the
  // word count (0 words when the words hold no byte).
  size_t start(std::string_view text) {
    n = 1;
    // Distinct words rarely pass one per 8 bytes; when they do, the table is sized up and filled again.
    for (size_t expect = text.size() / 8 + 16; !intern_words(text, expect);) expect *= 4;
    W = wid.size();
    if (pre[W] == 0) return W;
    cls.resize(W);
    cnt.resize(std::max(W, cnt.size()));
    first.resize(W);
    active.clear();
    rid.assign(table.next, kUnique);
    repeated_words = 0;
    for (size_t i = 0; i < W; i++) {
      cls[i] = cnt[wid[i]] > 1 ? wid[i] : kUnique;
      if (cls[i] == kUnique) continue;
      active.push_back(uint32_t(i));
      if (rid[wid[i]] == kUnique) rid[wid[i]] = repeated_words++;
    }
    return W;
  }
  size_t word_bytes() const { return pre[W]; }

  // One pass over the text (next_word); words of over 15 bytes are compared byte by byte.
  // False (and nothing usable) when more than `expect` distinct words turn up.
  bool intern_words(std::string_view text, size_t expect) {
    pre.assign(1, 0);
    wid.clear();
    if (cnt.size() < expect) cnt.resize(expect);  // word counts, kept as words are met
    const char* const p = text.data();
    const size_t len = text.size();
    table.begin(expect);
    const uint32_t gen = table.gen;
    Slot* const slots = table.slots.data();
    size_t i = 0, j;
    uint64_t k1, k2;
    while (next_word(p, len, i, j, k1, k2)) {
      const size_t wl = j - i;
      size_t at = table.home(k1 ^ mix(k2));
      while (slots[at].gen == gen &&
             !(slots[at].key == k1 && slots[at].key2 == k2 &&
               (wl <= 15 || std::string_view(p + slots[at].rep, wl) == std::string_view(p + i, wl))))
        at = (at + 1) & table.mask;
      if (slots[at].gen != gen) {
        if (table.next == expect) return false;
        cnt[table.next] = 0;
        slots[at] = Slot{k1, k2, table.next++, gen, i};
      }
      const uint32_t id = slots[at].id;
      cnt[id]++;
      wid.push_back(id);
      pre.push_back(pre.back() + wl);
      i = j;
    }
    return true;
  }

  static constexpr size_t kMaxCells = 1 << 14;  // 32 KB of counts

  // Size 1 to 2 by direct counting: the cell of the pair at i is its exact id. The largest count x
  // length over pairs is the largest over positions (equal pairs have equal counts and lengths).
  bool step_to_pairs() {
    n = 2;
    direct = true;
    direct_top = 0;
    if (cells.size() < kMaxCells) cells.assign(kMaxCells, 0);
    const size_t m = W - 1, V = repeated_words;
    size_t kept = 0;
    for (const uint32_t i : active) {
      if (i >= m || cls[i + 1] == kUnique) {
        cls[i] = kUnique;
        continue;
      }
      const uint32_t cell = rid[wid[i]] * uint32_t(V) + rid[wid[i + 1]];
      cls[i] = cell;
      cells[cell]++;
      active[kept++] = i;
    }
    active.resize(kept);
    kept = 0;
    for (const uint32_t i : active) {
      const size_t c = cells[cls[i]];
      if (c > 1) {
        active[kept++] = i;
        direct_top = std::max(direct_top, (pre[i + 2] - pre[i]) * c);
      } else {
        cells[cls[i]] = 0;
        cls[i] = kUnique;
      }
    }
    active.resize(kept);
    for (const uint32_t i : active) cells[cls[i]] = 0;
    return true;
  }

  // Largest count x length of one repeated word (size 1 only): no repeated n-gram covers more than n
  // times this, counting overlaps (each of its n word slots holds occurrences of one word).
  size_t max_word_mass() const {
    size_t best = 0;
    for (const uint32_t i : active) best = std::max(best, size_t(cnt[wid[i]]) * (pre[i + 1] - pre[i]));
    return best;
  }

  // Bytes of the words covered by some repeated n-gram of the current size: each occurrence (in order)
  // adds the words past the furthest one already counted. Never grows with n.
  size_t cover() const {
    size_t dup = 0, reach = 0;
    for (const uint32_t i : active) {
      const size_t from = std::max<size_t>(i, reach);
      dup += pre[i + n] - pre[from];
      reach = i + n;
    }
    return dup;
  }

  // Largest count x length of one repeated n-gram of the current size (n >= 2).
  size_t top() const {
    if (direct) return direct_top;
    size_t best = 0;
    for (uint32_t id = 0; id < table.next; id++)
      if (cnt[id] > 1) best = std::max(best, (pre[first[id] + n] - pre[first[id]]) * size_t(cnt[id]));
    return best;
  }

  // To size n + 1; false when the text has fewer words. A unique n-gram at i or i + 1 makes the
  // (n+1)-gram at i unique, so only `active` is looked at: few positions past n = 2 or 3.
  bool step() {
    if (W < n + 1) return false;
    direct = false;
    if (n == 1 && size_t(repeated_words) * repeated_words <= kMaxCells && W < 65535) return step_to_pairs();
    n++;
    const size_t m = W - n + 1;  // n-grams
    table.begin(active.size());
    const uint32_t gen = table.gen;
    Slot* const slots = table.slots.data();
    size_t kept = 0;
    for (const uint32_t i : active) {
      if (i >= m || cls[i + 1] == kUnique) {  // no n-gram at i, or its last n-1 words occur once
        cls[i] = kUnique;
        continue;
      }
      const uint64_t key = (uint64_t(cls[i]) << 32) | wid[i + n - 1];
      size_t at = table.home(key);
      while (slots[at].gen == gen && slots[at].key != key) at = (at + 1) & table.mask;
      Slot& s = slots[at];
      if (s.gen != gen) {
        s = Slot{key, 0, table.next, gen, 0};
        cnt[table.next] = 0;
        first[table.next] = i;
        table.next++;
      }
      cls[i] = s.id;
      cnt[s.id]++;
      active[kept++] = i;
    }
    active.resize(kept);
    kept = 0;
    for (const uint32_t i : active) {
      if (cnt[cls[i]] > 1) active[kept++] = i;
      else cls[i] = kUnique;
    }
    active.resize(kept);
    return true;
  }
};

// A cheaper way to the filter's most common verdict, "keep": bounds on every n-gram statistic from
// hashes, with no word numbered. Numbering the words (Ngrams::start) costs ~50 cycles a word, bound by
// the table's probe and its branch on whether a word is new (about half of a text's words are, so it
// is not predicted). Here each word gets a 64-bit hash of its key (equal words, equal hashes), and
// - counts in a table indexed by the hash (no key, no probe) are at least the words' true counts, so
//   mass' = the largest count' x length over words with count' > 1 is >= the filter's `mass` (words
//   sharing a cell only add), and top(m) <= m x mass' as in repetition_verdict;
// - the same over pairs and triples gives top'(2) >= top(2) and top'(3) >= top(3), and with them
//   repetition_verdict's own bounds: top(3) <= top(2) + mass, top(4) <= min(top(2) + 2 mass,
//   2 top(2), top(3) + mass);
// - a set of 5-gram fingerprints (equal 5-grams, equal fingerprints; a probe that is almost always
//   new, so its branch is predicted) marks every position whose 5-gram occurs twice, and maybe a few
//   more; the words they cover are >= dup(5) >= dup(m) for every m > 5.
// When these bounds pass every threshold, so do the statistics, and the verdict is 0 as the exact
// count would give. Otherwise the words are numbered and counted exactly as before: 1.6% of the
// bench corpus's texts (the pairs are needed for ~96% of them, the triples for ~5%).
struct PassSketch {
  std::vector<uint64_t> hw;          // per word: hash of its key
  std::vector<size_t> pre;           // pre[i]: bytes of words [0, i)
  std::vector<uint32_t> counts, at;  // counting cells (all 0 between uses); the cell of each position
  std::vector<uint8_t> rep;          // per position: its 5-gram fingerprint was seen twice
  struct Fp {
    uint64_t fp;
    uint32_t gen, first;
  };
  std::vector<Fp> fps;
  uint32_t gen = 0;
  size_t W = 0;

  // The words of `text` (next_word's, as Ngrams::start splits them); their count.
  size_t words(std::string_view text) {
    // A word and the separator after it take two bytes or more: sized once, written through pointers
    // (push_back kept the vectors' ends in memory, behind every store).
    const size_t most = text.size() / 2 + 1;
    if (hw.size() < most) hw.resize(most);
    if (pre.size() < most + 1) pre.resize(most + 1);
    uint64_t* const h = hw.data();
    size_t* const b = pre.data();
    const char* const p = text.data();
    size_t i = 0, j, w = 0;
    uint64_t k1, k2;
    b[0] = 0;
    while (next_word(p, text.size(), i, j, k1, k2)) {
      h[w] = mix(mix(k1) ^ (k2 * 0x9E3779B97F4A7C15ull));
      b[w + 1] = b[w] + (j - i);
      w++;
      i = j;
    }
    return W = w;
  }

  // Counts the n-grams (n = 1, 2 or 3) of hashes `key(i)` in cells; returns the largest count x length
  // over positions whose cell holds more than one, and empties the cells again.
  template <class Key>
  size_t top_bound(size_t n, int bits, Key key) {
    const size_t m = W - n + 1;
    at.resize(m);
    for (size_t i = 0; i < m; i++) at[i] = uint32_t(key(i) >> (64 - bits));
    for (size_t i = 0; i < m; i++) counts[at[i]]++;
    size_t best = 0;
    for (size_t i = 0; i < m; i++) {
      const size_t c = counts[at[i]];  // by a mask, not a branch: c > 1 is a coin toss
      best = std::max(best, (c * (pre[i + n] - pre[i])) & (size_t(0) - size_t(c > 1)));
    }
    for (size_t i = 0; i < m; i++) counts[at[i]] = 0;
    return best;
  }

  // Bytes of the words covered by positions whose 5-gram fingerprint occurs twice (>= dup(5)).
  size_t cover5_bound() {
    constexpr size_t n = 5;
    if (W < n) return 0;
    const size_t m = W - n + 1;
    size_t cap = 64;
    int bits = 6;
    while (cap < 4 * m) cap <<= 1, bits++;
    if (fps.size() < cap) {
      fps.assign(cap, Fp{0, 0, 0});
      gen = 0;
    }
    if (++gen == 0) {
      for (Fp& f : fps) f.gen = 0;
      gen = 1;
    }
    rep.assign(m, 0);
    const size_t mask = cap - 1;
    // Locals, so that the byte stores into rep do not make the compiler reload them.
    Fp* const f = fps.data();
    uint8_t* const r = rep.data();
    const uint64_t* const h = hw.data();
    const uint32_t g = gen;
    for (size_t i = 0; i < m; i++) {
      const uint64_t fp = mix(h[i] * 0x9E3779B97F4A7C15ull + h[i + 1] * 0xC2B2AE3D27D4EB4Full +
                              h[i + 2] * 0x165667B19E3779F9ull + h[i + 3] * 0xD6E8FEB86659FD93ull + h[i + 4]);
      size_t k = size_t(fp >> (64 - bits));
      while (f[k].gen == g && f[k].fp != fp) k = (k + 1) & mask;
      if (f[k].gen != g) {
        f[k] = Fp{fp, g, uint32_t(i)};
      } else {
        r[i] = 1;
        r[f[k].first] = 1;
      }
    }
    size_t dup = 0, reach = 0;
    for (size_t i = 0; i < m; i++) {
      if (!rep[i]) continue;
      const size_t from = std::max(i, reach);
      dup += pre[i + n] - pre[from];
      reach = i + n;
    }
    return dup;
  }

  // True when the bounds show that no n-gram fraction passes its threshold (all thresholds >= 0).
  bool proves_pass(const CleanOptions& o) {
    const size_t wc = pre[W];
    if (wc == 0) return true;  // every fraction 0
    auto exceeds = [&](size_t bytes, double t) { return double(bytes) / double(wc) > t; };
    const size_t dup = cover5_bound();
    for (double t : o.max_dup_ngram_fraction)
      if (exceeds(dup, t)) return false;
    // Cells: about 64 per word, up to 2^18 (1 MB). Shared cells only loosen the bounds: before the
    // triples' bound, 16 a word sent 12% of the bench corpus's texts to the exact count, 64 6.6%,
    // 256 5.1% in the same time (the table no longer fits L1).
    int bits = 10;
    while (bits < 18 && (size_t(1) << bits) < 64 * W) bits++;
    if (counts.size() < (size_t(1) << bits)) counts.assign(size_t(1) << bits, 0);
    const size_t mass = top_bound(1, bits, [&](size_t i) { return hw[i]; });
    const double* t = o.max_top_ngram_fraction;
    if (!exceeds(2 * mass, t[0]) && !exceeds(3 * mass, t[1]) && !exceeds(4 * mass, t[2])) return true;
    if (W < 2) return true;
    const size_t top2 = top_bound(2, bits, [&](size_t i) {
      return (hw[i] ^ ((hw[i + 1] << 23) | (hw[i + 1] >> 41))) * 0x9E3779B97F4A7C15ull;
    });
    if (exceeds(top2, t[0])) return false;
    const size_t bound4 = std::min({4 * mass, top2 + 2 * mass, 2 * top2});
    if (!exceeds(std::min(3 * mass, top2 + mass), t[1]) && !exceeds(bound4, t[2])) return true;
    if (W < 3) return true;
    const size_t top3 = top_bound(3, bits, [&](size_t i) {
      return (hw[i] * 0xC2B2AE3D27D4EB4Full + hw[i + 1] * 0x165667B19E3779F9ull + hw[i + 2]) * 0x9E3779B97F4A7C15ull;
    });
    return !exceeds(top3, t[1]) && !exceeds(std::min(bound4, top3 + mass), t[2]);
  }
};

}  // namespace

namespace {

void line_stats(std::string_view text, RepetitionStats& r) {
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
}

}  // namespace

RepetitionStats repetition_stats_of(std::string_view text) {
  RepetitionStats r;
  line_stats(text, r);
  thread_local Ngrams g;
  g.start(text);
  const size_t wc = g.word_bytes();
  if (wc == 0) return r;
  // Once no n-gram occurs twice, no longer one can, so every later fraction is 0.
  while (g.n < 10 && !g.active.empty() && g.step()) {
    if (g.n <= 4) r.top_ngram[g.n - 2] = double(g.top()) / double(wc);
    else r.dup_ngram[g.n - 5] = double(g.cover()) / double(wc);
  }
  return r;
}

bool repetition_pass_proven(std::string_view text, const CleanOptions& o) {
  thread_local PassSketch sketch;
  sketch.words(text);
  return sketch.proves_pass(o);
}

int repetition_verdict(std::string_view text, const CleanOptions& o) {
  thread_local PassSketch sketch;
  if (sketch.words(text) < 20) return 0;
  bool bounded = true;  // the bounds below assume thresholds >= 0 (no NaN): else count everything
  for (double t : o.max_top_ngram_fraction) bounded &= t >= 0;
  for (double t : o.max_dup_ngram_fraction) bounded &= t >= 0;
  if (!bounded) {
    const RepetitionStats r = repetition_stats_of(text);
    if (r.dup_line_fraction > o.max_dup_line_fraction || r.dup_line_char_fraction > o.max_dup_line_char_fraction)
      return 1;
    for (int k = 0; k < 3; k++)
      if (r.top_ngram[k] > o.max_top_ngram_fraction[k]) return 2;
    for (int k = 0; k < 6; k++)
      if (r.dup_ngram[k] > o.max_dup_ngram_fraction[k]) return 2;
    return 0;
  }
  RepetitionStats lr;
  line_stats(text, lr);
  if (lr.dup_line_fraction > o.max_dup_line_fraction || lr.dup_line_char_fraction > o.max_dup_line_char_fraction)
    return 1;
  if (sketch.proves_pass(o)) return 0;
  thread_local Ngrams g;
  g.start(text);
  const size_t wc = g.word_bytes();
  if (wc == 0) return 0;  // every fraction 0
  // Fractions as repetition_stats_of computes them; a bound b on the bytes gives b / wc >= the fraction.
  auto exceeds = [&](size_t bytes, double t) { return double(bytes) / double(wc) > t; };
  // Bounds in bytes, so that a size is counted only when its fraction could pass its threshold:
  // - top(m) <= m x mass, mass the largest count x length of a repeated word (each of an m-gram's word
  //   slots holds occurrences of one word);
  // - top(m) <= top(n) + (m - n) x mass for n < m, and top(4) <= 2 top(2): an m-gram occurs no more
  //   often than its leading n-gram or either half, which are repeated too;
  // - dup(m) <= the bytes covered by repeated n-grams for any n < m (repeated words at first).
  const size_t mass = g.max_word_mass();
  size_t top_bound[5] = {0, 0, 2 * mass, 3 * mass, 4 * mass};
  size_t covered = g.cover();
  while (g.n < 10) {
    bool need = false;
    for (size_t m = g.n + 1; m <= 4; m++) need |= exceeds(top_bound[m], o.max_top_ngram_fraction[m - 2]);
    for (size_t m = std::max<size_t>(5, g.n + 1); m <= 10; m++) need |= exceeds(covered, o.max_dup_ngram_fraction[m - 5]);
    // Nothing can pass its threshold, or no n-gram repeats (every later fraction is 0), or too few words.
    if (!need || g.active.empty() || !g.step()) return 0;
    if (g.n <= 4) {
      const size_t top = g.top();
      if (exceeds(top, o.max_top_ngram_fraction[g.n - 2])) return 2;
      for (size_t m = g.n + 1; m <= 4; m++) top_bound[m] = std::min(top_bound[m], top + (m - g.n) * mass);
      if (g.n == 2) top_bound[4] = std::min(top_bound[4], 2 * top);
    }
    covered = g.cover();
    if (g.n >= 5 && exceeds(covered, o.max_dup_ngram_fraction[g.n - 5])) return 2;
  }
  return 0;
}

}  // namespace lathe::data::clean_detail

namespace lathe::data {

RepetitionStats repetition_stats(std::string_view text) { return clean_detail::repetition_stats_of(text); }

}  // namespace lathe::data
