// GGUF v2/v3 reader (REFERENCE.md §2.5). Metadata of every value type is kept; tensors are handed
// out in PyTorch shape order (GGUF dims are reversed: dims[0] is the fastest axis). F32 tensors are
// zero-copy views into the mapping; F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K are dequantized to f32 on request,
// and also handed out as stored (tensor_quantized) for the quantized-weight kernels.
// Malformed files throw lathe::Error("[gguf] PATH: ...") naming the key or tensor.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "lathe/core/file_io.h"
#include "lathe/core/kquant_blocks.h"  // dequantize_q4_k, dequantize_q6_k
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

// ggml tensor element types that lathe names (GgufTensorInfo::ggml_type holds the raw number, since
// files may carry types newer than this list).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30
};
// Block layout of a ggml type: `block` elements take `bytes` bytes. Both are 0 for unknown types.
struct GgmlTypeTraits {
  const char* name = nullptr;
  int64_t block = 0;
  int64_t bytes = 0;
};
GgmlTypeTraits ggml_type_traits(uint32_t ggml_type);
std::string ggml_type_name(uint32_t ggml_type);  // "Q8_0", or "type 99" when unknown

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
  // Parses an in-memory GGUF image; `name` is used in error messages, `owner` keeps `data` alive
  // for the F32 views handed out (may be null when the caller guarantees the lifetime).
  static GgufFile parse(const std::string& name, std::shared_ptr<void> owner, const uint8_t* data,
                        size_t size);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }  // general.alignment, default 32
  const std::string& path() const { return path_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  bool has(const std::string& key) const { return kv_.count(key) > 0; }
  const GgufValue& get(const std::string& key) const;  // throws "[gguf] PATH: missing key 'k'"
  std::string get_string(const std::string& key, const std::string& def) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key, double def) const;
  // Whole arrays, for the tokenizer (tokenizer.ggml.tokens/.scores/.token_type/.merges). Throw when
  // the key is missing or its elements are not of the asked kind (any integer type for ints, any
  // numeric type for floats).
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool has_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor_info(const std::string& name) const;
  // F32 view or dequantized copy, PyTorch shape order. Throws for unsupported ggml types.
  Tensor tensor_f32(const std::string& name) const;
  const uint8_t* tensor_data(const std::string& name) const;
  // A Q8_0, Q4_0, Q4_K, Q6_K, F16 or BF16 tensor as stored: a zero-copy view (that dtype, PyTorch
  // shape, rows of blocks as kernels/cpu/qblock.h lays them out) into the mapping. Throws for other
  // types, naming the tensor.
  Tensor tensor_quantized(const std::string& name) const;

 private:
  [[noreturn]] void fail_key(const std::string& key, const std::string& why) const;
  const GgufValue& get_array(const std::string& key) const;
  // Array `key` converted element by element; `accepts` its element type or an error naming `what`.
  template <class T, class Accepts, class Convert>
  std::vector<T> get_array_as(const std::string& key, Accepts accepts, const char* what, Convert convert) const;

  std::string path_;
  std::shared_ptr<void> owner_;  // the mapping (or caller's buffer) behind data_begin_
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
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
