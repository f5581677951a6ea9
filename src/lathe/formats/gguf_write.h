// GGUF v3 writer: metadata of every value type, tensors stored as F32, F16, BF16 or Q8_0, written
// atomically (temporary file, fsync, rename). Used by tests and by `lathe export --format gguf`.
//
//   GgufWriter w;
//   w.set_string("general.architecture", "llama");
//   w.add_tensor("token_embd.weight", embed /* [V, C] f32 */, GgmlType::F16);
//   w.write("out.gguf");
//
// Tensors are converted while writing, so the writer holds references (Tensor owners), not copies.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "lathe/core/tensor.h"
#include "lathe/formats/gguf.h"

namespace lathe {

class GgufWriter {
 public:
  // Setting a key again replaces its value (the key keeps its first position).
  void set_u8(const std::string& key, uint8_t v);
  void set_i8(const std::string& key, int8_t v);
  void set_u16(const std::string& key, uint16_t v);
  void set_i16(const std::string& key, int16_t v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_i64(const std::string& key, int64_t v);
  void set_f32(const std::string& key, float v);
  void set_f64(const std::string& key, double v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_u32_array(const std::string& key, const std::vector<uint32_t>& v);
  void set_i64_array(const std::string& key, const std::vector<int64_t>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_bool_array(const std::string& key, const std::vector<bool>& v);  // per-layer flags
  // Any value, nested arrays included; the value's `type`/`elem_type` decide the encoding (for an
  // integer type the scalar may hold int64 or uint64; for a float type, a double).
  void set_value(const std::string& key, GgufValue v);
  // Writes general.alignment (a power of two, default 32) and pads to it.
  void set_alignment(uint32_t alignment);

  // `t` is a contiguous F32/F16/BF16 tensor in PyTorch order; it is stored as `out` (F32, F16,
  // BF16, or Q8_0 with d = absmax/127, q = round(x/d), which needs the last dim to be a multiple
  // of 32). The tensor's bytes must stay alive until write().
  void add_tensor(const std::string& name, const Tensor& t, GgmlType out);
  // Already-encoded bytes of any ggml type, `shape` in PyTorch order (for tests and re-export).
  void add_tensor_raw(const std::string& name, const std::vector<int64_t>& shape, uint32_t ggml_type,
                      std::vector<uint8_t> bytes);

  void write(const std::string& path) const;  // atomic
  std::string to_bytes() const;               // the whole file image, for tests and fuzz seeds

 private:
  struct PendingTensor {
    std::string name;
    std::vector<int64_t> dims;  // ggml order
    uint32_t ggml_type = 0;
    size_t nbytes = 0;
    Tensor src;                  // converted at write time...
    std::vector<uint8_t> raw;    // ...or stored as given
    bool is_raw = false;
  };
  using Sink = std::function<void(const void*, size_t)>;
  void emit(const Sink& out) const;
  void set(const std::string& key, GgufValue v);

  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
  uint32_t alignment_ = 32;
};

// Q8_0 encoding of n (a multiple of 32) floats into n/32 blocks of 34 bytes.
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n);

}  // namespace lathe
