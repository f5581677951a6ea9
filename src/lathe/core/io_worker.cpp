#include "lathe/core/io_worker.h"

namespace lathe {

IoWorker::~IoWorker() {
  {
    std::lock_guard<std::mutex> l(m_);
    done_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::future<void> IoWorker::submit(std::function<void()> job) {
  std::packaged_task<void()> task(std::move(job));
  std::future<void> f = task.get_future();
  {
    std::lock_guard<std::mutex> l(m_);
    jobs_.push_back(std::move(task));
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  cv_.notify_one();
  return f;
}

void IoWorker::run() {
  while (true) {
    std::packaged_task<void()> task;
    {
      std::unique_lock<std::mutex> l(m_);
      cv_.wait(l, [&] { return done_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // done_ and nothing left
      task = std::move(jobs_.front());
      jobs_.pop_front();
    }
    task();  // an exception is stored in the task's future
  }
}

}  // namespace lathe
