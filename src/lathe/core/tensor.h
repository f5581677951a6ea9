// A tensor is a typed view (shape, strides in elements, dtype) onto bytes owned elsewhere: a
// memory-mapped file, or a heap buffer. Shapes are in PyTorch order (outermost first); a Linear
// weight is [out, in] and y = x W^T.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lathe/core/dtype.h"

namespace lathe {

struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements; empty for block-quantized types (always contiguous)
  void* data = nullptr;
  std::shared_ptr<void> owner;  // keeps the bytes alive (heap buffer or mapping)

  static Tensor empty(DType t, std::vector<int64_t> shape);  // uninitialised heap tensor
  static Tensor zeros(DType t, std::vector<int64_t> shape);
  // A view onto bytes someone else owns; `owner` keeps them alive.
  static Tensor view(DType t, std::vector<int64_t> shape, void* data, std::shared_ptr<void> owner);

  int64_t numel() const;
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  int ndim() const { return int(shape.size()); }
  size_t nbytes() const { return dtype_bytes(dtype, numel()); }
  bool is_contiguous() const;
  float* f32() const;  // checked: dtype must be F32
  template <class T>
  T* as() const { return static_cast<T*>(data); }
  std::string shape_str() const;  // "[2, 3]"
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);
std::string shape_to_string(const std::vector<int64_t>& shape);

// Returns an f32 copy of a plain float tensor (or the tensor itself when it is already f32).
Tensor to_f32(const Tensor& t);

}  // namespace lathe
