#include "lathe/serve/metrics.h"

#include <fmt/format.h>

namespace lathe::serve {

void Histogram::observe(double v) {
  for (size_t i = 0; i < bounds_.size(); i++)
    if (v <= bounds_[i]) counts_[i]++;
  count_++;
  sum_ += v;
}

void Histogram::render(const std::string& name, std::string* out) const {
  // Prometheus buckets are cumulative: counts_[i] already counts every v <= bound i.
  size_t brace = name.find('{');
  std::string base = name.substr(0, brace), labels = brace == std::string::npos ? "" : name.substr(brace + 1, name.size() - brace - 2);
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < bounds_.size(); i++)
    *out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", base, labels, sep, bounds_[i], counts_[i]);
  *out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", base, labels, sep, count_);
  std::string lab = labels.empty() ? "" : "{" + labels + "}";
  *out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", base, lab, sum_, base, lab, count_);
}

void Metrics::request(const std::string& route, int status, double latency_s) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_[{route, status}]++;
  latency_[route].observe(latency_s);
}

void Metrics::tokens(int prompt, int completion) {
  std::lock_guard<std::mutex> lock(mu_);
  prompt_tokens_ += uint64_t(prompt);
  completion_tokens_ += uint64_t(completion);
}

void Metrics::time_to_first_token(double s) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_.observe(s);
}

void Metrics::retrieval(double latency_s, int found, int sent) {
  std::lock_guard<std::mutex> lock(mu_);
  retrievals_++;
  if (found == 0) retrieval_empty_++;
  retrieval_passages_ += uint64_t(sent);
  retrieval_dropped_ += uint64_t(found - sent);
  retrieval_latency_.observe(latency_s);
}

void Metrics::retrieval_error() {
  std::lock_guard<std::mutex> lock(mu_);
  retrieval_errors_++;
}

std::string Metrics::render(int queue_depth, int active, uint64_t scheduler_steps, size_t rss_bytes) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string o;
  o += "# HELP lathe_requests_total HTTP requests by route and status.\n# TYPE lathe_requests_total counter\n";
  for (auto& [k, n] : requests_)
    o += fmt::format("lathe_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", k.first, k.second, n);
  o += "# HELP lathe_prompt_tokens_total Prompt tokens processed.\n# TYPE lathe_prompt_tokens_total counter\n";
  o += fmt::format("lathe_prompt_tokens_total {}\n", prompt_tokens_);
  o += "# HELP lathe_completion_tokens_total Tokens generated.\n# TYPE lathe_completion_tokens_total counter\n";
  o += fmt::format("lathe_completion_tokens_total {}\n", completion_tokens_);
  o += "# HELP lathe_request_duration_seconds Request latency by route.\n# TYPE lathe_request_duration_seconds histogram\n";
  for (auto& [route, h] : latency_) h.render(fmt::format("lathe_request_duration_seconds{{route=\"{}\"}}", route), &o);
  o += "# HELP lathe_time_to_first_token_seconds From arrival to the first generated token.\n"
       "# TYPE lathe_time_to_first_token_seconds histogram\n";
  ttft_.render("lathe_time_to_first_token_seconds", &o);
  o += "# HELP lathe_retrieval_requests_total Chat completions that searched the index (lathe serve --index).\n"
       "# TYPE lathe_retrieval_requests_total counter\n";
  o += fmt::format("lathe_retrieval_requests_total {}\n", retrievals_);
  o += "# HELP lathe_retrieval_empty_total Searches that found no passage.\n# TYPE lathe_retrieval_empty_total counter\n";
  o += fmt::format("lathe_retrieval_empty_total {}\n", retrieval_empty_);
  o += "# HELP lathe_retrieval_errors_total Searches that failed (the request got a 500).\n"
       "# TYPE lathe_retrieval_errors_total counter\n";
  o += fmt::format("lathe_retrieval_errors_total {}\n", retrieval_errors_);
  o += "# HELP lathe_retrieval_passages_total Retrieved passages put into prompts.\n"
       "# TYPE lathe_retrieval_passages_total counter\n";
  o += fmt::format("lathe_retrieval_passages_total {}\n", retrieval_passages_);
  o += "# HELP lathe_retrieval_passages_dropped_total Retrieved passages left out because the prompt would not fit the context.\n"
       "# TYPE lathe_retrieval_passages_dropped_total counter\n";
  o += fmt::format("lathe_retrieval_passages_dropped_total {}\n", retrieval_dropped_);
  o += "# HELP lathe_retrieval_duration_seconds Index search latency per chat completion.\n"
       "# TYPE lathe_retrieval_duration_seconds histogram\n";
  retrieval_latency_.render("lathe_retrieval_duration_seconds", &o);
  o += "# HELP lathe_queue_depth Requests waiting for a generation slot.\n# TYPE lathe_queue_depth gauge\n";
  o += fmt::format("lathe_queue_depth {}\n", queue_depth);
  o += "# HELP lathe_active_requests Requests generating now.\n# TYPE lathe_active_requests gauge\n";
  o += fmt::format("lathe_active_requests {}\n", active);
  o += "# HELP lathe_scheduler_steps_total Prefill chunks and decode steps run.\n# TYPE lathe_scheduler_steps_total counter\n";
  o += fmt::format("lathe_scheduler_steps_total {}\n", scheduler_steps);
  o += "# HELP lathe_resident_memory_bytes Resident set size of the server.\n# TYPE lathe_resident_memory_bytes gauge\n";
  o += fmt::format("lathe_resident_memory_bytes {}\n", rss_bytes);
  return o;
}

}  // namespace lathe::serve
