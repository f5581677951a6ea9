// The per-thread cache of word -> token ids that lets a model see each distinct pre-tokenized word once.
// A flat open-addressing table over two arenas (key bytes, ids): a lookup hashes the word's bytes and
// compares them in place, with no std::string built and no allocation per entry. The table was a
// std::unordered_map<std::string, std::vector<int32_t>> before; its hashing, node walk and two heap
// allocations per new word were ~10% of `data prepare --model`'s encode time.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::tok {

inline uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// A fast hash of short byte strings (words are <= kMaxWordBytes): 8 bytes at a time through a
// multiply-xorshift mix, the last block read overlapping the one before it and short words read with
// two overlapping 4-byte loads (or 3 bytes), so no load depends on byte stores (a byte-wise tail copy
// stalled on store forwarding and was a third of the lookup). Collisions only cost a compare; the
// table never trusts the hash alone.
inline uint64_t word_hash(const char* p, size_t n) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (uint64_t(n) * kMul);
  auto mix = [&](uint64_t v) {
    h = (h ^ v) * kMul;
    h ^= h >> 29;
  };
  if (n >= 8) {
    const char* last = p + n - 8;
    for (; p < last; p += 8) mix(load64(p));
    mix(load64(last));
  } else if (n >= 4) {
    mix((uint64_t(load32(p)) << 32) | load32(p + n - 4));
  } else if (n > 0) {
    mix((uint64_t(uint8_t(p[0])) << 16) | (uint64_t(uint8_t(p[n >> 1])) << 8) | uint8_t(p[n - 1]));
  }
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

// a[0, n) == b[0, n) with the same overlapping loads (short words: no call to memcmp).
inline bool bytes_equal(const char* a, const char* b, size_t n) {
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (load64(a + i) != load64(b + i)) return false;
    return load64(a + n - 8) == load64(b + n - 8);
  }
  if (n >= 4) return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

class WordCache {
 public:
  static constexpr size_t kMaxWords = 1 << 16;   // cleared when full, as the map it replaces was
  static constexpr size_t kMaxWordBytes = 96;    // longer words are rare and not worth keeping

  WordCache() : slots_(kMinSlots), mask_(kMinSlots - 1) {}

  // The cached ids of `w` (hash h = word_hash(w)), or nullptr; *n receives their count.
  const int32_t* find(std::string_view w, uint64_t h, uint32_t* n) const {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return nullptr;
      if (s.hash == h && s.key_len == w.size() && bytes_equal(keys_.data() + s.key_off, w.data(), w.size())) {
        *n = s.n_ids;
        return ids_.data() + s.ids_off;
      }
    }
  }

  // Adds w -> ids (w not present, 0 < |w| <= kMaxWordBytes).
  void insert(std::string_view w, uint64_t h, const int32_t* ids, size_t n) {
    if (w.empty() || w.size() > kMaxWordBytes || n > 0xFFFF) return;
    if (count_ >= kMaxWords) clear();
    if (2 * (count_ + 1) > slots_.size()) grow();
    place({h, uint32_t(keys_.size()), uint32_t(ids_.size()), uint16_t(w.size()), uint16_t(n)});
    keys_.append(w);
    ids_.insert(ids_.end(), ids, ids + n);
    count_++;
  }

  // Empties the table and keeps its size (a thread that filled it once will again).
  void clear() {
    std::memset(static_cast<void*>(slots_.data()), 0, slots_.size() * sizeof(Slot));
    keys_.clear();
    ids_.clear();
    count_ = 0;
  }

 private:
  struct Slot {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint16_t key_len, n_ids;  // key_len 0: empty (words are never empty)
  };
  // Starts small (a thread may encode a few short texts only) and doubles at load 1/2, which keeps
  // probe runs short, up to 2 * kMaxWords slots.
  static constexpr size_t kMinSlots = 1024;
  void place(const Slot& s) {
    size_t i = s.hash & mask_;
    while (slots_[i].key_len != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old)
      if (s.key_len != 0) place(s);
  }
  std::vector<Slot> slots_;
  size_t mask_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t count_ = 0;
};

// One cache per (thread, model, key form); the few most recent per thread keep theirs. raw_keys: the
// fused byte-level path keys words by their bytes before the ByteLevel mapping, the general path by
// the mapped word, so the two never share a table.
WordCache& thread_word_cache(uint64_t model_instance, bool raw_keys);

}  // namespace lathe::tok
