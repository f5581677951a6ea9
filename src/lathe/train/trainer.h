// The training loop behind `lathe train`: LoRA, QLoRA, IA3, prompt/P-tuning, prefix tuning or full fine-tuning of an
// HF/GGUF model on pre-tokenized data, with Hugging Face semantics (loss averaged over every
// label token of the optimizer step, AdamW, HF schedules, clipping), checkpoints that resume
// bitwise-identically, metrics.jsonl, a memory plan before step 1, and a stop on NaN/Inf.
#pragma once
#include "lathe/train/train_options.h"

namespace lathe {

// Exit codes: 0 done, 3 stopped on a non-finite loss or gradient (last good checkpoint kept).
int run_training(const TrainOptions& opt);

}  // namespace lathe
