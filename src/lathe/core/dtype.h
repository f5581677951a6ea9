// Element types of stored tensors. Arithmetic is always f32 (REFERENCE.md §6: no bf16 FMA on the
// build CPUs); the compact types exist for storage and are converted before the FMA.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

namespace lathe {

// Q8_0/Q4_0 (blocks of 32) and Q4_K/Q6_K (super-blocks of 256) are ggml's block layouts
// (kernels/cpu/qblock.h, core/kquant_blocks.h).
enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, Q8_0, Q4_0, NF4, Q4_K, Q6_K };

// Bytes per element for plain types; 0 for block-quantized types (use dtype_row_bytes).
size_t dtype_size(DType t);
// Bytes taken by n consecutive elements (block types need n to be a multiple of the block size).
size_t dtype_bytes(DType t, int64_t n);
std::string_view dtype_name(DType t);
// Parses the safetensors spelling ("F32", "BF16", ...); returns false when unknown.
bool dtype_from_name(std::string_view name, DType* out);

// A T stored at an unaligned address in a file's bytes. The formats (safetensors, GGUF) are
// little-endian, as are the CPUs lathe builds for.
template <class T>
inline T load_le(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// IEEE half <-> float. Handles subnormals, inf and NaN exactly.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// bfloat16 is the top half of a float; rounding to nearest even on the way down.
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // keep NaN a NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// Converts n elements of a plain float type (F32/F16/BF16) to f32.
void convert_to_f32(DType t, const void* src, float* dst, int64_t n);

}  // namespace lathe
