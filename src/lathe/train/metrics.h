// metrics.jsonl (one JSON object per line, each line flushed as written, so `tail -f` and a crash
// both see whole rows) and the console progress display.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace lathe {

class MetricsWriter {
 public:
  // resume_step < 0: a fresh run, the file is truncated. resume_step >= 0: rows whose "step" is
  // greater than resume_step are dropped (they were logged after the checkpoint being resumed), as is
  // a torn last line; the rest is kept and new rows are appended. Rows without "step" are kept.
  // So a resumed run's file equals an uninterrupted run's, except for timing fields.
  MetricsWriter(const std::string& path, int64_t resume_step = -1);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(const nlohmann::json& row);  // one line, flushed; throws "[metrics] PATH: ..." on I/O error
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  FILE* f_ = nullptr;
};

// "1h02m03s", "4m05s", "12s"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);

// Prints training progress to `out` (stderr by default). On a terminal: one line redrawn in place
//   [#######.......]  70/100  loss 1.2345  lr 2.00e-04  1.2k tok/s  ETA 1m05s
// otherwise (logs, CI): a plain line every `logging_steps` steps and at the last step.
class ProgressReporter {
 public:
  // tty: -1 = detect with isatty, 0/1 = force (tests). start_step: the step a resumed run starts
  // from, so the ETA uses only the steps this process ran.
  ProgressReporter(int64_t total_steps, int logging_steps, int64_t start_step = 0, FILE* out = stderr,
                   int tty = -1);
  // Call after each optimizer step (1-based `step` = steps completed).
  void update(int64_t step, double loss, double lr, double tokens_per_s);
  // A line of text (eval results, checkpoint saved) that must not be overwritten by the bar.
  void message(const std::string& text);
  void finish();  // ends the bar's line
  // The text of one progress line (no bar), exposed for tests.
  std::string line(int64_t step, double loss, double lr, double tokens_per_s) const;

 private:
  int64_t total_, start_;
  int logging_steps_;
  FILE* out_;
  bool tty_;
  bool bar_open_ = false;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace lathe
