// Learning-rate schedules, as Hugging Face transformers' get_scheduler builds them (a LambdaLR whose
// multiplier is evaluated at the number of optimizer steps already taken, so the first update uses
// step 0: with warmup that is lr 0, as in HF).
//   constant              1                                   (ignores warmup, as HF does)
//   constant_with_warmup  s<w ? s/w : 1
//   linear                s<w ? s/w : max(0, (T-s)/(T-w))
//   cosine                s<w ? s/w : max(0, 0.5*(1 + cos(pi * 2 * 0.5 * (s-w)/(T-w))))
// Divisions use max(1, ·) like HF, and everything is f64 (Python floats).
#pragma once
#include <string>
#include <vector>

namespace lathe {

// The names accepted by lr_at, in the order they are listed in messages.
const std::vector<std::string>& lr_schedule_types();
// Throws "[schedule] unknown lr_scheduler_type 'x' (valid: constant, ...)" for an unknown name.
void validate_lr_schedule_type(const std::string& type);

// The learning rate for 0-based optimizer step `step`. Throws for an unknown type, or when a
// decaying schedule (linear, cosine) gets max_steps <= 0.
double lr_at(const std::string& type, double base_lr, int step, int warmup_steps, int max_steps);

// HF TrainingArguments.get_warmup_steps: an explicit warmup_steps > 0 wins, otherwise
// ceil(max_steps * warmup_ratio) computed in f64 (so 0.1 * 30 gives 4, exactly as HF does).
int resolve_warmup_steps(int warmup_steps, double warmup_ratio, int max_steps);

}  // namespace lathe
