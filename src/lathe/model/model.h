// A loaded model: config + f32 weights (zero-copy views into a mapped f32 safetensors file, or
// one converted copy for f16/bf16/quantized sources), plus where it came from.
#pragma once
#include <string>

#include "lathe/model/config.h"
#include "lathe/model/linear.h"
#include "lathe/model/weights.h"

namespace lathe {

struct LoadedTensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  std::string stored_dtype;  // as in the file
};

struct Model {
  ModelConfig config;
  ModelWeights weights;
  std::string source;                         // path it was loaded from
  std::string format;                         // "hf" or "gguf"
  std::vector<LoadedTensorInfo> stored;       // tensors as stored in the source, in visit order
  size_t weight_bytes_f32 = 0;                // bytes of the f32 weights held (tied counted once)

  // PATH is an HF model directory (config.json + model.safetensors or sharded index) or a .gguf file.
  static Model load(const std::string& path);
  static Model load_hf_dir(const std::string& dir);
  static Model load_gguf(const std::string& path);
  // Random init with a fixed seed: matrices N(0, std) with std = HF's initializer_range (0.02 by
  // default), norms 1, biases 0.
  static Model init_random(const ModelConfig& cfg, uint64_t seed, float std = 0.02f);
  // Writes config.json + model.safetensors (F32) atomically into `dir` (created if needed).
  void save_hf_dir(const std::string& dir) const;
};

// The Linear `id` of block `l`: weight, bias (Qwen2 q/k/v), and — when `grads` mirrors the weights
// (full fine-tuning) — where their gradients go. Adapters are attached by the caller.
LinearRef block_linear(const Model& m, int l, LinearId id, LayerWeights* grads = nullptr);

// Copies tokenizer / generation files (tokenizer.json, tokenizer_config.json, generation_config.json,
// ...) from an HF model directory to `to`, so exported and fine-tuned models keep their chat
// template and EOS. A .gguf or missing source copies nothing.
void copy_tokenizer_files(const std::string& from, const std::string& to);

// Replaces views into read-only mappings with owned heap copies (full fine-tuning updates weights).
void make_weights_owned(Model& m);

// QLoRA: replaces every Linear weight of the decoder blocks by its NF4 form (block 64, double
// quantization); embeddings, norms and lm_head stay f32.
void quantize_model_nf4(Model& m);
// The same matrices quantized to NF4 and back to f32: the base a QLoRA adapter saw, for merging.
void roundtrip_model_nf4(Model& m);

}  // namespace lathe
