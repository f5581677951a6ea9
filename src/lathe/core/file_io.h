// Files: read-only memory maps (weights are never copied twice), whole-file reads, and atomic
// writes (write to a temporary name in the same directory, fsync, rename) so a crash never
// leaves a half-written file behind.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lathe {

class DirectAppender;

class MappedFile {
 public:
  // Throws lathe::Error("[io] PATH: ...") when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_file(const std::string& path);  // throws "[io] PATH: ..." on failure

// Makes the pages of [p, p + n) resident now (a mapped file's pages read in and mapped), so that the
// first use does not fault page by page: madvise(MADV_POPULATE_READ), else a read of every page.
void prefault_pages(const void* p, size_t n);

// A file written piece by piece under a temporary name and renamed into place by commit(); destroyed
// without commit() (an error on the way), it removes the temporary. Throws "[io] PATH: ..." on failure.
// `direct`: written around the page cache (direct_io.h), for files of hundreds of MB that nothing
// reads back soon (the prepared dataset's records and token shards).
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path, bool direct = false);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit();  // fsync, rename
  size_t bytes() const { return bytes_; }

 private:
  static constexpr size_t kKickBytes = size_t(8) << 20;  // writeback started every 8 MiB written
  std::string path_, tmp_;
  int fd_ = -1;
  size_t bytes_ = 0, kicked_ = 0;
  std::unique_ptr<DirectAppender> direct_;
};
void write_file_atomic(const std::string& path, const void* data, size_t n);
inline void write_file_atomic(const std::string& path, const std::string& s) {
  write_file_atomic(path, s.data(), s.size());
}
// Tells the kernel the whole pages inside [p, p+n) of a read-only file mapping are no longer needed,
// so they leave RSS (QLoRA drops the f32 pages of each matrix once it holds the NF4 copy).
void release_mapped_pages(const void* p, size_t n);
// The read-only, private file mappings of this process (/proc/self/maps: perms "r--p", an inode), as
// [begin, end) address ranges. Their pages hold the file's bytes and are never written, so releasing
// them (above) only means the next read faults them back in from the file: unlike a heap buffer, which
// MADV_DONTNEED would zero. Empty where /proc is not mounted.
struct MappedRange {
  uintptr_t begin = 0, end = 0;
};
std::vector<MappedRange> readonly_file_mappings();
// [p, p + n) lies inside one of `ranges`.
bool inside_mapping(const std::vector<MappedRange>& ranges, const void* p, size_t n);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace lathe
