// NF4: bitsandbytes' 4-bit NormalFloat storage for frozen QLoRA base weights (REFERENCE.md §2.3).
//
// A weight W [rows, cols] (PyTorch order; a Linear weight is [out, in]) is flattened row-major and
// cut into blocks of `blocksize` elements (blocks may straddle rows, as bitsandbytes quantizes the
// flat tensor; a trailing partial block gets its own absmax). Each element is stored as the index
// of the nearest of 16 code values after dividing by its block's absmax:
//   W[i] ~= kNf4Code[code(i)] * absmax[i / blocksize]
// Codes are packed two per byte, element 2j in the HIGH nibble, 2j+1 in the low one.
//
// Double quantization (bnb_4bit_use_double_quant) stores absmax itself in 8 bits:
//   offset = mean(absmax);  absmax - offset is quantized in blocks of 256 on the 8-bit dynamic map,
//   absmax[b] = map[absmax_q[b]] * absmax_scale[b / 256] + offset.
// Storage per parameter: 4 bits + 32/64 (plain) or 8/64 + 32/(64*256) (double) = 4.127 bits.
//
// Every rule matches bitsandbytes' torch reference kernel bit for bit (tests/kernels/nf4_unit.cpp
// against tools/golden/gen_nf4_goldens.py).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lathe {

// bitsandbytes' NF4 code book, sorted; index = 4-bit code.
extern const float kNf4Code[16];
// bitsandbytes' create_dynamic_map(signed=True): 256 sorted values in [-1, 1].
const float* nf4_dynamic_map();

constexpr int kNf4NestedBlock = 256;  // bitsandbytes fixes the nested (absmax) block size at 256

struct Nf4Tensor {
  int64_t rows = 0, cols = 0;  // [rows, cols], row-major
  int blocksize = 64;
  std::vector<uint8_t> codes;  // [ceil(rows*cols / 2)]; an odd count pads the last low nibble with 7
  bool double_quant = false;
  std::vector<float> absmax;  // [num_blocks()] when !double_quant
  // double_quant only:
  std::vector<uint8_t> absmax_q;     // [num_blocks()] indices into the 8-bit map
  std::vector<float> absmax_scale;   // [ceil(num_blocks() / 256)] absmax of each nested block
  float absmax_offset = 0;           // mean of the original absmax
  std::vector<float> absmax_map;     // empty: nf4_dynamic_map(); else the 256 values a checkpoint stored

  int64_t numel() const { return rows * cols; }
  int64_t num_blocks() const { return (numel() + blocksize - 1) / blocksize; }
};

// Quantizes x [rows, cols]. blocksize: a power of two in 32..4096 (bitsandbytes' 4-bit range);
// anything else throws lathe::Error ("[nf4] ...").
Nf4Tensor nf4_quantize(const float* x, int64_t rows, int64_t cols, int blocksize = 64, bool double_quant = true);

// Throws lathe::Error when the buffers disagree with rows/cols/blocksize (for tensors filled from a file).
void nf4_validate(const Nf4Tensor& w);

// The f32 absmax of blocks [b0, b0 + n) (decoding the nested 8 bits when double-quantized).
void nf4_absmax(const Nf4Tensor& w, int64_t b0, int64_t n, float* out);

// out [rows, cols] = dequantized W.
void nf4_dequantize(const Nf4Tensor& w, float* out);
// out [nrows, cols] = rows [row0, row0 + nrows) of W: one tile, for tile-by-tile matmul.
void nf4_dequantize_rows(const Nf4Tensor& w, int64_t row0, int64_t nrows, float* out);

// Bytes held by codes + absmax (+ nested codes, scales and offset). The 256-value map is a shared
// constant and is not counted (a loaded checkpoint's own map adds 1 KiB).
size_t nf4_bytes(const Nf4Tensor& w);

// Rows of W [N, K] dequantized at a time by the matmuls below (64..256, see nf4_matmul.cpp), and
// the floats their `scratch` must hold: min(nf4_tile_rows(K), N) * K.
int nf4_tile_rows(int64_t K);
size_t nf4_matmul_scratch_floats(const Nf4Tensor& w);

// out [M, N] = inp [M, K] · W^T + bias, W = w [N, K]. bias [N] may be null.
void nf4_matmul_forward(float* out, const float* inp, const Nf4Tensor& w, const float* bias, int M, int K, int N,
                        float* scratch);
// dinp [M, K] += dout [M, N] · W. The base weight is frozen, so there is no weight gradient.
void nf4_matmul_backward_input(float* dinp, const float* dout, const Nf4Tensor& w, int M, int K, int N,
                               float* scratch);

}  // namespace lathe
