// lathe serve: the OpenAI-compatible HTTP server (docs/serve.md).
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/serve/limits.h"
#include "lathe/serve/server.h"
#include "lathe/serve/serve_options.h"

namespace {

// jemalloc's control call where the binary links it (CMakeLists.txt), null under glibc's malloc.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen)
    __attribute__((weak));

// jemalloc keeps freed pages resident for ~10 s before returning them: the right trade for batch jobs
// (`data prepare` spends 20-25% less CPU than on glibc's malloc), the wrong one for a long-lived server,
// whose RSS after a burst of large requests should fall back at once rather than look held
// (tests/serve/serve_limits_e2e.cpp). A server returns freed pages immediately.
void return_freed_pages_at_once() {
  if (!mallctl) return;
  ssize_t zero = 0;
  for (const char* k : {"arenas.dirty_decay_ms", "arenas.muzzy_decay_ms"})  // arenas created later
    mallctl(k, nullptr, nullptr, &zero, sizeof zero);
  unsigned n = 0;
  size_t len = sizeof n;
  if (mallctl("arenas.narenas", &n, &len, nullptr, 0) != 0) return;
  for (unsigned i = 0; i < n; i++)
    for (const char* what : {"dirty", "muzzy"}) {
      const std::string k = "arena." + std::to_string(i) + "." + what + "_decay_ms";
      mallctl(k.c_str(), nullptr, nullptr, &zero, sizeof zero);  // fails harmlessly for an arena not yet made
    }
}

std::function<int()> setup(CLI::App& app) {
  const auto& table = lathe::serve::serve_options_table();
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, table);
  return [flags, &table] {
    // defaults < LATHE_* environment < flags (serve/serve_options.h)
    lathe::serve::ServeCommandOptions c;
    table.apply(c, flags->overrides());
    auto o = std::make_shared<lathe::serve::ServerOptions>(lathe::serve::finish_serve_options(c));
    lathe::cli::apply_threads(o->threads);  // the generation worker applies it to itself too (OpenMP is per thread)
    // A client that disconnects mid-write must not kill the server.
    std::signal(SIGPIPE, SIG_IGN);
    // SIGINT/SIGTERM stop the listener from a thread of our own (httplib's stop is not
    // async-signal-safe), so in-flight requests finish their writes and the database closes cleanly.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);  // our own wake-up when the server ends for another reason
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread started below
    return_freed_pages_at_once();
    lathe::serve::Server server(*o);
    std::atomic<bool> finished{false};
    std::thread waiter([&server, &finished, set] {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig == SIGUSR1) return;
      std::fprintf(stderr, "lathe serve: signal %d, stopping\n", sig);
      auto t0 = std::chrono::steady_clock::now();
      server.stop();  // in-flight generations are cancelled at their next step
      // Draining is bounded by the I/O timeouts; should something still hang, do not hang with it.
      while (!finished.load()) {
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s > lathe::serve::kDrainTimeoutS) {
          std::fprintf(stderr, "lathe serve: connections did not drain within %.0f s; exiting\n", lathe::serve::kDrainTimeoutS);
          std::fflush(stderr);
          std::_Exit(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    struct JoinWaiter {  // wakes and joins the waiter however run() ends
      std::thread& t;
      std::atomic<bool>& finished;
      ~JoinWaiter() {
        finished = true;
        pthread_kill(t.native_handle(), SIGUSR1);  // harmless when it already returned (not yet joined)
        t.join();
      }
    } join_waiter{waiter, finished};
    server.run([&](int port) {
      std::printf("lathe serve: listening on http://%s:%d (model '%s')\n", o->host.c_str(), port,
                  server.served_model_name().c_str());
      std::fflush(stdout);
    });
    std::fprintf(stderr, "lathe serve: stopped\n");
    return 0;
  };
}
LATHE_COMMAND("serve", "OpenAI-compatible HTTP server with adapters and a feedback store", setup);

}  // namespace
