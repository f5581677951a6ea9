// lathe ui: the browser workbench over a project (docs/ui.md).
#include <csignal>
#include <cstdio>
#include <thread>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/ui/ui_server.h"

namespace {

std::function<int()> setup(CLI::App& app) {
  const auto& table = lathe::ui::ui_options_table();
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, table);
  return [flags, &table] {
    lathe::ui::UiOptions o;
    table.apply(o, flags->overrides());  // defaults < LATHE_UI_* environment < flags
    table.check(o);
    std::signal(SIGPIPE, SIG_IGN);  // a page closed mid-stream must not end the workbench
    // SIGINT/SIGTERM stop the server from a thread of our own (httplib's stop is not async-signal-safe).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    lathe::ui::UiServer server(o);
    std::thread waiter([&server, set] {
      int sig = 0;
      sigwait(&set, &sig);
      std::fprintf(stderr, "lathe ui: signal %d, stopping\n", sig);
      server.stop();
    });
    waiter.detach();  // the process ends when run() returns
    server.run([&](int port) {
      std::printf("lathe ui: http://%s:%d/ (project %s)%s\n", o.host.c_str(), port, o.config.empty() ? "project.yaml" : o.config.c_str(),
                  o.token.empty() ? "" : "; log in with the token");
      std::fflush(stdout);
    });
    return 0;
  };
}
LATHE_COMMAND("ui", "The browser workbench: runs, data review, eval review, feedback, playground", setup);

}  // namespace
