#include "lathe/formats/token_shard.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/ignore_index.h"
#include "lathe/formats/safetensors.h"

namespace lathe {

namespace {
constexpr const char* kFormat = "lathe-tokens-v1";
// The streamed writer hands the kernel this much at a time: small enough that the buffer is still in
// the core's L2 cache when it is hashed and copied into the page cache.
constexpr size_t kFlushBytes = size_t(512) << 10;

template <class T>
Tensor view_of(const std::vector<T>& v, DType t) {
  // safetensors_write only reads; the const_cast never leads to a write.
  return Tensor::view(t, {int64_t(v.size())}, const_cast<T*>(v.data()), nullptr);
}
}  // namespace

void TokenShardWriter::add(std::span<const int32_t> ids, std::span<const int32_t> labels) {
  LATHE_CHECK(ids.size() == labels.size(), "token shard: {} ids but {} labels", ids.size(), labels.size());
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  labels_.insert(labels_.end(), labels.begin(), labels.end());
  seq_offsets_.push_back(int64_t(ids_.size()));
}

void TokenShardWriter::reserve(size_t sequences, size_t tokens) {
  ids_.reserve(ids_.size() + tokens);
  labels_.reserve(labels_.size() + tokens);
  seq_offsets_.reserve(seq_offsets_.size() + sequences);
}

void TokenShardWriter::end_bin() {
  binned_ = true;
  if (bin_offsets_.back() != int64_t(sequences())) bin_offsets_.push_back(int64_t(sequences()));
}

void TokenShardWriter::write(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  std::vector<int64_t> bins = bin_offsets_;
  if (binned_ && bins.back() != int64_t(sequences())) bins.push_back(int64_t(sequences()));
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("input_ids", view_of(ids_, DType::I32));
  t.emplace_back("labels", view_of(labels_, DType::I32));
  t.emplace_back("seq_offsets", view_of(seq_offsets_, DType::I64));
  if (binned_) t.emplace_back("bin_offsets", view_of(bins, DType::I64));
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = kFormat;
  safetensors_write(path, t, meta);
}

uint64_t write_token_shard_streamed(const std::string& path, const TokenShardPlan& plan,
                                    const std::map<std::string, std::string>& metadata,
                                    const std::function<void(size_t, bool, int32_t*)>& fill) {
  // The sequence offsets are written last, summed as they go (not held: 8 bytes a sequence).
  std::vector<int64_t> bins{0};
  for (size_t b : plan.bin_sizes) bins.push_back(bins.back() + int64_t(b));
  int64_t tokens = 0;
  size_t longest = 0;
  for (size_t l : plan.lengths) {
    tokens += int64_t(l);
    longest = std::max(longest, l);
  }
  std::vector<SafetensorsSpec> specs;  // name order, as safetensors_write lays them out
  if (plan.packed) specs.push_back({"bin_offsets", DType::I64, {int64_t(bins.size())}});
  specs.push_back({"input_ids", DType::I32, {tokens}});
  specs.push_back({"labels", DType::I32, {tokens}});
  specs.push_back({"seq_offsets", DType::I64, {int64_t(plan.lengths.size() + 1)}});
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = kFormat;
  const std::string head = safetensors_header(specs, meta);
  AtomicFileWriter w(path, /*direct=*/true);  // hundreds of MB that training maps later
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  // The sequences are filled straight into the write buffer (no copy through a vector per sequence):
  // kFlushBytes plus the longest sequence, never zero-filled; written (and hashed) when full.
  const size_t cap = kFlushBytes + sizeof(int64_t) * (longest + 1);
  auto buf = std::make_unique_for_overwrite<char[]>(cap);
  size_t used = 0;
  auto flush = [&] {
    XXH3_64bits_update(h, buf.get(), used);
    w.write(buf.get(), used);
    used = 0;
  };
  auto put = [&](const void* p, size_t n) {
    if (used + n > cap) flush();
    if (n > cap) {  // only the header or bin offsets can be this long
      XXH3_64bits_update(h, p, n);
      w.write(p, n);
      return;
    }
    std::memcpy(buf.get() + used, p, n);
    used += n;
  };
  put(head.data(), head.size());
  flush();  // the tensors start at the buffer's start: aligned for int32 and int64
  if (plan.packed) put(bins.data(), sizeof(int64_t) * bins.size());
  for (bool labels : {false, true})
    for (size_t k = 0; k < plan.lengths.size(); k++) {
      const size_t bytes = sizeof(int32_t) * plan.lengths[k];
      if (used + bytes > cap) flush();
      fill(k, labels, reinterpret_cast<int32_t*>(buf.get() + used));
      used += bytes;
      if (used >= kFlushBytes) flush();
    }
  int64_t off = 0;
  put(&off, sizeof off);
  for (size_t l : plan.lengths) {
    off += int64_t(l);
    put(&off, sizeof off);
  }
  flush();
  const uint64_t digest = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  w.commit();
  return digest;
}

namespace {

template <class T>
std::span<const T> span_of(const SafetensorsFile& f, const std::string& name, const char* dtype, const std::string& path) {
  const SafetensorsEntry& e = f.entry(name);
  if (e.dtype_name != dtype) fail("formats", "{}: tensor \"{}\" is {}, expected {}", path, name, e.dtype_name, dtype);
  if (e.shape.size() != 1) fail("formats", "{}: tensor \"{}\" must be one-dimensional", path, name);
  if (reinterpret_cast<uintptr_t>(f.raw_data(e)) % alignof(T) != 0)
    fail("formats", "{}: tensor \"{}\" is not {}-byte aligned in the file", path, name, alignof(T));
  return {reinterpret_cast<const T*>(f.raw_data(e)), size_t(e.shape[0])};
}

void check_offsets(std::span<const int64_t> off, int64_t limit, const char* name, const std::string& path) {
  if (off.empty() || off[0] != 0) fail("formats", "{}: \"{}\" must start with 0", path, name);
  for (size_t i = 1; i < off.size(); i++)
    if (off[i] < off[i - 1]) fail("formats", "{}: \"{}\"[{}] = {} decreases", path, name, i, off[i]);
  if (off.back() != limit)
    fail("formats", "{}: \"{}\" ends at {} but there are {} entries", path, name, off.back(), limit);
}

}  // namespace

TokenShard TokenShard::open(const std::string& path) {
  TokenShard s;
  s.path_ = path;
  s.file_ = std::make_shared<SafetensorsFile>(SafetensorsFile::open(path));
  const SafetensorsFile& f = *s.file_;
  auto it = f.metadata().find("format");
  if (it == f.metadata().end() || it->second != kFormat)
    fail("formats", "{}: not a lathe token shard (metadata \"format\" is not \"{}\")", path, kFormat);
  for (const char* name : {"input_ids", "labels", "seq_offsets"})
    if (!f.has(name)) fail("formats", "{}: token shard has no tensor \"{}\"", path, name);
  s.ids_ = span_of<int32_t>(f, "input_ids", "I32", path);
  s.labels_ = span_of<int32_t>(f, "labels", "I32", path);
  s.seq_offsets_ = span_of<int64_t>(f, "seq_offsets", "I64", path);
  if (s.labels_.size() != s.ids_.size())
    fail("formats", "{}: \"labels\" has {} entries but \"input_ids\" has {}", path, s.labels_.size(), s.ids_.size());
  check_offsets(s.seq_offsets_, int64_t(s.ids_.size()), "seq_offsets", path);
  if (f.has("bin_offsets")) {
    s.bin_offsets_ = span_of<int64_t>(f, "bin_offsets", "I64", path);
    check_offsets(s.bin_offsets_, int64_t(s.sequences()), "bin_offsets", path);
  }
  for (size_t i = 0; i < s.ids_.size(); i++) {
    if (s.ids_[i] < 0) fail("formats", "{}: \"input_ids\"[{}] = {} is negative", path, i, s.ids_[i]);
    if (s.labels_[i] < 0 && s.labels_[i] != kIgnoreIndex)
      fail("formats", "{}: \"labels\"[{}] = {} is neither a token id nor {}", path, i, s.labels_[i], kIgnoreIndex);
  }
  return s;
}

std::span<const int32_t> TokenShard::input_ids(size_t i) const {
  LATHE_CHECK(i < sequences());
  return ids_.subspan(size_t(seq_offsets_[i]), size_t(seq_offsets_[i + 1] - seq_offsets_[i]));
}

std::span<const int32_t> TokenShard::labels(size_t i) const {
  LATHE_CHECK(i < sequences());
  return labels_.subspan(size_t(seq_offsets_[i]), size_t(seq_offsets_[i + 1] - seq_offsets_[i]));
}

std::pair<size_t, size_t> TokenShard::bin(size_t j) const {
  LATHE_CHECK(j < bins());
  return {size_t(bin_offsets_[j]), size_t(bin_offsets_[j + 1])};
}

}  // namespace lathe
