#include "lathe/core/phase_prof.h"

#include <array>
#include <cstdio>
#include <vector>

namespace lathe::prof {

bool g_enabled = false;

namespace {

constexpr int kN = int(Phase::kCount);
using Times = std::array<double, kN>;  // seconds per phase

struct State {
  Phase cur = Phase::Other;
  Clock::time_point mark{};
  Times step{};
  bool in_step = false;
  std::vector<Times> steps;
};
thread_local State st;

const char* kNames[kN] = {"other",          "base GEMM fwd", "base GEMM bwd", "LoRA/adapter", "attention fwd",
                          "attention bwd",  "norm/act/rope", "recompute",     "loss/lm_head", "optimizer"};

void charge(Clock::time_point now) {
  if (st.in_step) st.step[int(st.cur)] += std::chrono::duration<double>(now - st.mark).count();
  st.mark = now;
}

}  // namespace

void set_enabled(bool on) { g_enabled = on; }

void switch_to(Phase p, Phase* prev) {
  if (st.cur == Phase::Recompute) return;  // *prev stays kCount: no switch back either
  charge(Clock::now());
  *prev = st.cur;
  st.cur = p;
}

void switch_back(Phase prev) {
  charge(Clock::now());
  st.cur = prev;
}

void step_begin() {
  if (!g_enabled) return;
  st.step = {};
  st.cur = Phase::Other;
  st.in_step = true;
  st.mark = Clock::now();
}

void step_end() {
  if (!g_enabled || !st.in_step) return;
  charge(Clock::now());
  st.in_step = false;
  st.steps.push_back(st.step);
}

std::string report() {
  if (st.steps.empty()) return {};
  const size_t first = st.steps.size() > 1 ? 1 : 0;
  Times mean{};
  for (size_t s = first; s < st.steps.size(); s++)
    for (int p = 0; p < kN; p++) mean[p] += st.steps[s][p] / double(st.steps.size() - first);
  double total = 0;
  for (double v : mean) total += v;
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "step profile: mean of %zu step(s)%s, %.1f ms/step\n", st.steps.size() - first,
                first ? " after the first" : "", 1e3 * total);
  out += line;
  for (int p = 0; p < kN; p++) {
    std::snprintf(line, sizeof line, "  %-14s %9.1f ms %5.1f%%\n", kNames[p], 1e3 * mean[p],
                  total > 0 ? 100.0 * mean[p] / total : 0.0);
    out += line;
  }
  return out;
}

}  // namespace lathe::prof
