// Per-phase wall time of a training step (LATHE_PROFILE=1 or `lathe train --profile`): where a
// step's time goes, printed at the end of `lathe train` and by bench/train_bench.sh (PROFILE=1).
//
// A PhaseScope charges the wall time from its construction to its destruction to its phase,
// exclusively: a scope opened inside another pauses the outer phase, so the phases of a step add
// up to the step's wall time (what no scope covers is "other"). A scope opened inside a
// Recompute scope does not switch, so a checkpointed block's whole recompute counts as recompute.
// Timers sit around whole kernels (a GEMM, a norm over all rows), never inside their loops: a
// step opens about a thousand scopes, two steady_clock reads each (vDSO, no syscall). When
// profiling is off a scope is one branch on a flag. The state is per thread: scopes are opened by
// the thread that drives the step, outside the kernels' OpenMP regions.
#pragma once
#include <chrono>
#include <string>

namespace lathe::prof {

enum class Phase : int {
  Other,
  BaseFwd,    // the base weight's products in forward (x W^T)
  BaseBwd,    // the base weight's products in backward (dX = dY W; + dW when it trains)
  Lora,       // adapter products (LoRA's rank-r GEMMs, DoRA, IA³ scaling), forward and backward
  AttnFwd,    // attention forward (scores, softmax, P V)
  AttnBwd,    // attention backward (without the recompute of the probabilities)
  NormAct,    // RMSNorm, SwiGLU/GeGLU, RoPE, residual adds, forward and backward
  Recompute,  // what backward recomputes instead of keeping (norm outputs, SwiGLU, probabilities, checkpointed blocks)
  Head,       // final norm, lm_head products and cross-entropy
  Optimizer,  // gradient norm/clip, finiteness check, AdamW
  kCount
};

extern bool g_enabled;
inline bool enabled() { return g_enabled; }
void set_enabled(bool on);

using Clock = std::chrono::steady_clock;
void switch_to(Phase p, Phase* prev);  // charges the elapsed time to the current phase
void switch_back(Phase prev);

class PhaseScope {
 public:
  explicit PhaseScope(Phase p) {
    if (g_enabled) switch_to(p, &prev_);
  }
  ~PhaseScope() {
    if (prev_ != Phase::kCount) switch_back(prev_);
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase prev_ = Phase::kCount;  // kCount: this scope did not switch
};

// f() as phase p.
template <class F>
inline void timed(Phase p, F&& f) {
  PhaseScope s(p);
  f();
}

// Brackets one optimizer step; the step's phases are kept for report().
void step_begin();
void step_end();
// The per-step table (mean of the steps after the first, which warms up; the only step if one),
// one line per phase with ms/step and its share; empty when no step was recorded.
std::string report();

}  // namespace lathe::prof
