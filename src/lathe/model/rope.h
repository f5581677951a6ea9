// RoPE tables: the inverse frequencies of a model (HF's scaling rules: linear, llama3, Phi-3's
// longrope; Gemma 3's separate base for sliding layers; partial rotary), computed once per driver,
// and the cos/sin rows of each position.
#pragma once
#include <vector>

#include "lathe/model/config.h"

namespace lathe {

struct RopeFreqs {
  std::vector<float> inv_freq;        // [R/2], R = rotary_dim(): global layers (longrope: short factors)
  std::vector<float> inv_freq_long;   // longrope: for sequences that run past long_from positions
  std::vector<float> inv_freq_local;  // Gemma 3: sliding layers (rope_local_theta, unscaled)
  float mscale = 1.0f;                // longrope: cos/sin are multiplied by the attention factor
  int long_from = 0;                  // longrope: original_max_position_embeddings
  static RopeFreqs of(const ModelConfig& c);
};

// The global layers' inverse frequencies (longrope: the short factors).
std::vector<float> rope_inv_freq(const ModelConfig& c);
// cos/sin [T, R/2] for positions pos0 .. pos0+T-1, times mscale.
void rope_fill(const std::vector<float>& inv_freq, int pos0, int T, float* cos, float* sin, float mscale = 1.0f);

}  // namespace lathe
