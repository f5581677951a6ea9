#include "lathe/data/prepare_spool.h"

#include <cstdlib>
#include <cstring>

#include "lathe/core/utf8.h"
#include "lathe/data/clean.h"
#include "lathe/data/pipeline_internal.h"

namespace lathe::data {

size_t knob(const char* name, size_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::max<size_t>(1, std::stoull(v)) : dflt;
}

uint64_t memory_budget(const DataConfig& cfg) {
  if (cfg.max_memory_bytes) return cfg.max_memory_bytes;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const uint64_t ram = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : uint64_t(4) << 30;
  return std::min<uint64_t>(ram / 4, uint64_t(1) << 30);
}

std::string_view SpoolReader::view(uint64_t at, size_t n) {
  if (!s_.on_disk()) return s_.view(at, n, scratch_);
  uint64_t w1 = w0_ + win_.size();
  if (at >= w0_ && at + n <= w1) return {win_.data() + (at - w0_), n};
  if (win_.empty() || at < w0_ || at > w1 + kAhead) {  // not the next stretch of a pass in order
    if (next_.valid()) next_.get();
    next_ = {};
    const std::string_view v = s_.view(at, n, scratch_);
    win_.assign(v);
    w0_ = at;
    return win_;
  }
  extend(at + n);  // through a gap of skipped records too: the read ahead starts where the window ends
  if (at - w0_ >= kAhead) {  // what the pass has left behind goes (the window stays a few MiB)
    win_.erase(0, size_t(at - w0_));
    w0_ = at;
  }
  w1 = w0_ + win_.size();
  if (!next_.valid() && w1 < s_.size()) {
    const size_t len = size_t(std::min<uint64_t>(kAhead, s_.size() - w1));
    next_ = io_.submit([this, w1, len] { fetched_view_ = s_.view(w1, len, fetched_); });
  }
  return {win_.data() + (at - w0_), n};
}

void SpoolReader::extend(uint64_t to) {
  while (w0_ + win_.size() < to) {
    const uint64_t w1 = w0_ + win_.size();
    if (next_.valid()) {
      next_.get();  // it starts where the window ends: only the window's growth reads ahead
      win_.append(fetched_view_);
      continue;
    }
    const size_t len = size_t(std::min<uint64_t>(std::max<uint64_t>(kAhead, to - w1), s_.size() - w1));
    win_.append(s_.view(w1, len, scratch_));
  }
}

int packed_id_width(const int32_t* ids, size_t n) {
  uint32_t all = 0;
  for (size_t j = 0; j < n; j++) all |= uint32_t(ids[j]);
  if (all >> 31) return 0;  // a negative id
  return all ? 32 - __builtin_clz(all) : 1;
}

void append_packed_ids(const int32_t* ids, size_t n, int w, std::string& out) {
  const size_t at = out.size(), bytes = packed_id_bytes(n, w);
  out.resize(at + bytes + 4);  // (4 bytes of slack: whole 32-bit stores, cut off below)
  char* d = out.data() + at;
  uint64_t acc = 0;
  unsigned nb = 0;  // bits in acc, below 32 between ids (w <= 31: acc never overflows)
  for (size_t j = 0; j < n; j++) {
    acc |= uint64_t(uint32_t(ids[j])) << nb;
    nb += unsigned(w);
    if (nb >= 32) {
      const uint32_t lo = uint32_t(acc);
      std::memcpy(d, &lo, 4);
      d += 4;
      acc >>= 32;
      nb -= 32;
    }
  }
  const uint32_t rest = uint32_t(acc);
  std::memcpy(d, &rest, 4);
  out.resize(at + bytes);
}

void read_packed_ids(const char* packed, size_t n, int w, int32_t* ids) {
  // Id j's bits start at bit j*w: one unaligned 8-byte load from its first byte holds them all (a shift
  // of at most 7 plus w <= 31 bits), while 8 bytes remain; the last few ids are gathered byte by byte.
  const uint64_t mask = (uint64_t(1) << w) - 1;
  const size_t bytes = packed_id_bytes(n, w);
  size_t j = 0;
  for (uint64_t bit = 0; j < n && (bit >> 3) + 8 <= bytes; j++, bit += uint64_t(w)) {
    uint64_t x;
    std::memcpy(&x, packed + (bit >> 3), 8);
    ids[j] = int32_t((x >> (bit & 7)) & mask);
  }
  const auto* d = reinterpret_cast<const uint8_t*>(packed);
  for (; j < n; j++) {
    const uint64_t bit = uint64_t(j) * uint64_t(w);
    uint64_t x = 0;
    for (size_t b = bit >> 3, k = 0; b < bytes && k < 8; b++, k++) x |= uint64_t(d[b]) << (8 * k);
    ids[j] = int32_t((x >> (bit & 7)) & mask);
  }
}

namespace {

uint64_t get_varint(std::string_view b, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    LATHE_CHECK(at < b.size() && shift < 64, "spool record ends inside a number");
    const uint8_t c = uint8_t(b[at++]);
    v |= uint64_t(c & 0x7f) << shift;
    if (!(c & 0x80)) return v;
  }
}

}  // namespace

void put_text_statistics(std::string& out, std::string_view text, size_t chars) {
  ScriptCount sc[kScriptKinds];
  const size_t n = count_scripts_in_name_order(text, sc);
  put_varint(out, chars);
  put_varint(out, n);
  for (size_t k = 0; k < n; k++) {
    put_varint(out, sc[k].name.size());
    out += sc[k].name;
    put_varint(out, sc[k].count);
  }
}
size_t get_text_statistics(std::string_view b, size_t& char_len, std::map<std::string, size_t>* scripts) {
  size_t at = 0;
  char_len = get_varint(b, at);
  for (uint64_t n = get_varint(b, at); n > 0; n--) {
    const size_t len = get_varint(b, at);
    LATHE_CHECK(at + len <= b.size(), "spool record ends inside a script name");
    const std::string_view name = b.substr(at, len);
    at += len;
    const size_t c = get_varint(b, at);
    if (scripts) (*scripts)[std::string(name)] += c;
  }
  return at;
}

}  // namespace lathe::data
