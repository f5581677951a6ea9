// Helpers shared by the tests: paths, fixtures that may be absent, temp dirs, running the CLI.
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "lathe/core/rng.h"

#include "lathe/core/error.h"

namespace lathe::test {

inline std::string source_path(const std::string& rel) { return std::string(LATHE_SOURCE_DIR) + "/" + rel; }
inline std::string fixture_path(const std::string& rel) { return std::string(LATHE_FIXTURES) + "/" + rel; }
inline bool has_fixture(const std::string& rel) { return std::filesystem::exists(fixture_path(rel)); }

// n draws of scale · N(0, 1) from lathe's seeded generator: the kernels' test inputs.
inline std::vector<float> normal_vector(size_t n, uint64_t seed, float scale = 1.0f) {
  lathe::Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * r.normal();
  return v;
}

#define LATHE_REQUIRE_FIXTURE(rel)                                                       \
  do {                                                                                   \
    if (!::lathe::test::has_fixture(rel))                                                \
      GTEST_SKIP() << "fixture absent: " << ::lathe::test::fixture_path(rel) << " (skipping)"; \
  } while (0)

// A fresh directory under the system temp dir, removed when the object dies.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lathe-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (!p) std::abort();
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& rel) const { return path + "/" + rel; }
};

// numpy.allclose's rule: |got - want| <= atol + rtol * |want|. Numeric comparisons scale with the
// magnitude they compare: an fp32 sum of n terms moves by about n * 2^-24 * |sum| when the summation
// order changes (AVX2 vs AVX-512 kernels, another OpenBLAS core, -O2 vs -O3), so a bare absolute
// tolerance tuned on one CPU fails on another for large values (a 59.6 gradient off by 1.1e-5).
inline ::testing::AssertionResult all_close(double got, double want, double rtol, double atol) {
  const double diff = std::fabs(got - want), allowed = atol + rtol * std::fabs(want);
  if (diff <= allowed) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << got << " vs " << want << ": |diff| " << diff << " > " << allowed
                                       << " (atol " << atol << " + rtol " << rtol << " * |want|)";
}
#define LATHE_EXPECT_CLOSE(got, want, rtol, atol) EXPECT_TRUE(::lathe::test::all_close((got), (want), (rtol), (atol)))
#define LATHE_ASSERT_CLOSE(got, want, rtol, atol) ASSERT_TRUE(::lathe::test::all_close((got), (want), (rtol), (atol)))

// The message of the lathe::Error that f() throws, or "(no error)" when it returns normally.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ::lathe::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs a shell command; returns its exit status (-1 when it did not exit), its stdout in *out.
inline int run_shell(const std::string& cmd, std::string* out) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Runs the lathe binary with `args` (a shell-quoted string); returns exit status, stdout in *out.
inline int run_lathe(const std::string& args, std::string* out, bool merge_stderr = false) {
  return run_shell(std::string(LATHE_BINARY) + " " + args + (merge_stderr ? " 2>&1" : ""), out);
}

// The MPI launcher for tests: mpirun on this machine's loopback, as root where CI runs as root,
// oversubscribed (ctest runs tests side by side on two cores) and unbound (lathe sets its threads).
// No single-copy shared memory (CMA): containers without ptrace rights refuse it.
inline std::string mpirun_prefix(int np) {
  return "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none -np " +
         std::to_string(np) + " ";
}
// Whether `mpirun` runs here and this lathe was built with MPI (tests skip otherwise).
inline bool mpi_available() {
  static const bool ok = [] {
    if (std::system((mpirun_prefix(1) + "true >/dev/null 2>&1").c_str()) != 0) return false;
    std::string out;
    return run_lathe("version", &out, true) == 0 && out.find("distributed: mpi") != std::string::npos;
  }();
  return ok;
}
// Runs `mpirun -np NP lathe ARGS`; like run_lathe.
inline int run_lathe_mpi(int np, const std::string& args, std::string* out, bool merge_stderr = false) {
  return run_shell(mpirun_prefix(np) + std::string(LATHE_BINARY) + " " + args + (merge_stderr ? " 2>&1" : ""), out);
}

// Starts `lathe ARGS` (output discarded) and SIGKILLs it as soon as `path` exists (at most
// `timeout_s`). Returns true when the kill cut the run short, false when it had already ended.
inline bool run_lathe_killed_when(const std::string& args, const std::string& path, int timeout_s = 120) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string cmd = "exec " + std::string(LATHE_BINARY) + " " + args + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

}  // namespace lathe::test
