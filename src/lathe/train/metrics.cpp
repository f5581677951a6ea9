#include "lathe/train/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"

using nlohmann::json;

namespace lathe {

MetricsWriter::MetricsWriter(const std::string& path, int64_t resume_step) : path_(path) {
  if (resume_step >= 0 && file_exists(path)) {
    std::string kept;
    JsonlReader in(path, "metrics");
    std::string line;
    while (in.next_line(line)) {
      json row;
      if (!try_parse_json_bounded(line, row)) continue;  // a line torn by a crash mid-write
      if (row.is_object() && row.contains("step") && row["step"].is_number() &&
          row["step"].get<double>() > double(resume_step))
        continue;
      kept += line + "\n";
    }
    write_file_atomic(path, kept);
    f_ = std::fopen(path.c_str(), "ab");
  } else {
    f_ = std::fopen(path.c_str(), "wb");
  }
  if (!f_) fail("metrics", "{}: cannot open for writing: {}", path, std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::write(const json& row) {
  std::string s = row.dump() + "\n";
  if (std::fwrite(s.data(), 1, s.size(), f_) != s.size() || std::fflush(f_) != 0)
    fail("metrics", "{}: write failed: {}", path_, std::strerror(errno));
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = int64_t(seconds + 0.5);
  int64_t h = s / 3600, m = (s / 60) % 60;
  s %= 60;
  if (h > 0) return fmt::format("{}h{:02}m{:02}s", h, m, s);
  if (m > 0) return fmt::format("{}m{:02}s", m, s);
  return fmt::format("{}s", s);
}

namespace {

std::string human_rate(double x) {
  if (!std::isfinite(x) || x < 0) return "?";
  if (x >= 1e6) return fmt::format("{:.1f}M", x / 1e6);
  if (x >= 1e4) return fmt::format("{:.1f}k", x / 1e3);
  return fmt::format("{:.0f}", x);
}

}  // namespace

ProgressReporter::ProgressReporter(int64_t total_steps, int logging_steps, int64_t start_step, FILE* out, int tty)
    : total_(total_steps),
      start_(start_step),
      logging_steps_(logging_steps < 1 ? 1 : logging_steps),
      out_(out),
      tty_(tty < 0 ? ::isatty(::fileno(out)) != 0 : tty != 0),
      t0_(std::chrono::steady_clock::now()) {}

std::string ProgressReporter::line(int64_t step, double loss, double lr, double tokens_per_s) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const int64_t done = step - start_;
  const double eta = done > 0 ? elapsed / double(done) * double(total_ - step) : -1.0;
  return fmt::format("step {}/{}  loss {:.4f}  lr {:.2e}  {} tok/s  ETA {}", step, total_, loss, lr,
                     human_rate(tokens_per_s), format_duration(eta));
}

void ProgressReporter::update(int64_t step, double loss, double lr, double tokens_per_s) {
  if (tty_) {
    constexpr int kWidth = 24;
    const double frac = total_ > 0 ? std::min(1.0, double(step) / double(total_)) : 0.0;
    const int filled = int(frac * kWidth);
    const std::string bar = fmt::format("[{}{}] ", std::string(size_t(filled), '#'), std::string(size_t(kWidth - filled), '.'));
    // \r + clear-to-end-of-line redraws in place without leftovers from a longer previous line.
    std::fprintf(out_, "\r%s%s\x1b[K", bar.c_str(), line(step, loss, lr, tokens_per_s).c_str());
    bar_open_ = true;
    if (step >= total_) finish();
  } else if (step % logging_steps_ == 0 || step == total_) {
    std::fprintf(out_, "%s\n", line(step, loss, lr, tokens_per_s).c_str());
  }
  std::fflush(out_);
}

void ProgressReporter::message(const std::string& text) {
  if (bar_open_) std::fprintf(out_, "\r\x1b[K");
  std::fprintf(out_, "%s\n", text.c_str());
  bar_open_ = false;  // the next update redraws the bar below the message
  std::fflush(out_);
}

void ProgressReporter::finish() {
  if (bar_open_) std::fprintf(out_, "\n");
  bar_open_ = false;
  std::fflush(out_);
}

}  // namespace lathe
