#include "lathe/core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "lathe/core/error.h"

namespace lathe {

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int i = int(shape.size()) - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

static int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::empty(DType t, std::vector<int64_t> shape) {
  Tensor x;
  x.dtype = t;
  x.shape = std::move(shape);
  if (dtype_size(t)) x.strides = contiguous_strides(x.shape);
  // 64-byte alignment for SIMD loads; never a zero-size request.
  size_t bytes = (dtype_bytes(t, shape_numel(x.shape)) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes ? bytes : 64);
  LATHE_CHECK(p != nullptr, "out of memory allocating {} bytes", bytes);
  x.owner = std::shared_ptr<void>(p, std::free);
  x.data = p;
  return x;
}

Tensor Tensor::zeros(DType t, std::vector<int64_t> shape) {
  Tensor x = empty(t, std::move(shape));
  std::memset(x.data, 0, x.nbytes());
  return x;
}

Tensor Tensor::view(DType t, std::vector<int64_t> shape, void* data, std::shared_ptr<void> owner) {
  Tensor x;
  x.dtype = t;
  x.shape = std::move(shape);
  if (dtype_size(t)) x.strides = contiguous_strides(x.shape);
  x.data = data;
  x.owner = std::move(owner);
  return x;
}

int64_t Tensor::numel() const { return shape_numel(shape); }

bool Tensor::is_contiguous() const { return strides.empty() || strides == contiguous_strides(shape); }

float* Tensor::f32() const {
  LATHE_CHECK(dtype == DType::F32, "expected an F32 tensor, got {}", dtype_name(dtype));
  return static_cast<float*>(data);
}

std::string Tensor::shape_str() const { return shape_to_string(shape); }

Tensor to_f32(const Tensor& t) {
  if (t.dtype == DType::F32) return t;
  LATHE_CHECK(t.is_contiguous(), "to_f32 needs a contiguous tensor");
  Tensor out = Tensor::empty(DType::F32, t.shape);
  convert_to_f32(t.dtype, t.data, out.f32(), t.numel());
  return out;
}

}  // namespace lathe
