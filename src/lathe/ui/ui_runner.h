// `lathe run` started from the Runs page: one child process at a time (its own process group, so
// stopping it stops the stage it is running), its output kept line by line for the page's live
// progress (server-sent events read lines from an index and wait for more).
#pragma once
#include <sys/types.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe::ui {

class RunProcess {
 public:
  ~RunProcess();
  // Starts `args` (args[0]: the program) in `cwd`; false when one is still running.
  bool start(const std::vector<std::string>& args, const std::string& cwd);
  // SIGTERM to its process group; false when none is running.
  bool stop();
  // Lines from `from` on; waits up to `wait_ms` for one when there is none yet and it still runs.
  // *done: it has ended and every line has been returned; *exit_code then holds its status.
  std::vector<std::string> lines(size_t from, int wait_ms, bool* done, int* exit_code);
  // {"running","started_at","args","lines","exit_code"} for the page.
  nlohmann::json status();

 private:
  void reader(int fd, pid_t pid);

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool running_ = false;
  pid_t pid_ = -1;
  int exit_code_ = 0;
  std::string started_at_;
  std::vector<std::string> args_;
  std::thread thread_;
};

}  // namespace lathe::ui
