// core/file_io: a mapped file's pages made resident by prefault_pages (what inference loads do with
// their weights), checked with mincore on a file just dropped from the page cache's mapping.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lathe/core/file_io.h"

namespace lathe {
namespace {

size_t resident_pages(const uint8_t* p, size_t n) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((n + page - 1) / page);
  EXPECT_EQ(0, mincore(const_cast<uint8_t*>(p), n, v.data()));
  size_t r = 0;
  for (unsigned char c : v) r += c & 1;
  return r;
}

TEST(FileIo, PrefaultMakesAMappingResident) {
  const std::string path = std::filesystem::temp_directory_path() / ("lathe_prefault_" + std::to_string(getpid()));
  const size_t n = 8u << 20;
  {
    std::ofstream f(path, std::ios::binary);
    std::string chunk(1 << 20, 'x');
    for (size_t i = 0; i < n / chunk.size(); i++) f << chunk;
  }
  auto m = MappedFile::open(path);
  ASSERT_EQ(m->size(), n);
  // mincore reports the page cache, which a freshly written file is in: evict it first where the
  // kernel lets us (POSIX_FADV_DONTNEED on a clean file), so the check means something.
  {
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), pages = n / page;
  const size_t before = resident_pages(m->data(), n);
  prefault_pages(m->data() + 3, n - 3);  // unaligned start: the first page counts too
  EXPECT_EQ(resident_pages(m->data(), n), pages) << "resident before: " << before;
  prefault_pages(nullptr, 10);  // nothing to do
  prefault_pages(m->data(), 0);
  std::filesystem::remove(path);
}

// The pages a frozen base gives back (release_mapped_projection_pages) must be a read-only file
// mapping's: a model file's tensor is found inside one, a heap buffer or a writable mapping is not, and
// after its pages are released a read gives the file's bytes again.
TEST(FileIo, ReadonlyFileMappingsTellTheModelFileFromMemory) {
  const std::string path = std::filesystem::temp_directory_path() / ("lathe_maps_" + std::to_string(getpid()));
  const size_t n = 1u << 20;
  {
    std::ofstream f(path, std::ios::binary);
    for (size_t i = 0; i < n; i++) f.put(char(i * 7 + 3));
  }
  auto m = MappedFile::open(path);
  ASSERT_EQ(m->size(), n);
  std::vector<uint8_t> heap(n, 1);
  void* anon = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(anon, MAP_FAILED);
  const std::vector<MappedRange> maps = readonly_file_mappings();
  ASSERT_FALSE(maps.empty()) << "no /proc/self/maps";
  EXPECT_TRUE(inside_mapping(maps, m->data() + 4096, n - 8192));
  EXPECT_TRUE(inside_mapping(maps, m->data(), n));
  EXPECT_FALSE(inside_mapping(maps, m->data() + 1, n + 4096 * 4)) << "past the mapping's end";
  EXPECT_FALSE(inside_mapping(maps, heap.data(), heap.size()));
  EXPECT_FALSE(inside_mapping(maps, anon, n));
  release_mapped_pages(m->data(), n);
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) wrong += m->data()[i] != uint8_t(i * 7 + 3);
  EXPECT_EQ(wrong, 0u) << "a released page read back other bytes than the file's";
  munmap(anon, n);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lathe
