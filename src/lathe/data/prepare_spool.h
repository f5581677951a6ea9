// The working storage of the streaming `lathe data prepare` (pipeline_stream.cpp): record and key
// spools that stay in memory under data.max_memory and move to disk beyond it, arrays of per-record
// facts that grow without copying, and the text statistics a spooled record starts with.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/core/direct_io.h"
#include "lathe/core/error.h"
#include "lathe/core/io_worker.h"
#include "lathe/core/utf8.h"
#include "lathe/data/pipeline.h"

namespace lathe::data {

// A size from the environment (the LATHE_DATA_* overrides tests use to cross every batch, piece and
// spool boundary), else `dflt`.
size_t knob(const char* name, size_t dflt);

// An array that grows in chunks of 64 Ki elements: a vector of millions of Metas doubles by copying,
// holding the old and the new array at once (1.5-3x its size) at the very moment memory peaks.
template <class T>
class ChunkedArray {
 public:
  static constexpr size_t kShift = 16, kChunk = size_t(1) << kShift;
  size_t size() const { return n_; }
  T& operator[](size_t i) { return chunks_[i >> kShift][i & (kChunk - 1)]; }
  const T& operator[](size_t i) const { return chunks_[i >> kShift][i & (kChunk - 1)]; }
  void push_back(const T& v) {
    if ((n_ >> kShift) == chunks_.size()) chunks_.push_back(std::make_unique<T[]>(kChunk));
    (*this)[n_++] = v;
  }
  void clear() {
    chunks_.clear();
    n_ = 0;
  }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
  size_t n_ = 0;
};

// Records and tokens written once, read back by offset. They stay in memory (8 MiB chunks) while they
// fit `mem_cap` bytes — a corpus of a few hundred MB never touches the disk — and move to a file beside
// the output the first time they would not, written and read around the page cache (direct_io.h: the
// kernel's copy into fresh page-cache pages was most of a 1 GB run's kernel time). Reads are safe from
// several threads. seal() after the last append, before the first read.
class Spool {
 public:
  Spool(const std::string& dir, const char* name, uint64_t mem_cap)
      : path_(dir + "/" + name), cap_(mem_cap) {}
  ~Spool() {
    if (fd_ >= 0) {
      out_.reset();
      ::close(fd_);
      ::unlink(path_.c_str());
    }
  }
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;
  bool on_disk() const { return fd_ >= 0; }
  uint64_t size() const { return size_; }
  uint64_t append(std::string_view b) {
    const uint64_t at = size_;
    unsealed_ = true;
    if (fd_ < 0 && size_ + b.size() > cap_) spill();
    if (fd_ >= 0) {
      out_->append(b.data(), b.size());
      size_ += b.size();
      return at;
    }
    for (size_t done = 0; done < b.size();) {
      const uint64_t pos = size_ + done;
      if (pos / kChunk == chunks_.size()) chunks_.push_back(new_chunk());
      const size_t n = std::min<size_t>(b.size() - done, kChunk - pos % kChunk);
      std::memcpy(chunks_[pos / kChunk].get() + pos % kChunk, b.data() + done, n);
      done += n;
    }
    size_ += b.size();
    return at;
  }
  void seal() {
    if (out_) out_->flush();
    unsealed_ = false;
  }
  // Bytes [at, at + n) where they lie, when the spool is in memory and they sit in one chunk (the
  // common case: a record or a block of records is far smaller than a chunk); else read into `scratch`.
  // Saves the copy a read makes of bytes that are only scanned once (the writers' pass).
  std::string_view view(uint64_t at, size_t n, std::string& scratch) const {
    LATHE_CHECK(at + n <= size_ && !unsealed_, "spool read past its end or before seal()");
    if (fd_ >= 0) return pread_view(fd_, at, n, scratch, path_);
    if (n > 0 && at / kChunk == (at + n - 1) / kChunk) return {chunks_[at / kChunk].get() + at % kChunk, n};
    scratch.resize(n);
    read(at, n, scratch.data());
    return scratch;
  }
  void read(uint64_t at, size_t n, void* out) const {
    LATHE_CHECK(at + n <= size_ && !unsealed_, "spool read past its end or before seal()");
    char* o = static_cast<char*>(out);
    if (fd_ >= 0) {
      std::string scratch;
      const std::string_view v = pread_view(fd_, at, n, scratch, path_);
      std::memcpy(o, v.data(), n);
      return;
    }
    for (size_t done = 0; done < n;) {
      const uint64_t pos = at + done;
      const size_t k = std::min<size_t>(n - done, kChunk - pos % kChunk);
      std::memcpy(o + done, chunks_[pos / kChunk].get() + pos % kChunk, k);
      done += k;
    }
  }

