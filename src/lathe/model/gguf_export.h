// Writing a Model as a llama.cpp-style GGUF (REFERENCE.md §2.5): the architecture keys llama.cpp
// and Model::load_gguf read, every tensor under its GGUF name (for_each_tensor's table), q/k rows of
// NORM-RoPE architectures (llama, smollm3) permuted to interleaved order and Gemma's norms stored
// as 1 + w, as convert_hf_to_gguf.py does; the family keys and RoPE tensors come from gguf_family.
// Tokenizer metadata is added by the caller (tokenizer layer), since model does not know tokenizers.
#pragma once
#include <string>

#include "lathe/formats/gguf_write.h"
#include "lathe/model/gguf_family.h"  // gguf_arch_name, gguf_rope_permuted
#include "lathe/model/model.h"

namespace lathe {

// "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_k" | "q6_k" -> the ggml type of the matrices;
// throws naming the bad value.
GgmlType parse_gguf_type(const std::string& s);
// The general.* keys every lathe GGUF starts with: architecture, general.type ("model" or
// "adapter"), name (when given), file_type and quantization_version for `type`. Returns the
// architecture name.
std::string add_gguf_general(const ModelConfig& c, GgmlType type, const char* general_type, const std::string& name,
                             GgufWriter& w);

// Adds general.* and <arch>.* keys and all weights to `w`. Matrices are stored as
// quantized_weight_dtype (model.h) gives them for `type` (F16 where rows are not a multiple of 32;
// Q8_0 for K-quants whose rows are not a multiple of 256; the output side Q8_0 or Q6_K), exactly the
// bytes quantize_model_weights holds in memory, so `--weights TYPE` on the source computes what the
// file computes; norms and biases stay F32. Weights held quantized (a model loaded with --weights) are
// written as they are when the type matches, else dequantized and re-encoded. Permuted copies are
// owned by the writer's tensor references.
void add_model_to_gguf(const Model& m, GgmlType type, const std::string& name, GgufWriter& w);

}  // namespace lathe
