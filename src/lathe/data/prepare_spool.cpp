#include "lathe/data/prepare_spool.h"

#include <cstdlib>
#include <cstring>

#include "lathe/core/utf8.h"
#include "lathe/data/clean.h"
#include "lathe/data/pipeline_internal.h"
#include "lathe/data/text_blocks_avx2.h"

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

bool append_ids24(const int32_t* ids, size_t n, std::string& out) {
  bool narrow = true;
  for (size_t j = 0; j < n; j++) narrow &= uint32_t(ids[j]) < (uint32_t(1) << 24);  // negative ids are wide
  if (!narrow) return false;
  const size_t at = out.size();
  out.resize(at + 3 * n);
  char* d = out.data() + at;
  for (size_t j = 0; j < n; j++) {
    const uint32_t v = uint32_t(ids[j]);
    d[3 * j] = char(v & 0xFF);
    d[3 * j + 1] = char((v >> 8) & 0xFF);
    d[3 * j + 2] = char(v >> 16);
  }
  return true;
}

#ifdef LATHE_TEXT_AVX2
namespace {
// Eight ids (24 bytes) per step: one 32-byte load (j + 11 <= n keeps it inside the 3n bytes), the
// dwords moved so that each 128-bit lane holds its twelve bytes, and a byte shuffle that widens each
// three-byte id to four. Returns where the scalar loop goes on.
LATHE_TARGET_AVX2 size_t read_ids24_avx2(const char* packed, size_t n, int32_t* ids) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 3, 4, 5, 6);  // bytes 0-15 | bytes 12-27
  const __m256i widen = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,  //
                                         0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
  size_t j = 0;
  for (; j + 11 <= n; j += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + 3 * j));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ids + j),
                        _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(v, lanes), widen));
  }
  return j;
}
}  // namespace
#endif

void read_ids24(const char* packed, size_t n, int32_t* ids) {
  // Four ids (12 bytes) from two overlapping 8-byte loads, bytes 0-7 and 4-11, instead of twelve byte
  // loads (half the time in a loop over records' ids); the last few one byte at a time. With AVX2,
  // eight at a time first (the token shards decode every id twice: ids, then labels).
  size_t j = 0;
#ifdef LATHE_TEXT_AVX2
  static const bool avx2 = cpu_text_avx2();
  if (avx2) j = read_ids24_avx2(packed, n, ids);
#endif
  for (; j + 4 <= n; j += 4) {
    uint64_t lo, hi;
    std::memcpy(&lo, packed + 3 * j, 8);
    std::memcpy(&hi, packed + 3 * j + 4, 8);
    ids[j] = int32_t(lo & 0xFFFFFF);
    ids[j + 1] = int32_t((lo >> 24) & 0xFFFFFF);
    ids[j + 2] = int32_t((hi >> 16) & 0xFFFFFF);
    ids[j + 3] = int32_t((hi >> 40) & 0xFFFFFF);
  }
  const auto* d = reinterpret_cast<const uint8_t*>(packed);
  for (; j < n; j++)
    ids[j] = int32_t(uint32_t(d[3 * j]) | uint32_t(d[3 * j + 1]) << 8 | uint32_t(d[3 * j + 2]) << 16);
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
