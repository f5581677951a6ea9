// GGUF v2/v3 reader (REFERENCE.md §2.5). Metadata of every value type is kept; tensors are handed
// out in PyTorch shape order (GGUF dims are reversed: dims[0] is the fastest axis). F32 tensors are
// zero-copy views into the mapping; F16/BF16/Q8_0/Q4_0 are dequantized to f32 on request.
// Malformed files throw lathe::Error("[gguf] PATH: ...") naming the key or tensor.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "lathe/core/file_io.h"
#include "lathe/core/tensor.h"

namespace lathe {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12
};

struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem_type = GgufType::U8;  // for ARRAY
  // Scalars: integers (and bool) widen to int64/uint64, floats to double.
  std::variant<int64_t, uint64_t, double, std::string> scalar;
  std::vector<GgufValue> array;  // for ARRAY (nested arrays allowed)

  bool is_array() const { return type == GgufType::ARRAY; }
  int64_t as_int() const;         // any integer/bool type; throws otherwise
  double as_float() const;        // any numeric type
  const std::string& as_string() const;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;     // 0 F32, 1 F16, 2 Q4_0, 8 Q8_0, 30 BF16, ...
  std::vector<int64_t> dims;  // ggml order (fastest first)
  uint64_t offset = 0;        // relative to the tensor data start
  size_t nbytes = 0;
  std::vector<int64_t> shape() const;  // PyTorch order (reversed dims)
};

class GgufFile {
 public:
  static GgufFile open(const std::string& path);

  uint32_t version() const { return version_; }
  const std::string& path() const { return file_->path(); }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  bool has(const std::string& key) const { return kv_.count(key) > 0; }
  const GgufValue& get(const std::string& key) const;  // throws "[gguf] PATH: missing key 'k'"
  std::string get_string(const std::string& key, const std::string& def) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key, double def) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool has_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor_info(const std::string& name) const;
  // F32 view or dequantized copy, PyTorch shape order. Throws for unsupported ggml types.
  Tensor tensor_f32(const std::string& name) const;
  const uint8_t* tensor_data(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  const uint8_t* data_begin_ = nullptr;
};

// Block dequantization (ggml layouts): Q8_0 = f16 d + 32 x int8, x = d*q;
// Q4_0 = f16 d + 16 bytes, element j in the low nibble of byte j, element j+16 in the high nibble, x = d*(q-8).
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n);

}  // namespace lathe
