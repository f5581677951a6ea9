// The generation scheduler: one worker thread owns all model compute (kernels use OpenMP inside,
// so compute stays on one thread of control) and round-robins over the active requests, giving
// each one prefill chunk or one decode step per turn. Requests therefore progress together: a long
// answer does not hold up a short one, and a new request starts after at most one step of each
// active one. Requests wait in a bounded queue (submit() refuses when it is full: HTTP 429) and at
// most max_active run at once. The requests that are generating share one batched decode step
// (BatchedDecoder: the weights are read once for all, each row adds its own adapter's delta). Each
// request owns its KV cache and a Forward workspace for its prompt chunks; the base
// weights are shared, and its adapter (if any) is applied without merging, so requests for
// different adapters interleave over one base in memory.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lathe/model/model.h"
#include "lathe/model/sampling.h"
#include "lathe/peft/adapter.h"

namespace lathe::serve {

// An adapter loaded for serving; requests hold a shared_ptr so unloading one that is in use only
// drops it from the registry and the weights go when its last request ends.
struct ServedAdapter {
  std::string name, dir;
  LoadedAdapter loaded;
  int64_t created = 0;
  bool rag = false;  // its chat completions retrieve (lathe serve --index, --rag-models)
};

struct GenJob {
  using Clock = std::chrono::steady_clock;
  // Input, set before submit().
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int max_tokens = 16;
  std::vector<int32_t> stop_ids;  // generation ends after one of these (it is reported, then dropped by the caller)
  std::shared_ptr<const ServedAdapter> adapter;
  Clock::time_point deadline = Clock::time_point::max();
  std::atomic<bool> cancel{false};  // set by the HTTP side: client gone or a stop string matched

  // Output, guarded by mu.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> ids;       // generated ids so far
  bool done = false;
  std::string finish_reason;      // "stop", "length", "cancelled", "timeout", "error"
  std::string error;              // for "error"
  Clock::time_point submitted = Clock::now(), started, first_token;

  // Blocks until more than `seen` ids exist, the job is done, or `max_wait` passes.
  void wait_for(size_t seen, std::chrono::milliseconds max_wait);
};

struct SchedulerOptions {
  int max_active = 4;     // requests decoding at once
  int queue_size = 64;    // requests waiting beyond those
  int prefill_chunk = 128;  // prompt tokens per turn, so a long prompt does not stall the others
  // OpenMP threads for the worker's kernels. OpenMP keeps the thread count per thread, so the
  // worker sets it itself; 0 = the process default (OMP_NUM_THREADS, else all cores).
  int threads = 0;
  // Decode the generating requests in one batched step (weights read once per step for all of
  // them); off: one matrix-vector step per request, as Forward does.
  bool batch_decode = true;
};

class Scheduler {
 public:
  Scheduler(const Model& m, SchedulerOptions o);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // false when the queue is full or the scheduler is shut down (the job is not taken).
  bool submit(std::shared_ptr<GenJob> job);
  // Cancels every queued and running job (finish_reason "cancelled"; a running one at its next
  // step, so within one prefill chunk or decode step) and stops the worker. Idempotent.
  void shutdown();
  bool stopped() const { return stopped_.load(); }
  int queue_depth() const;
  int active() const { return active_count_.load(); }
  uint64_t steps() const { return steps_.load(); }

 private:
  struct Active;
  enum class Turn { Finished, Prefill, Decode };
  void run();
  // Checks cancel/deadline, plans buffers, runs one prefill chunk (sampling the first token after
  // the last one). Decode: the request is ready for a decode step.
  Turn prefill_turn(Active& a);
  // Samples from a.logits and hands the token out; false when the job finished.
  bool emit(Active& a);
  void finish(Active& a, const char* reason, const std::string& error = "");

  const Model& m_;
  SchedulerOptions o_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenJob>> queue_;
  bool stop_ = false;
  std::atomic<bool> stopped_{false};
  std::mutex shutdown_mu_;  // serializes shutdown() (a signal thread and the destructor may both call it)
  std::atomic<int> active_count_{0};
  std::atomic<uint64_t> steps_{0};
  std::thread worker_;
};

}  // namespace lathe::serve
