// One background thread that runs the jobs given to it in order: a file's next write or read while
// the caller works on the buffer before it. A thread per job (std::async) costs a thread start and
// exit each time, and the exit's stack release (madvise) interrupts every CPU the process runs on to
// flush its TLB: in a 2-thread `data prepare` of 100 MB those interrupts were 5 % of the CPU time.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace lathe {

class IoWorker {
 public:
  IoWorker() = default;
  ~IoWorker();  // runs what is queued, then ends the thread
  IoWorker(const IoWorker&) = delete;
  IoWorker& operator=(const IoWorker&) = delete;
  // The job's exception, if any, comes out of the future's get().
  std::future<void> submit(std::function<void()> job);

 private:
  void run();
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> jobs_;
  bool done_ = false;
  std::thread thread_;  // started at the first job
};

}  // namespace lathe
