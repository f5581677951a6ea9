#include <cstdio>

#include "lathe/cli/command.h"
#include "lathe/core/threads.h"

namespace {
std::function<int()> setup(CLI::App& app) {
  int& threads = lathe::cli::add_threads_option(app);
  return [&threads] {
    lathe::cli::apply_threads(threads);
    std::printf("lathe 0.1.0 (threads: %d)\n", lathe::num_threads());
    return 0;
  };
}
LATHE_COMMAND("version", "Print the version and thread count", setup);
}  // namespace
