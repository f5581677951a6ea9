#include "lathe/serve/scheduler.h"

#include <malloc.h>

#include <algorithm>
#include <cstring>

#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/batched_decode.h"
#include "lathe/model/forward.h"

namespace lathe::serve {

void GenJob::wait_for(size_t seen, std::chrono::milliseconds max_wait) {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, max_wait, [&] { return done || ids.size() > seen; });
}

// The worker's private state for one running request.
struct Scheduler::Active {
  std::shared_ptr<GenJob> job;
  KVCache cache;
  std::unique_ptr<Forward> fwd;
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> history;  // prompt + generated, for the penalties
  std::vector<float> logits;
  size_t prefilled = 0;
  int generated = 0;
};

Scheduler::Scheduler(const Model& m, SchedulerOptions o) : m_(m), o_(o) {
  o_.max_active = std::max(o_.max_active, 1);
  o_.queue_size = std::max(o_.queue_size, 0);
  o_.prefill_chunk = std::max(o_.prefill_chunk, 1);
  worker_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() { shutdown(); }

void Scheduler::shutdown() {
  std::lock_guard<std::mutex> once(shutdown_mu_);
  std::deque<std::shared_ptr<GenJob>> queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stopped_ = true;
    queued.swap(queue_);
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();  // the worker cancels the running jobs as it leaves
  for (auto& j : queued) {  // never started: tell whoever waits
    std::lock_guard<std::mutex> lock(j->mu);
    j->done = true;
    j->finish_reason = "cancelled";
    j->cv.notify_all();
  }
}

bool Scheduler::submit(std::shared_ptr<GenJob> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return false;
    // Admission counts queued plus running, so max_active + queue_size requests are in at once.
    if (int(queue_.size()) + active_count_.load() >= o_.max_active + o_.queue_size) return false;
    job->submitted = GenJob::Clock::now();
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

int Scheduler::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int(queue_.size());
}

void Scheduler::finish(Active& a, const char* reason, const std::string& error) {
  std::lock_guard<std::mutex> lock(a.job->mu);
  a.job->done = true;
  a.job->finish_reason = reason;
  a.job->error = error;
  a.job->cv.notify_all();
}

void Scheduler::run() {
  if (o_.threads > 0) cpu_set_num_threads(o_.threads);
  std::vector<std::unique_ptr<Active>> active;
  std::unique_ptr<BatchedDecoder> batched;
  if (o_.batch_decode) batched = std::make_unique<BatchedDecoder>(m_, o_.max_active);
  const int V = m_.config.vocab_size;
  std::vector<float> batch_logits;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (active.empty() && queue_.empty()) {
        // Idle: hand freed KV caches and workspaces back to the system, so RSS after a burst
        // returns to its resting size instead of staying at the burst's high-water mark.
        lock.unlock();
        malloc_trim(0);
        lock.lock();
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      }
      if (stop_) break;
      while (!queue_.empty() && int(active.size()) < o_.max_active) {
        auto a = std::make_unique<Active>();
        a->job = std::move(queue_.front());
        queue_.pop_front();
        active.push_back(std::move(a));
      }
      active_count_.store(int(active.size()));
    }
    // One turn: each request that is still reading its prompt gets a prefill chunk; all that are
    // generating get one decode step, together.
    std::vector<Active*> decoding;
    for (auto& a : active) {
      try {
        Turn t = prefill_turn(*a);
        if (t == Turn::Finished) a.reset();
        else if (t == Turn::Decode) decoding.push_back(a.get());
      } catch (const std::exception& e) {  // e.g. out of memory for the KV cache: fail this request only
        finish(*a, "error", e.what());
        a.reset();
      }
    }
    if (!decoding.empty()) {
      std::vector<char> ended(decoding.size(), 0);
      try {
        if (batched) {
          std::vector<int32_t> ids;
          std::vector<KVCache*> caches;
          std::vector<const AdapterSet*> sets;
          for (Active* a : decoding) {
            ids.push_back(a->history.back());
            caches.push_back(&a->cache);
            sets.push_back(a->job->adapter ? a->job->adapter->loaded.set() : nullptr);
          }
          batch_logits.resize(decoding.size() * size_t(V));
          batched->step(ids.data(), caches.data(), sets.data(), int(decoding.size()), batch_logits.data());
          for (size_t i = 0; i < decoding.size(); i++)
            std::memcpy(decoding[i]->logits.data(), batch_logits.data() + i * V, sizeof(float) * V);
        } else {
          for (Active* a : decoding) {
            int32_t last = a->history.back();
            a->fwd->logits(a->fwd->hidden(&last, 1, &a->cache), 1, a->logits.data());
          }
        }
        steps_++;
        for (size_t i = 0; i < decoding.size(); i++) ended[i] = !emit(*decoding[i]);
      } catch (const std::exception& e) {
        for (size_t i = 0; i < decoding.size(); i++)
          if (!ended[i]) {
            finish(*decoding[i], "error", e.what());
            ended[i] = 1;
          }
      }
      for (auto& p : active)
        for (size_t i = 0; i < decoding.size(); i++)
          if (ended[i] && p.get() == decoding[i]) p.reset();
    }
    active.erase(std::remove(active.begin(), active.end(), nullptr), active.end());
    active_count_.store(int(active.size()));
  }
  for (auto& a : active) finish(*a, "cancelled");
}

