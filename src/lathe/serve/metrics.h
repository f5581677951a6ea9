// Prometheus text exposition for GET /metrics: request counts by route and status, token counts,
// latency histograms (whole request, time to first token), queue depth and active requests.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace lathe::serve {

class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                     1, 2.5, 5, 10, 30, 60, 120};
  void observe(double v);
  // Appends NAME_bucket{le=...}, NAME_sum, NAME_count lines.
  void render(const std::string& name, std::string* out) const;

 private:
  std::array<uint64_t, kBounds.size()> counts_{};
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  void request(const std::string& route, int status, double latency_s);
  void tokens(int prompt, int completion);
  void time_to_first_token(double s);
  std::string render(int queue_depth, int active, uint64_t scheduler_steps, size_t rss_bytes) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  std::map<std::string, Histogram> latency_;  // by route
  Histogram ttft_;
};

}  // namespace lathe::serve
