#include "lathe/core/direct_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lathe/core/error.h"

namespace lathe {

namespace {

// The descriptor's O_DIRECT off (a file system that took the open but refuses the transfer).
bool clear_direct(int fd) {
#ifdef O_DIRECT
  const int fl = ::fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_DIRECT) && ::fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0;
#else
  (void)fd;
  return false;
#endif
}

}  // namespace

AlignedBlock aligned_block(size_t bytes) {
  void* p = std::aligned_alloc(kDirectAlign, align_up(std::max<size_t>(bytes, 1)));
  if (!p) fail("io", "cannot allocate {} MiB of I/O buffer", bytes >> 20);
  return AlignedBlock(static_cast<char*>(p));
}

int open_direct(const std::string& path, int flags, mode_t mode, bool& direct) {
  direct = false;
#ifdef O_DIRECT
  const int fd = ::open(path.c_str(), flags | O_DIRECT, mode);
  if (fd >= 0) {
    direct = true;
    return fd;
  }
  if (errno != EINVAL) return -1;
#endif
  return ::open(path.c_str(), flags, mode);
}

size_t pread_full(int fd, uint64_t at, size_t n, char* dst, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const ssize_t k = ::pread(fd, dst + done, n - done, off_t(at + done));
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && clear_direct(fd)) continue;
      fail("io", "{}: read failed: {}", path, std::strerror(errno));
    }
    if (k == 0) break;
    done += size_t(k);
  }
  return done;
}

std::string_view pread_view(int fd, uint64_t at, size_t n, std::string& scratch, const std::string& path) {
  const uint64_t a0 = align_down(at), a1 = align_up(at + n);
  scratch.resize(size_t(a1 - a0) + kDirectAlign);
  char* base = scratch.data();
  char* dst = base + (kDirectAlign - reinterpret_cast<uintptr_t>(base) % kDirectAlign) % kDirectAlign;
  const size_t got = pread_full(fd, a0, size_t(a1 - a0), dst, path);
  if (got < size_t(at + n - a0)) fail("io", "{}: {} bytes at {} lie past the end of the file", path, n, at);
  return {dst + (at - a0), n};
}

DirectAppender::DirectAppender(int fd, bool direct, std::string path, size_t buffer_bytes)
    : fd_(fd), direct_(direct), path_(std::move(path)), cap_(size_t(align_up(buffer_bytes))) {}

DirectAppender::~DirectAppender() {
  if (inflight_.valid()) inflight_.wait();  // an error here goes unreported: the file is being abandoned
}

void DirectAppender::wait() {
  if (inflight_.valid()) inflight_.get();
}

void DirectAppender::write_at(const char* p, size_t n, uint64_t off) {
  for (size_t done = 0; done < n;) {
    const ssize_t k = ::pwrite(fd_, p + done, n - done, off_t(off + done));
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct_ && clear_direct(fd_)) {
        direct_ = false;
        continue;
      }
      fail("io", "{}: write failed (disk full?): {}", path_, std::strerror(errno));
    }
    done += size_t(k);
  }
}

void DirectAppender::append(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    if (!buf_[cur_]) buf_[cur_] = aligned_block(cap_);
    const size_t k = std::min(n, cap_ - used_);
    std::memcpy(buf_[cur_].get() + used_, p, k);
    used_ += k;
    p += k;
    n -= k;
    if (used_ < cap_) break;
    // Full: written in the background while the other buffer fills.
    wait();
    const char* full = buf_[cur_].get();
    const uint64_t off = base_;
    inflight_ = io_.submit([this, full, off] { write_at(full, cap_, off); });
    base_ += cap_;
    cur_ ^= 1;
    used_ = 0;
  }
}

void DirectAppender::flush() {
  wait();
  if (used_ == 0) return;
  char* b = buf_[cur_].get();
  const size_t whole = size_t(align_down(used_)), padded = size_t(align_up(used_));
  std::memset(b + used_, 0, padded - used_);
  write_at(b, padded, base_);
  if (whole == used_) {
    base_ += used_;
    used_ = 0;
    return;
  }
  // The partial last block stays, to be written again whole when more follows.
  std::memmove(b, b + whole, used_ - whole);
  base_ += whole;
  used_ -= whole;
}

}  // namespace lathe
