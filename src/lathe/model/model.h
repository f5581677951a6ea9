// A loaded model: config + f32 weights (zero-copy views into a mapped f32 safetensors file, or
// one converted copy for f16/bf16/quantized sources), plus where it came from.
#pragma once
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
//   Auto  a GGUF's Q8_0/Q4_0 tensors stay quantized as stored (no f32 copy); everything else is f32
//   F32   every tensor f32 (quantized GGUF tensors dequantized): what training and export load
//   Q8_0, Q4_0  the Auto load, then every f32 Linear weight quantized with the reference quantizers
//         (quantize_model_weights): quantize on load for an HF directory.
enum class WeightFormat { Auto, F32, Q8_0, Q4_0 };
// "auto" | "f32" | "q8_0" | "q4_0"; anything else is an error naming `what` (the option).
WeightFormat parse_weight_format(const std::string& s, const char* what = "--weights");
const char* weight_format_name(WeightFormat f);
// The --weights option as generate, perplexity, eval and serve declare it (one wording, one list).
inline constexpr const char* kWeightsOptionHelp =
    "Weights in memory: auto (a GGUF's Q8_0/Q4_0 stay quantized, else f32), f32, or q8_0/q4_0 (Linear weights "
    "quantized on load; lm_head Q8_0)";
inline std::vector<std::string> weight_format_choices() { return {"auto", "f32", "q8_0", "q4_0"}; }

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
// quantization); embeddings, norms and lm_head stay f32.
void quantize_model_nf4(Model& m);
// The same matrices quantized to NF4 and back to f32: the base a QLoRA adapter saw, for merging.
void roundtrip_model_nf4(Model& m);

// Inference with block-quantized weights (docs/quant.md "In the model"). Every f32 Linear weight of
// the blocks whose input size is a multiple of 32 becomes `type` (DType::Q8_0 or Q4_0), by the
// reference quantizers (kernels/cpu/qblock.h), row by row; other sizes are rounded to f16 (held as
// f32), as the GGUF writer stores them. The output side
// is 8-bit whatever `type` is, as llama.cpp keeps it at 6 bits or more: lm_head and the embedding
// table become Q8_0 (tied: one tensor, the lm_head multiplies the table's blocks; embed_rows
// dequantizes the rows it looks up), so the model computes exactly what the GGUF that `lathe
// quantize` writes computes (token_embd and output stored as Q8_0). An lm_head that is already
// Q8_0/Q4_0 (a quantized GGUF) means the file decided: lm_head and embedding are left as loaded. Weights already of `type` are
// kept; weights of the other block type are an error (dequantize first).
void quantize_model_weights(Model& m, DType type);
// A [N, K] f32 tensor (K % 32 == 0) as Q8_0/Q4_0 blocks (a new heap tensor), and back.
Tensor quantize_tensor_qblock(const Tensor& w, DType type);
Tensor dequantize_tensor_qblock(const Tensor& q);
// The bytes of the weights `m` holds: every stored tensor, plus the lm_head when it is a separate
// copy of tied embeddings.
size_t model_weight_bytes(const Model& m);

}  // namespace lathe
