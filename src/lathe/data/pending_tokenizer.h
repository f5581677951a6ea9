// The `--model` tokenizer of `lathe data prepare`, loaded on a thread of its own from construction
// (Qwen3's takes 0.15 s, as long as the streaming driver's checking pass over 100 MB of input, which
// ran after it). Internal to lathe_data.
#pragma once
#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "lathe/tokenizer/tokenizer.h"

namespace lathe::data {

// get() waits for the load once and is then a read; a load error is rethrown by every get(), so a
// bad model still fails the run, at the first use instead of before the input is read. Thread-safe
// (only const members of a shared_future are called).
class PendingTokenizer {
 public:
  // An empty path: no tokenizer, get() is nullptr. LATHE_TOKENIZER_LOAD_DELAY_MS slows the load down
  // (tests: the streaming driver's first batches then wait for it).
  explicit PendingTokenizer(const std::string& path);
  bool wanted() const { return loading_.valid(); }
  // get() would not wait (loaded, failed, or none wanted).
  bool ready() const { return !wanted() || loading_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
  const Tokenizer* get() const { return wanted() ? loading_.get().get() : nullptr; }

 private:
  // The last reference to std::async's state waits for the load when destroyed (a run that fails first).
  std::shared_future<std::unique_ptr<Tokenizer>> loading_;
};

}  // namespace lathe::data
