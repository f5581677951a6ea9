#include "lathe/ui/ui_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "lathe/core/error.h"
#include "lathe/project/run_registry.h"

namespace lathe::ui {

RunProcess::~RunProcess() {
  stop();
  if (thread_.joinable()) thread_.join();
}

bool RunProcess::start(const std::vector<std::string>& args, const std::string& cwd) {
  std::unique_lock<std::mutex> lock(mu_);
  if (running_) return false;
  if (thread_.joinable()) thread_.join();  // the previous run's reader has finished (running_ is false)
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) fail("ui", "cannot create a pipe for lathe run");
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    fail("ui", "cannot start lathe run (fork failed)");
  }
  if (pid == 0) {  // child: its own process group, stdout and stderr into the pipe
    setpgid(0, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    if (chdir(cwd.c_str()) != 0) _exit(127);
    execv(argv[0], argv.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also here: no race with a stop() before the child ran setpgid
  close(fds[1]);
  lines_.clear();
  running_ = true;
  pid_ = pid;
  exit_code_ = 0;
  started_at_ = project::utc_now_iso();
  args_ = args;
  thread_ = std::thread([this, fd = fds[0], pid] { reader(fd, pid); });
  return true;
}

void RunProcess::reader(int fd, pid_t pid) {
  std::string buf;
  char chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, size_t(n));
    // Progress bars redraw with \r: each redraw counts as a line for the page.
    size_t start = 0, nl;
    std::vector<std::string> got;
    while ((nl = buf.find_first_of("\r\n", start)) != std::string::npos) {
      if (nl > start) got.push_back(buf.substr(start, nl - start));
      start = nl + 1;
    }
    buf.erase(0, start);
    if (!got.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& l : got) lines_.push_back(std::move(l));
      cv_.notify_all();
    }
  }
  close(fd);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!buf.empty()) lines_.push_back(buf);
  exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  running_ = false;
  pid_ = -1;
  cv_.notify_all();
}

bool RunProcess::stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_ || pid_ <= 0) return false;
  kill(-pid_, SIGTERM);
  return true;
}

std::vector<std::string> RunProcess::lines(size_t from, int wait_ms, bool* done, int* exit_code) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return lines_.size() > from || !running_; });
  std::vector<std::string> out;
  for (size_t i = from; i < lines_.size(); i++) out.push_back(lines_[i]);
  *done = !running_;
  *exit_code = exit_code_;
  return out;
}

nlohmann::json RunProcess::status() {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"running", running_}, {"started_at", started_at_}, {"args", args_}, {"lines", lines_.size()},
          {"exit_code", running_ ? nlohmann::json(nullptr) : nlohmann::json(exit_code_)}};
}

}  // namespace lathe::ui
