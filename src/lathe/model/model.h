// A loaded model: config + f32 weights (zero-copy views into a mapped f32 safetensors file, or
// one converted copy for f16/bf16/quantized sources), plus where it came from.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lathe/model/config.h"
#include "lathe/model/linear.h"
#include "lathe/model/weights.h"

namespace lathe {

struct LoadedTensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  std::string stored_dtype;  // as in the file
};

// What `--weights` asks of the loader (generate, eval, serve, perplexity):
//   Auto  a GGUF's Q8_0/Q4_0/Q4_K/Q6_K/F16/BF16 matrices stay as stored (no f32 copy); the rest f32
//   F32   every tensor f32 (quantized GGUF tensors dequantized): what training and export load
//   Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16  the Auto load, then every f32 matrix converted with the
//         reference quantizers (quantize_model_weights): quantize on load for an HF directory.
enum class WeightFormat { Auto, F32, Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16 };
// "auto" | "f32" | "q8_0" | "q4_0" | "q4_k" | "q6_k" | "f16" | "bf16"; anything else is an error
// naming `what` (the option).
WeightFormat parse_weight_format(const std::string& s, const char* what = "--weights");
const char* weight_format_name(WeightFormat f);
// The dtype a quantizing format converts to (Q8_0 ... BF16); F32 for Auto and F32.
DType weight_format_dtype(WeightFormat f);
// The --weights option as generate, perplexity, eval and serve declare it (one wording, one list).
inline constexpr const char* kWeightsOptionHelp =
    "Weights in memory: auto (a GGUF's quantized/F16/BF16 matrices stay as stored, else f32), f32, or "
    "q8_0/q4_0/q4_k/q6_k/f16/bf16 (matrices converted on load; docs/quant.md says which type each gets)";
inline std::vector<std::string> weight_format_choices() {
  return {"auto", "f32", "q8_0", "q4_0", "q4_k", "q6_k", "f16", "bf16"};
}

struct Model {
  ModelConfig config;
  ModelWeights weights;
  std::string source;                         // path it was loaded from
  std::string format;                         // "hf" or "gguf"
  std::vector<LoadedTensorInfo> stored;       // tensors as stored in the source, in visit order
  size_t weight_bytes_f32 = 0;                // bytes of the weights held, whatever their dtype (tied counted once)

  // PATH is an HF model directory (config.json + model.safetensors or sharded index) or a .gguf file.
  // The default, F32, is what training and export need; inference commands pass their --weights.
  static Model load(const std::string& path, WeightFormat weights = WeightFormat::F32);
  static Model load_hf_dir(const std::string& dir, WeightFormat weights = WeightFormat::F32);
  static Model load_gguf(const std::string& path, WeightFormat weights = WeightFormat::F32);
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
// quantization); embeddings, norms and lm_head stay f32. Weights already NF4 (LoftQ's base, set by
// LoraAdapter::init_loftq) are kept.
void quantize_model_nf4(Model& m);
// Every NF4 weight back to f32 (its dequantized values): the base a QLoRA adapter saw, for merging.
void dequantize_model_nf4(Model& m);
struct Nf4Tensor;
// *w = the NF4 tensor q (shape kept); a view into a read-only mapping gives its pages back.
void set_nf4_weight(Tensor* w, std::shared_ptr<Nf4Tensor> q);
// The same matrices quantized to NF4 and back to f32: the base a QLoRA adapter saw, for merging.
void roundtrip_model_nf4(Model& m);

// Inference with quantized (or F16/BF16) weights (docs/quant.md "In the model"). Every f32 matrix
// becomes the dtype quantized_weight_dtype gives it, by the reference quantizers
// (kernels/cpu/qblock.h), row by row, so the model computes exactly what the GGUF that `lathe
// quantize` writes computes. Tied embeddings stay one tensor: the lm_head multiplies the table's
// blocks and embed_rows dequantizes the rows it looks up. An lm_head that is already block-quantized
// (a quantized GGUF) means the file decided: lm_head and embedding are left as loaded. Weights
// already of their target dtype are kept; other non-f32 weights are an error (dequantize first).
void quantize_model_weights(Model& m, DType type);
// The dtype a matrix with rows of `row_len` gets when a model is converted to `type` (Q8_0, Q4_0,
// Q4_K, Q6_K, F16, BF16); `output_side` is the lm_head or the embedding table. The one rule memory
// (quantize_model_weights) and the GGUF writer (add_model_to_gguf) share:
//   Q8_0, Q4_0: matrices `type`, output side Q8_0 (llama.cpp keeps the output at 6 bits or more);
//   Q4_K, Q6_K: matrices `type`, output side Q6_K (llama.cpp's output.weight of a K-quant file);
//   a row length the block does not divide falls back: Q4_K/Q6_K to Q8_0 (llama.cpp falls back to
//   Q5_0/Q8_0, lathe has no Q5_0), and anything not a multiple of 32 to F16;
//   F16, BF16: every matrix that type, any row length.
DType quantized_weight_dtype(DType type, bool output_side, int64_t row_len);
// A [N, K] f32 tensor as `type` rows (a new heap tensor; K a multiple of the type's block, else an
// error naming `name`), and back to f32.
Tensor quantize_tensor_qblock(const Tensor& w, DType type, const std::string& name = "");
Tensor dequantize_tensor_qblock(const Tensor& q);
// The bytes of the weights `m` holds: every stored tensor, plus the lm_head when it is a separate
// copy of tied embeddings.
size_t model_weight_bytes(const Model& m);

}  // namespace lathe
