#include "lathe/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "lathe/core/error.h"

namespace lathe {

const std::vector<std::string>& lr_schedule_types() {
  static const std::vector<std::string> types = {"constant", "constant_with_warmup", "linear", "cosine"};
  return types;
}

void validate_lr_schedule_type(const std::string& type) {
  const auto& types = lr_schedule_types();
  if (std::find(types.begin(), types.end(), type) != types.end()) return;
  std::string valid;
  for (const auto& t : types) valid += (valid.empty() ? "" : ", ") + t;
  fail("schedule", "unknown lr_scheduler_type '{}' (valid: {})", type, valid);
}

double lr_at(const std::string& type, double base_lr, int step, int warmup_steps, int max_steps) {
  const double s = step, w = warmup_steps, T = max_steps;
  if (type == "constant") return base_lr;
  if (type == "constant_with_warmup") {
    if (step < warmup_steps) return base_lr * (s / std::max(1.0, w));
    return base_lr;
  }
  if (type == "linear" || type == "cosine") {
    if (max_steps <= 0) fail("schedule", "lr_scheduler_type '{}' needs max_steps > 0 (got {})", type, max_steps);
    if (step < warmup_steps) return base_lr * (s / std::max(1.0, w));
    if (type == "linear") return base_lr * std::max(0.0, (T - s) / std::max(1.0, T - w));
    const double progress = (s - w) / std::max(1.0, T - w);
    const double num_cycles = 0.5;  // HF's default: half a cosine wave, from 1 down to 0
    return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * num_cycles * 2.0 * progress)));
  }
  validate_lr_schedule_type(type);  // throws with the list of valid names
  return base_lr;
}

int resolve_warmup_steps(int warmup_steps, double warmup_ratio, int max_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return int(std::ceil(double(max_steps) * warmup_ratio));
}

}  // namespace lathe
