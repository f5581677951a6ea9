// Prometheus text exposition for GET /metrics: request counts by route and status, token counts,
// latency histograms (whole request, time to first token, retrieval), queue depth and active requests.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lathe::serve {

class Histogram {
 public:
  // Request-sized latencies (the default) and sub-millisecond ones (an index lookup).
  static constexpr std::array<double, 14> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                     1, 2.5, 5, 10, 30, 60, 120};
  static constexpr std::array<double, 14> kFineBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                         0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  Histogram() : Histogram(kBounds.begin(), kBounds.end()) {}
  template <class It>
  Histogram(It first, It last) : bounds_(first, last), counts_(bounds_.size()) {}
  void observe(double v);
  // Appends NAME_bucket{le=...}, NAME_sum, NAME_count lines.
  void render(const std::string& name, std::string* out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  void request(const std::string& route, int status, double latency_s);
  void tokens(int prompt, int completion);
  void time_to_first_token(double s);
  // One index search for a chat completion: its latency, the passages it found, and how many of
  // them went into the prompt (the rest were dropped so that the prompt fits the context).
  void retrieval(double latency_s, int found, int sent);
  void retrieval_error();
  std::string render(int queue_depth, int active, uint64_t scheduler_steps, size_t rss_bytes) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  std::map<std::string, Histogram> latency_;  // by route
  Histogram ttft_;
  uint64_t retrievals_ = 0, retrieval_empty_ = 0, retrieval_errors_ = 0, retrieval_passages_ = 0, retrieval_dropped_ = 0;
  Histogram retrieval_latency_{Histogram::kFineBounds.begin(), Histogram::kFineBounds.end()};
};

}  // namespace lathe::serve
