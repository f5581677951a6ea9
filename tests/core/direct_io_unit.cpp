// core/direct_io: files appended around the page cache hold exactly the bytes given, across buffer
// boundaries, flushes that leave a partial block (and appends after them), and reads at any offset;
// AtomicFileWriter's direct mode gives the same file as its buffered one. Run in the build's temp
// directory and in /dev/shm (tmpfs: O_DIRECT taken or refused, depending on the kernel).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include "lathe/core/direct_io.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/io_worker.h"

namespace lathe {
namespace {

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = char(rng() & 0xFF);
  return s;
}

std::vector<std::string> dirs() {
  std::vector<std::string> d{std::filesystem::temp_directory_path().string()};
  if (std::filesystem::is_directory("/dev/shm")) d.push_back("/dev/shm");
  return d;
}

TEST(DirectIo, AppendsFlushesAndReadsGiveBackTheBytes) {
  for (const std::string& dir : dirs()) {
    SCOPED_TRACE(dir);
    const std::string path = dir + "/lathe_direct_" + std::to_string(getpid());
    bool direct = false;
    const int fd = open_direct(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600, direct);
    ASSERT_GE(fd, 0);
    std::mt19937_64 rng(7);
    std::string want;
    {
      DirectAppender out(fd, direct, path, 3 * kDirectAlign);  // a small buffer: many boundaries
      for (int step = 0; step < 400; step++) {
        const size_t n = step % 50 == 0 ? 20000 + rng() % 9000 : rng() % 1500;
        const std::string b = random_bytes(rng, n);
        out.append(b.data(), b.size());
        want += b;
        if (rng() % 7 == 0) out.flush();  // a partial block written, then written again whole
        ASSERT_EQ(out.size(), want.size());
      }
      out.flush();
    }
    std::string scratch;
    for (int q = 0; q < 300; q++) {
      const size_t at = rng() % want.size(), n = std::min<size_t>(want.size() - at, rng() % 20000);
      ASSERT_EQ(pread_view(fd, at, n, scratch, path), std::string_view(want).substr(at, n)) << at << "+" << n;
    }
    ASSERT_EQ(pread_view(fd, 0, want.size(), scratch, path), want);
    // Past the end of what the file holds (its padded last block included): an error naming the file.
    try {
      pread_view(fd, want.size() + 2 * kDirectAlign, 10, scratch, path);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    ::close(fd);
    std::filesystem::remove(path);
  }
}

TEST(DirectIo, AtomicWriterDirectGivesTheBufferedFile) {
  for (const std::string& dir : dirs()) {
    SCOPED_TRACE(dir);
    std::mt19937_64 rng(11);
    std::string want;
    const std::string a = dir + "/lathe_awd_" + std::to_string(getpid()), b = a + ".buffered";
    {
      AtomicFileWriter wd(a, /*direct=*/true), wb(b);
      for (int step = 0; step < 200; step++) {
        const std::string s = random_bytes(rng, step == 100 ? (size_t(9) << 20) + 5 : rng() % 70000);
        wd.write(s);
        wb.write(s);
        want += s;
      }
      wd.commit();
      wb.commit();
    }
    EXPECT_EQ(std::filesystem::file_size(a), want.size());
    EXPECT_EQ(read_file(a), want);
    EXPECT_EQ(read_file(b), want);
    // Abandoned before commit: neither the file nor its temporary stays.
    const std::string c = a + ".abandoned";
    {
      AtomicFileWriter w(c, true);
      w.write(want.substr(0, 12345));
    }
    EXPECT_FALSE(std::filesystem::exists(c));
    for (auto& e : std::filesystem::directory_iterator(dir))
      EXPECT_EQ(e.path().string().find(c + ".tmp"), std::string::npos) << e.path();
    // An empty file.
    {
      AtomicFileWriter w(c, true);
      w.commit();
    }
    EXPECT_EQ(std::filesystem::file_size(c), 0u);
    for (const std::string& p : {a, b, c}) std::filesystem::remove(p);
  }
}

// IoWorker: jobs run one at a time in the order given, a job's exception comes out of its future, and
// the destructor runs what is still queued.
TEST(IoWorker, RunsJobsInOrderAndPassesErrorsOn) {
  std::vector<int> seen;
  {
    IoWorker w;
    std::vector<std::future<void>> f;
    for (int i = 0; i < 50; i++) f.push_back(w.submit([&seen, i] { seen.push_back(i); }));
    auto bad = w.submit([] { throw Error("no disk"); });
    for (auto& x : f) x.get();
    EXPECT_THROW(bad.get(), Error);
    for (int i = 50; i < 60; i++) w.submit([&seen, i] { seen.push_back(i); });  // futures dropped: run anyway
  }
  ASSERT_EQ(seen.size(), 60u);
  for (int i = 0; i < 60; i++) EXPECT_EQ(seen[size_t(i)], i);
}

}  // namespace
}  // namespace lathe