Scheduler::Turn Scheduler::prefill_turn(Active& a) {
  GenJob& j = *a.job;
  if (j.cancel.load()) {
    finish(a, "cancelled");
    return Turn::Finished;
  }
  if (GenJob::Clock::now() > j.deadline) {
    finish(a, "timeout", "the request ran past its timeout");
    return Turn::Finished;
  }
  const int C = m_.config.hidden_size;
  if (!a.fwd) {  // first turn: plan this request's buffers
    const AdapterSet* set = j.adapter ? j.adapter->loaded.set() : nullptr;
    a.cache = KVCache::create_for(m_.config, int(j.prompt.size()) + j.max_tokens, set);
    a.fwd = std::make_unique<Forward>(m_, std::min<int>(int(j.prompt.size()), o_.prefill_chunk), set);
    a.sampler = std::make_unique<Sampler>(j.sampling);
    a.history = j.prompt;
    a.logits.resize(m_.config.vocab_size);
    std::lock_guard<std::mutex> lock(j.mu);
    j.started = GenJob::Clock::now();
  }
  if (a.prefilled == j.prompt.size()) return Turn::Decode;
  steps_++;
  int n = int(std::min<size_t>(j.prompt.size() - a.prefilled, size_t(o_.prefill_chunk)));
  const float* h = a.fwd->hidden(j.prompt.data() + a.prefilled, n, &a.cache);
  a.prefilled += size_t(n);
  if (a.prefilled < j.prompt.size()) return Turn::Prefill;
  a.fwd->logits(h + size_t(n - 1) * C, 1, a.logits.data());  // the first new token comes from the prompt's last
  return emit(a) ? Turn::Prefill : Turn::Finished;
}

bool Scheduler::emit(Active& a) {
  GenJob& j = *a.job;
  int32_t next = a.sampler->sample(a.logits.data(), m_.config.vocab_size, a.history);
  a.history.push_back(next);
  a.generated++;
  bool stop = std::find(j.stop_ids.begin(), j.stop_ids.end(), next) != j.stop_ids.end();
  {
    std::lock_guard<std::mutex> lock(j.mu);
    if (j.ids.empty()) j.first_token = GenJob::Clock::now();
    j.ids.push_back(next);
    j.cv.notify_all();
  }
  if (stop) {
    finish(a, "stop");
    return false;
  }
  if (a.generated >= j.max_tokens) {
    finish(a, "length");
    return false;
  }
  return true;
}

}  // namespace lathe::serve
