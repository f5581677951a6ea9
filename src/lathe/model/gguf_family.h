// What each model family looks like in a llama.cpp GGUF beyond the keys every architecture shares:
// the architecture name, whether q/k rows are permuted for interleaved (NORM) RoPE, Gemma's norms
// stored as (1 + w), the family's metadata keys (soft-caps, sliding window and its layer pattern,
// the sliding layers' RoPE base, partial rotary, longrope) and the extra tensors llama.cpp reads
// (rope_freqs for Llama 3 scaling, rope_factors_long/short for Phi-3's longrope).
//
// Convention: a GGUF means what llama.cpp (the build in npm node-llama-cpp@3.21.1) computes from it,
// so the reader derives what a file does not say the way llama.cpp does (Gemma's attention scale
// from head_dim, SmolLM3's no-RoPE layers every 4th, the Gemma 3 sliding period 6). Where a lathe
// model has a feature llama.cpp cannot express, the writer adds a key under "lathe." that llama.cpp
// ignores and lathe reads back, and gguf_llamacpp_notes says what llama.cpp will do differently.
#pragma once
#include <string>
#include <vector>

#include "lathe/formats/gguf.h"
#include "lathe/formats/gguf_write.h"
#include "lathe/model/config.h"

namespace lathe {

// The GGUF general.architecture of a family ("llama" for Llama and Mistral). Throws naming what
// llama.cpp's loader for that architecture cannot hold (qwen2/phi3 with heads x head_dim != hidden,
// Llama 3 RoPE scaling on an architecture whose loader has no rope_freqs tensor).
std::string gguf_arch_name(const ModelConfig& c);
// The family of a GGUF architecture name; false when lathe does not know it.
bool gguf_arch_from_name(const std::string& name, Arch* out);
// Whether the q/k rows (and biases) are stored permuted for interleaved RoPE (llama.cpp's
// LLAMA_ROPE_TYPE_NORM: llama, smollm3); NEOX-style families keep the HF row order.
bool gguf_rope_permuted(const ModelConfig& c);
// What the GGUF adds to every RMSNorm weight: 1 for Gemma (llama.cpp's converter stores 1 + w).
float gguf_norm_shift(const ModelConfig& c);

// The family keys and extra tensors (after the keys every architecture shares). The extra tensors
// are owned by the writer's references.
void gguf_write_family(const ModelConfig& c, const std::string& arch, GgufWriter& w);
// Reads the family keys and extra tensors into `c` (arch, sizes, rope_theta, rope.scaling.linear
// already set). Throws "[model] path: ..." naming the key or tensor that is missing or odd.
void gguf_read_family(ModelConfig& c, const GgufFile& g, const std::string& arch, const std::string& path);

// Families other than phi3 rotate every channel: rope.dimension_count, when given, must equal
// head_dim. Called once the tensors are read, so a wrongly sized file reports its shapes first.
void gguf_check_rope_dimensions(const ModelConfig& c, const GgufFile& g, const std::string& arch,
                                const std::string& path);

// One line per way llama.cpp will compute differently from lathe on this model's GGUF (empty when
// they agree), for `lathe export` to print.
std::vector<std::string> gguf_llamacpp_notes(const ModelConfig& c);

}  // namespace lathe
