#include "lathe/model/rope.h"

#include <cmath>

namespace lathe {

// base ** -(arange(0, R, 2) / R) in float32, as HF computes it.
static std::vector<float> plain_inv_freq(float theta, int R) {
  std::vector<float> inv(size_t(R / 2));
  for (int i = 0; i < R / 2; i++) inv[size_t(i)] = 1.0f / std::pow(theta, float(2 * i) / float(R));
  return inv;
}

// Phi-3 longrope: each frequency's denominator is further multiplied by its factor.
static std::vector<float> longrope_inv_freq(float theta, int R, const std::vector<float>& factors) {
  std::vector<float> inv(size_t(R / 2));
  for (int i = 0; i < R / 2; i++)
    inv[size_t(i)] = 1.0f / (factors[size_t(i)] * std::pow(theta, float(2 * i) / float(R)));
  return inv;
}

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == RopeScaling::LongRope) return longrope_inv_freq(c.rope_theta, c.rotary_dim(), rs.short_factor);
  std::vector<float> inv = plain_inv_freq(c.rope_theta, c.rotary_dim());
  if (rs.type == RopeScaling::Linear) {
    for (float& f : inv) f /= rs.factor;
  } else if (rs.type == RopeScaling::Llama3) {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, a smooth blend between.
    const float orig = float(rs.original_max_position_embeddings);
    const float low_wavelen = orig / rs.low_freq_factor, high_wavelen = orig / rs.high_freq_factor;
    for (float& f : inv) {
      float wavelen = 2.0f * float(M_PI) / f;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else if (wavelen >= high_wavelen) {
        float smooth = (orig / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0f - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  return inv;
}

RopeFreqs RopeFreqs::of(const ModelConfig& c) {
  RopeFreqs f;
  f.inv_freq = rope_inv_freq(c);
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == RopeScaling::LongRope) {
    f.inv_freq_long = longrope_inv_freq(c.rope_theta, c.rotary_dim(), rs.long_factor);
    f.mscale = rs.attention_factor;
    f.long_from = rs.original_max_position_embeddings;
  }
  if (c.rope_local_theta > 0) f.inv_freq_local = plain_inv_freq(c.rope_local_theta, c.rotary_dim());
  return f;
}

void rope_fill(const std::vector<float>& inv_freq, int pos0, int T, float* cos, float* sin, float mscale) {
  const int half = int(inv_freq.size());
  for (int t = 0; t < T; t++)
    for (int i = 0; i < half; i++) {
      float angle = float(pos0 + t) * inv_freq[i];
      cos[size_t(t) * half + i] = float(std::cos(double(angle)));
      sin[size_t(t) * half + i] = float(std::sin(double(angle)));
      if (mscale != 1.0f) cos[size_t(t) * half + i] *= mscale, sin[size_t(t) * half + i] *= mscale;
    }
}

}  // namespace lathe
