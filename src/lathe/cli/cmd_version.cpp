#include <cstdio>

#include "lathe/cli/command.h"
#include "lathe/core/threads.h"
#include "lathe/dist/comm.h"

namespace {
std::function<int()> setup(CLI::App& app) {
  int& threads = lathe::cli::add_threads_option(app);
  return [&threads] {
    lathe::cli::apply_threads(threads);
    // "mpi" when this build can run data-parallel under mpirun (tests and scripts look for it).
    std::printf("lathe 0.1.0 (threads: %d, distributed: %s)\n", lathe::num_threads(),
                lathe::built_with_mpi() ? "mpi" : "none");
    return 0;
  };
}
LATHE_COMMAND("version", "Print the version and thread count", setup);
}  // namespace
