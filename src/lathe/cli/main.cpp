// lathe: one binary, one subcommand per file (cmd_*.cpp). Errors a user can cause arrive here as
// lathe::Error and are printed without a stack trace; exit code 1.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <cstring>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/threads.h"
#include "lathe/dist/comm.h"
#include "lathe/kernels/cpu/cpu.h"

namespace lathe::cli {

std::map<std::string, Command>& command_registry() {
  static std::map<std::string, Command> registry;
  return registry;
}

int& add_threads_option(CLI::App& app) {
  static int threads = 0;
  app.add_option("--threads", threads, "Threads for kernels and BLAS (0 = all cores)")
      ->envname("LATHE_THREADS")
      ->capture_default_str();
  return threads;
}

void apply_threads(int n) { cpu_set_num_threads(n); }

}  // namespace lathe::cli

// Prints the error and exits 1. Under mpirun the message names the rank, and the whole job stops:
// the other ranks may be waiting for this one in a collective and would otherwise hang.
[[noreturn]] static void fail_job(const char* command, const char* what) {
  if (lathe::launched_by_mpi() && lathe::built_with_mpi()) {
    std::string prefix;
    try {
      prefix = lathe::rank_prefix();
    } catch (const std::exception&) {
    }
    std::fprintf(stderr, "lathe %s: %serror: %s\n", command, prefix.c_str(), what);
    try {
      if (lathe::world().size() > 1) lathe::world().abort(1);
    } catch (const std::exception&) {
    }
  } else {
    std::fprintf(stderr, "lathe %s: error: %s\n", command, what);
  }
  std::exit(1);
}

static void print_usage() {
  std::printf("lathe — turn a pretrained language model into a domain expert\n\nusage: lathe COMMAND [options]\n\n");
  for (auto& [name, cmd] : lathe::cli::command_registry()) std::printf("  %-16s %s\n", name.c_str(), cmd.help.c_str());
  std::printf("\nlathe COMMAND --help shows the options of a command.\n");
}

int main(int argc, char** argv) {
  if (const char* missing = lathe::cpu_missing_build_feature()) {
#if defined(__aarch64__)
    const char* portable = "armv8-a";
#else
    const char* portable = "x86-64-v3";
#endif
    std::fprintf(stderr,
                 "lathe: this binary was built for a CPU with %s, which this CPU lacks; rebuild here "
                 "(scripts/setup.sh), or build a portable binary with -DLATHE_NATIVE=OFF -DLATHE_ARCH=%s\n",
                 missing, portable);
    return 1;
  }
  auto& reg = lathe::cli::command_registry();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("lathe 0.1.0\n");
    return 0;
  }
  auto it = reg.find(argv[1]);
  if (it == reg.end()) {
    std::fprintf(stderr, "lathe: unknown command '%s' (lathe --help lists them)\n", argv[1]);
    return 2;
  }
  CLI::App app{it->second.help, std::string("lathe ") + argv[1]};
  app.set_help_flag("-h,--help", "Show the options of this command");
  std::function<int()> run = it->second.setup(app);
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run();
  } catch (const std::exception& e) {
    fail_job(argv[1], e.what());
  }
}
