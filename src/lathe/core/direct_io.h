// Big sequential files written and read around the page cache (O_DIRECT): `lathe data prepare`'s
// spool and outputs run to several times the corpus, and every byte of them written through the
// page cache is copied by the kernel into pages it has to allocate first, then written back, then
// evicted. On the 2-core VM this was measured on, that copy (copy_folio_from_iter_atomic) was 27 % of
// all the CPU time of a 1 GB prepare; `dd` wrote 1 GB in 0.2-2.6 s of kernel time buffered and in
// 0.07 s with O_DIRECT. A direct transfer moves whole aligned blocks from and to our own buffers,
// which are reused. Where the file system refuses O_DIRECT (EINVAL: tmpfs before Linux 6.6, some
// FUSE and network file systems) the same calls go through the page cache instead.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "lathe/core/io_worker.h"

namespace lathe {

// Offsets, lengths and buffer addresses of a direct transfer are multiples of this (the logical
// block of every common device is 512 or 4096 bytes).
inline constexpr size_t kDirectAlign = 4096;
inline constexpr uint64_t align_down(uint64_t v) { return v & ~uint64_t(kDirectAlign - 1); }
inline constexpr uint64_t align_up(uint64_t v) { return align_down(v + kDirectAlign - 1); }

// A heap block aligned for direct transfers, never zero-filled.
struct AlignedFree {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBlock = std::unique_ptr<char, AlignedFree>;
AlignedBlock aligned_block(size_t bytes);  // bytes: a multiple of kDirectAlign

// open(path, flags | O_DIRECT, mode), or without O_DIRECT where the file system refuses it; `direct`
// says which. Returns the descriptor, or -1 with errno set as open() sets it.
int open_direct(const std::string& path, int flags, mode_t mode, bool& direct);

// pread of exactly n bytes at `at` (short only past the end of the file: the count read is returned).
// On a direct descriptor, `at`, `n` and `dst` must be aligned; a file system that refuses the direct
// read (EINVAL) gets the descriptor's O_DIRECT cleared and the read retried through the page cache.
size_t pread_full(int fd, uint64_t at, size_t n, char* dst, const std::string& path);

// Bytes [at, at + n) of a file, read into `scratch` (one aligned read around them on a direct
// descriptor); the view points into scratch. Throws "[io] PATH: ..." when the file is shorter.
std::string_view pread_view(int fd, uint64_t at, size_t n, std::string& scratch, const std::string& path);

// Appends to a file, gathering bytes in an aligned buffer that is written whole while the next one
// fills (one write in flight, on its own thread: the disk works while the caller computes). flush()
// writes what is left, the last partial block padded with zeros, and keeps that block, so appends can
// go on after it (it is written again, whole, with what follows): the file may be longer than size()
// until it is truncated. Errors name `path`; a write error in flight is thrown by the next call.
class DirectAppender {
 public:
  DirectAppender(int fd, bool direct, std::string path, size_t buffer_bytes = size_t(4) << 20);
  ~DirectAppender();
  DirectAppender(const DirectAppender&) = delete;
  DirectAppender& operator=(const DirectAppender&) = delete;
  void append(const void* p, size_t n);
  void flush();
  uint64_t size() const { return base_ + used_; }

 private:
  void wait();
  void write_at(const char* p, size_t n, uint64_t off);
  int fd_;
  bool direct_;
  std::string path_;
  size_t cap_;
  AlignedBlock buf_[2];
  int cur_ = 0;
  size_t used_ = 0;   // bytes in buf_[cur_]
  uint64_t base_ = 0; // the file offset of buf_[cur_][0] (aligned)
  std::future<void> inflight_;
  IoWorker io_;  // declared last: destroyed (its thread joined) first
};

}  // namespace lathe
