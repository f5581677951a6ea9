// `lathe ui`: the browser workbench over one project (docs/ui.md). One local web application on
// serve's HTTP stack (serve/http_guard.h: the same caps on headers, bodies and connections), its
// pages built into the binary (ui_assets.h), and a JSON API behind a login:
//   Runs       the run registry, gate verdicts, pass rates, training curves, two runs compared (config
//              diff, cases fixed/broken); `lathe run` started and stopped, its output live (SSE)
//   Data       the prepared records with drop reasons, personal data and duplicates; approve / edit /
//              reject / label into PROJECT/review/data.json, which the next `lathe run` applies
//   Eval       every case across variants; overrules into PROJECT/review/eval_overrules.json
//   Feedback   served answers with ratings; a correction becomes feedback `lathe feedback export` emits
//   Playground chat with several variants side by side (ui_playground.h)
// Security: ui_session.h (loopback by default, token otherwise, expiring sessions, CSRF), every
// decision audited with its reviewer (ui_audit.h), JSON answers with '<' escaped, and pages that
// only ever set text (never HTML) from data.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "lathe/core/options.h"

namespace lathe::ui {

struct UiOptions {
  std::string config;            // project.yaml or its directory ("" = ./project.yaml)
  std::string host = "127.0.0.1";
  int port = 8090;               // 0 = any free port
  std::string token;             // required unless host is loopback (env LATHE_UI_TOKEN)
  double session_ttl_s = 8 * 3600;
  std::string data_dir;          // the serve data directory with feedback.sqlite; "" = serve.data_dir or PROJECT/lathe-data
  std::string exe;               // the lathe binary for `lathe run` ("" = this process's)
  int threads = 0;               // `lathe run --threads` and the playground's generation threads
};
const OptionTable<UiOptions>& ui_options_table();

class UiServer {
 public:
  // Loads the project; throws lathe::Error for a bad project file or a non-loopback host without a token.
  explicit UiServer(UiOptions o);
  ~UiServer();
  // Binds and serves until stop(); on_listening gets the bound port.
  void run(const std::function<void(int port)>& on_listening = {});
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lathe::ui
