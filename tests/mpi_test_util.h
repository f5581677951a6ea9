// Running lathe under mpirun from a test. Kept out of test_util.h so that adding to it does not
// rebuild every test.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_util.h"

namespace lathe::test {

// Whether `mpirun` is on PATH (tests of jobs under MPI skip without it).
inline bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// Runs `mpirun -np NP lathe ARGS` with stdout and stderr merged into *out; `mpirun_args` go to mpirun
// (e.g. "-x NAME=VALUE"). `timeout` bounds the job, so that ranks waiting on each other forever fail
// the test instead of hanging it: exit status 124 means it timed out.
inline int run_lathe_mpi(int np, const std::string& args, std::string* out, int timeout_s = 300,
                         const std::string& mpirun_args = "") {
  const std::string cmd = "timeout -k 10 " + std::to_string(timeout_s) + " mpirun --allow-run-as-root --oversubscribe -np " +
                          std::to_string(np) + " " + mpirun_args + " " + std::string(LATHE_BINARY) + " " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace lathe::test