 private:
  static constexpr size_t kChunk = size_t(8) << 20;
  struct Unmap {
    void operator()(char* p) const { ::munmap(p, kChunk); }
  };
  using Chunk = std::unique_ptr<char, Unmap>;
  // A chunk's pages faulted in by the kernel in one call (MAP_POPULATE), not one trap per 4 KiB page
  // as the copy first touches them: 0.15 -> 0.11 CPU-s for 300 MB of spool in a standalone test
  // (transparent huge pages, asked for with madvise, took 2.2 s here: the kernel compacts memory for
  // each). Only appended bytes are ever read.
  static Chunk new_chunk() {
    void* p = ::mmap(nullptr, kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) fail("data", "cannot map {} MiB for the prepare spool: {}", kChunk >> 20, std::strerror(errno));
    return Chunk(static_cast<char*>(p));
  }
  // Bytes gathered before a write (LATHE_DATA_SPOOL_WRITE_BYTES: tests write every few records).
  const size_t kWriteBytes = knob("LATHE_DATA_SPOOL_WRITE_BYTES", size_t(4) << 20);
  void spill() {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    bool direct = false;
    fd_ = open_direct(path_, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600, direct);
    if (fd_ < 0) fail("data", "{}: cannot create the spool file: {}", path_, std::strerror(errno));
    out_ = std::make_unique<DirectAppender>(fd_, direct, path_, kWriteBytes);
    for (size_t c = 0; c < chunks_.size(); c++) {
      const uint64_t pos = uint64_t(c) * kChunk;
      out_->append(chunks_[c].get(), size_t(std::min<uint64_t>(kChunk, size_ - pos)));
      chunks_[c].reset();
    }
    chunks_.clear();
  }
  std::string path_;
  uint64_t cap_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool unsealed_ = false;
  std::vector<Chunk> chunks_;
  std::unique_ptr<DirectAppender> out_;  // on disk
};

// Reads of a spool in rising offsets (a writer's pass over records in spool order): views in place
// while the spool is in memory; on disk, through a window that slides forward 4 MiB at a time, the
// next 4 MiB read on another thread while the caller works on this one (an access behind the window,
// or far ahead of it, reads only what it asks for). A 1 GB corpus's token shards made ~3.6 million
// preads of a few hundred bytes each, one or two per record and pass, once its spool had spilled.
class SpoolReader {
 public:
  explicit SpoolReader(const Spool& s) : s_(s) {}
  ~SpoolReader() {
    if (next_.valid()) next_.wait();
  }
  SpoolReader(const SpoolReader&) = delete;
  SpoolReader& operator=(const SpoolReader&) = delete;
  std::string_view view(uint64_t at, size_t n);

 private:
  // LATHE_DATA_SPOOL_READ_AHEAD: tests slide the window a few bytes at a time.
  const size_t kAhead = knob("LATHE_DATA_SPOOL_READ_AHEAD", size_t(4) << 20);
  void extend(uint64_t to);  // the window grows to end at `to` or beyond
  const Spool& s_;
  std::string scratch_, win_, fetched_;
  uint64_t w0_ = 0;  // the window holds [w0_, w0_ + win_.size())
  bool streaming_ = false;
  // The read ahead in flight, of the bytes right after the window, into fetched_ (fetched_view_).
  std::future<void> next_;
  std::string_view fetched_view_;
  IoWorker io_;  // declared last: destroyed (its thread joined) first
};

// data.max_memory (0: a quarter of the RAM, at most 1 GiB) shared out: a quarter for the record and
// token spools in memory (5/32 and 3/32), a sixteenth for the band keys, 1/256 for the recent dedup
// texts, a hundred-and-twenty-eighth for a JSONL piece (1-64 MiB; a batch's DOMs, texts and
// tokens are a few times its piece); at dedup, a quarter for the texts held while duplicates are read
// back. What is left holds the Metas and the tokenizer.
uint64_t memory_budget(const DataConfig& cfg);

// A spooled record starts with its text statistics (what the records pass adds up over the records
// dedup keeps): the character count and the per-script counts; the records-file line follows.
// Token ids bit-packed, w bits each (the width of the record's largest id: 17-18 for the vocabularies
// of 2026 against the 24 of three bytes each, a quarter less spool to write and to read twice for the
// token shards), little-endian from bit 0. packed_id_width: that w, 0 when an id is negative (they
// are spooled as int32 then). read_packed_ids reads only the packed_id_bytes(n, w) bytes at `packed`.
int packed_id_width(const int32_t* ids, size_t n);
inline size_t packed_id_bytes(size_t n, int w) { return (n * size_t(w) + 7) / 8; }
void append_packed_ids(const int32_t* ids, size_t n, int w, std::string& out);
void read_packed_ids(const char* packed, size_t n, int w, int32_t* ids);
// `chars`: utf8_length(text), where the caller knows it already.
void put_text_statistics(std::string& out, std::string_view text, size_t chars);
inline void put_text_statistics(std::string& out, std::string_view text) {
  put_text_statistics(out, text, utf8_length(text));
}
// Reads them back (adding to `scripts`) and returns where the line starts.
size_t get_text_statistics(std::string_view b, size_t& char_len, std::map<std::string, size_t>* scripts);

}  // namespace lathe::data
