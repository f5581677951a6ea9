#include "lathe/train/model_prep.h"

#include <cstdio>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/core/sys.h"

namespace lathe {

void prepare_model_for_method(Model& m, const std::string& method) {
  if (method == "full") {
    make_weights_owned(m);
  }
  // qlora: quantized to NF4 once the adapter exists (trainer.cpp setup_method), as LoftQ computes its
  // base from the f32 weights.
}

void mark_adapter_qlora(const std::string& dir) {
  std::string path = dir + "/adapter_config.json";
  nlohmann::json j = read_json_file_bounded(path, "train");
  // Not a PEFT key (PEFT ignores unknown keys); tells `lathe export --format merged` to merge onto
  // the NF4-dequantized base, as the adapter saw it during training.
  j["lathe_base_quantization"] = "nf4";
  write_file_atomic(path, j.dump(2) + "\n");
}

MemoryPlan plan_memory(const Model& m, size_t trainable, bool full_ft, size_t activations) {
  MemoryPlan p;
  p.weights = m.weight_bytes_f32;
  p.trainable = full_ft ? 0 : trainable;  // full FT updates the weights in place
  p.gradients = trainable;
  p.optimizer = 2 * trainable;  // AdamW m and v
  p.activations = activations;
  p.total = p.weights + p.trainable + p.gradients + p.optimizer + p.activations;
  p.available = available_ram_bytes();
  return p;
}

void print_memory_plan(const MemoryPlan& p, const TrainOptions& o, int N, int T) {
  auto mib = [](size_t b) { return double(b) / 1048576.0; };
  std::fprintf(stderr,
               "lathe train: memory plan (method %s, micro-batch %d x %d tokens, gradient_checkpointing %s)\n"
               "  base weights      %9.1f MiB\n  trainable params  %9.1f MiB\n  gradients         %9.1f MiB\n"
               "  optimizer (AdamW) %9.1f MiB\n  activations       %9.1f MiB%s\n  total             %9.1f MiB   "
               "(available: %.1f MiB)\n",
               o.method.c_str(), o.per_device_train_batch_size, T, o.gradient_checkpointing ? "on" : "off",
               mib(p.weights), mib(p.trainable), mib(p.gradients), mib(p.optimizer), mib(p.activations),
               p.keeps_recomputed ? "   (normalised inputs, SwiGLU and attention probabilities kept for backward)"
               : o.gradient_checkpointing ? "" : "   (normalised inputs, SwiGLU and attention probabilities recomputed)",
               mib(p.total), mib(p.available));
  (void)N;
}

void check_memory_plan(const MemoryPlan& p, const TrainOptions& o) {
  if (p.available == 0 || p.total <= p.available * 9 / 10) return;
  std::string hint;
  if (!o.gradient_checkpointing) hint += "turn on gradient_checkpointing; ";
  if (o.per_device_train_batch_size > 1) hint += "lower per_device_train_batch_size (raise gradient_accumulation_steps); ";
  hint += "lower max_seq_length";
  if (o.method == "lora" || o.method == "full") hint += "; use method qlora (4-bit base)";
  fail("train", "the run needs about {:.0f} MiB but only {:.0f} MiB is available: {}", p.total / 1048576.0,
       p.available / 1048576.0, hint);
}

}  // namespace lathe
