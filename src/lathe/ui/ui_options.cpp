#include "lathe/ui/ui_server.h"

namespace lathe::ui {

// The environment variables are LATHE_UI_*: `lathe serve` reads LATHE_HOST / LATHE_PORT, and a shell
// that sets those for the server must not move the workbench.
const OptionTable<UiOptions>& ui_options_table() {
  using C = UiOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("ui");
    t.add("config", &C::config, "The project file (default: ./project.yaml), or its directory").with_env("LATHE_UI_CONFIG");
    t.add("host", &C::host, "Address to listen on; other than loopback needs --token").with_env("LATHE_UI_HOST");
    t.add("port", &C::port, "Port (0 = any free port, printed at start)").range(0, 65535).with_env("LATHE_UI_PORT");
    t.add("token", &C::token, "Token a browser must give at login (required unless --host is loopback)")
        .with_env("LATHE_UI_TOKEN");
    t.add("session_ttl", &C::session_ttl_s, "Seconds a login lasts").min(1).with_env("LATHE_UI_SESSION_TTL");
    t.add("data_dir", &C::data_dir, "lathe serve's --data-dir whose feedback.sqlite the Feedback page reads "
                                    "(default: project.yaml's serve.data_dir, else PROJECT/lathe-data)")
        .with_env("LATHE_UI_DATA_DIR");
    t.add("threads", &C::threads, "Threads for runs started from the page and for the playground (0 = all cores)")
        .min(0)
        .with_env("LATHE_UI_THREADS");
    return t;
  }();
  return table;
}

}  // namespace lathe::ui
