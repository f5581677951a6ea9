// Getting a loaded model ready for a method, and the memory plan printed before step 1.
#pragma once
#include <string>

#include "lathe/model/model.h"
#include "lathe/train/train_options.h"

namespace lathe {

// full: owned f32 copies of every weight (they will be updated). qlora, lora, prefix: the base as
// loaded (qlora's NF4 quantization comes with the adapter's setup: LoftQ needs the f32 weights).
void prepare_model_for_method(Model& m, const std::string& method);
// Records in adapter_config.json that the base was NF4-quantized (so a merge uses the same base).
void mark_adapter_qlora(const std::string& adapter_dir);

struct MemoryPlan {
  size_t weights = 0, trainable = 0, gradients = 0, optimizer = 0, activations = 0, total = 0, available = 0;
  bool keeps_recomputed = false;  // activations include what backward would otherwise recompute
};
MemoryPlan plan_memory(const Model& m, size_t trainable_bytes, bool full_ft, size_t activation_bytes);
void print_memory_plan(const MemoryPlan& p, const TrainOptions& o, int tokens_per_micro_batch, int max_len);
// Throws "[train] the run needs ... but ... is available: ..." with what to change.
void check_memory_plan(const MemoryPlan& p, const TrainOptions& o);

}  // namespace lathe
