#include "lathe/data/pending_tokenizer.h"

#include <chrono>
#include <thread>

#include "lathe/data/prepare_spool.h"

namespace lathe::data {

PendingTokenizer::PendingTokenizer(const std::string& path) {
  if (path.empty()) return;
  const size_t delay = knob("LATHE_TOKENIZER_LOAD_DELAY_MS", 0);
  loading_ = std::async(std::launch::async, [path, delay] {
               if (delay) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
               return Tokenizer::load(path);
             }).share();
}

}  // namespace lathe::data
