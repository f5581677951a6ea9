// The workbench in a real browser: the bundled example (examples/acme-policy-qa, shrunk to seconds as in
// tests/project/example_e2e.cpp) is run once, `lathe ui` is started on it, and tests/ui/browser_e2e.mjs
// drives Debian's chromium through npm's puppeteer-core: every page, data decisions the next run
// applies, an overrule the report shows, a playground chat, a correction `lathe feedback export` emits.
// Skips when chromium, node or puppeteer-core (tests/ui/setup_npm.sh BUILD_DIR) is absent.
// Screenshots go to $LATHE_UI_SCREENSHOTS (docs/img to refresh the documentation's), else the build dir.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <yaml-cpp/yaml.h>

#include "lathe/core/file_io.h"
#include "lathe/project/scaffold.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

std::string build_dir() { return fs::path(LATHE_BINARY).parent_path().string(); }
std::string chromium() {
  const char* c = std::getenv("LATHE_CHROMIUM");
  return c ? c : "/usr/bin/chromium";
}

// The example with the model, the corpus passes and the step counts made tiny (example_e2e.cpp's shrink).
void shrink(const std::string& file) {
  YAML::Node p = YAML::LoadFile(file);
  YAML::Node b = p["base_model"]["build"];
  b["tokenizer"]["vocab_size"] = 400;
  YAML::Node m = b["model"];
  m["hidden_size"] = 32;
  m["intermediate_size"] = 64;
  m["num_hidden_layers"] = 1;
  m["num_attention_heads"] = 2;
  m["num_key_value_heads"] = 1;
  b["train"].remove("num_train_epochs");
  b["train"]["max_steps"] = 4;
  p["train"].remove("num_train_epochs");
  p["train"]["max_steps"] = 6;
  p["train"]["lora_r"] = 4;
  p["train"]["save_steps"] = 3;
  p["align"].remove("num_train_epochs");
  p["align"]["max_steps"] = 2;
  p["goal"]["gates"]["min_pass_rate"] = 0.0;
  p["export"]["formats"] = std::vector<std::string>{"peft"};
  YAML::Emitter e;
  e << p;
  lathe::write_file_atomic(file, std::string(e.c_str()) + "\n");
}

TEST(UiBrowser, ExampleProjectThroughEveryPage) {
  const std::string npm = build_dir() + "/ui-npm";
  if (!fs::exists(chromium())) GTEST_SKIP() << chromium() << " is absent (apt-get install chromium)";
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not on PATH";
  if (!fs::exists(npm + "/node_modules/puppeteer-core/package.json"))
    GTEST_SKIP() << "puppeteer-core is not installed: run tests/ui/setup_npm.sh " << build_dir();

  lathe::test::TempDir dir;
  const std::string proj = dir / "acme";
  const std::string file = lathe::project::init_project(proj, "acme-policy-qa");
  shrink(file);
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe("run --threads 1 --config " + file, &out, true), 0) << out;

  // lathe ui as a child process on a free port.
  const std::string log = dir / "ui.out";
  pid_t pid = fork();
  if (pid == 0) {
    FILE* o = std::freopen(log.c_str(), "w", stdout);
    FILE* e = std::freopen((dir / "ui.err").c_str(), "w", stderr);
    (void)o, (void)e;
    execl(LATHE_BINARY, LATHE_BINARY, "ui", "--config", proj.c_str(), "--port", "0", "--threads", "1", (char*)nullptr);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 1500 && port == 0; i++) {
    const std::string s = fs::exists(log) ? lathe::read_file(log) : "";
    const size_t p = s.find("http://127.0.0.1:");
    if (p != std::string::npos && s.find('/', p + 17) != std::string::npos) port = std::stoi(s.substr(p + 17));
    else std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  struct Stop {
    pid_t pid;
    ~Stop() {
      kill(pid, SIGTERM);
      int st;
      waitpid(pid, &st, 0);
    }
  } stop{pid};
  ASSERT_GT(port, 0) << "lathe ui did not start: " << lathe::read_file(dir / "ui.err");

  const char* shots_env = std::getenv("LATHE_UI_SCREENSHOTS");
  const std::string shots = shots_env ? shots_env : build_dir() + "/ui-screenshots";
  const std::string cmd = "LATHE_NPM_DIR='" + npm + "' LATHE_CHROMIUM='" + chromium() + "' node " +
                          lathe::test::source_path("tests/ui/browser_e2e.mjs") + " http://127.0.0.1:" + std::to_string(port) +
                          " " + proj + " " + LATHE_BINARY + " '" + shots + "' 2>&1";
  int rc = lathe::test::run_shell(cmd, &out);
  EXPECT_EQ(rc, 0) << out << "\nlathe ui stderr:\n" << lathe::read_file(dir / "ui.err");
  EXPECT_NE(out.find("browser e2e: ok"), std::string::npos) << out;
}

}  // namespace
