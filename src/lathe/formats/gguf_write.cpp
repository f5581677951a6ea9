#include "lathe/formats/gguf_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/scope_exit.h"

namespace lathe {

namespace {

GgufValue scalar_value(GgufType t, std::variant<int64_t, uint64_t, double, std::string> s) {
  GgufValue v;
  v.type = t;
  v.scalar = std::move(s);
  return v;
}

template <class T>
GgufValue array_value(GgufType elem, const std::vector<T>& xs) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem;
  v.array.reserve(xs.size());
  for (const T& x : xs) {
    if constexpr (std::is_same_v<T, std::string>) v.array.push_back(scalar_value(elem, x));
    else if constexpr (std::is_floating_point_v<T>) v.array.push_back(scalar_value(elem, double(x)));
    else if constexpr (std::is_signed_v<T>) v.array.push_back(scalar_value(elem, int64_t(x)));
    else v.array.push_back(scalar_value(elem, uint64_t(x)));
  }
  return v;
}

// Serialises metadata into a byte string (little-endian host, as the reader assumes).
class Bytes {
 public:
  std::string s;
  template <class T>
  void put(T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_str(const std::string& x) {
    put<uint64_t>(x.size());
    s += x;
  }
  void put_value(const std::string& key, const GgufValue& v) {
    // Integer scalars may come in either signedness; a value out of range is the caller's bug.
    auto ival = [&]() -> int64_t {
      if (auto* u = std::get_if<uint64_t>(&v.scalar)) return int64_t(*u);
      if (auto* i = std::get_if<int64_t>(&v.scalar)) return *i;
      fail("gguf", "key '{}': integer value type holds a non-integer", key);
    };
    auto fval = [&]() -> double {
      if (auto* d = std::get_if<double>(&v.scalar)) return *d;
      fail("gguf", "key '{}': float value type holds a non-float", key);
    };
    switch (v.type) {
      case GgufType::U8: put<uint8_t>(uint8_t(ival())); break;
      case GgufType::I8: put<int8_t>(int8_t(ival())); break;
      case GgufType::U16: put<uint16_t>(uint16_t(ival())); break;
      case GgufType::I16: put<int16_t>(int16_t(ival())); break;
      case GgufType::U32: put<uint32_t>(uint32_t(ival())); break;
      case GgufType::I32: put<int32_t>(int32_t(ival())); break;
      case GgufType::U64: put<uint64_t>(uint64_t(ival())); break;
      case GgufType::I64: put<int64_t>(ival()); break;
      case GgufType::F32: put<float>(float(fval())); break;
      case GgufType::F64: put<double>(fval()); break;
      case GgufType::BOOL: put<uint8_t>(ival() ? 1 : 0); break;
      case GgufType::STRING: {
        auto* str = std::get_if<std::string>(&v.scalar);
        if (!str) fail("gguf", "key '{}': string value holds a non-string", key);
        put_str(*str);
        break;
      }
      case GgufType::ARRAY:
        put<uint32_t>(uint32_t(v.elem_type));
        put<uint64_t>(v.array.size());
        for (const auto& e : v.array) {
          if (e.type != v.elem_type) fail("gguf", "key '{}': array element of the wrong type", key);
          put_value(key, e);
        }
        break;
      default: fail("gguf", "key '{}': unknown value type {}", key, uint32_t(v.type));
    }
  }
};

size_t align_up(size_t x, size_t a) { return x + (a - x % a) % a; }

}  // namespace

// Q8_0: per block of 32, d = absmax/127 and q = round(x/d), so q spans [-127, 127]. d is stored as
// f16 but q is computed with the f32 d, as ggml does.
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n) {
  LATHE_CHECK(n % 32 == 0, "Q8_0 needs a multiple of 32 elements, got {}", n);
  for (int64_t b = 0; b < n / 32; b++, src += 32, dst += 34) {
    float amax = 0.f;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(src[j]));
    float d = amax / 127.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    uint16_t dh = f32_to_f16(d);
    std::memcpy(dst, &dh, 2);
    for (int j = 0; j < 32; j++) dst[2 + j] = uint8_t(int8_t(std::lround(src[j] * id)));
  }
}

void GgufWriter::set(const std::string& key, GgufValue v) {
  for (auto& [k, old] : kv_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::set_u8(const std::string& k, uint8_t v) { set(k, scalar_value(GgufType::U8, uint64_t(v))); }
void GgufWriter::set_i8(const std::string& k, int8_t v) { set(k, scalar_value(GgufType::I8, int64_t(v))); }
void GgufWriter::set_u16(const std::string& k, uint16_t v) { set(k, scalar_value(GgufType::U16, uint64_t(v))); }
void GgufWriter::set_i16(const std::string& k, int16_t v) { set(k, scalar_value(GgufType::I16, int64_t(v))); }
void GgufWriter::set_u32(const std::string& k, uint32_t v) { set(k, scalar_value(GgufType::U32, uint64_t(v))); }
void GgufWriter::set_i32(const std::string& k, int32_t v) { set(k, scalar_value(GgufType::I32, int64_t(v))); }
void GgufWriter::set_u64(const std::string& k, uint64_t v) { set(k, scalar_value(GgufType::U64, v)); }
void GgufWriter::set_i64(const std::string& k, int64_t v) { set(k, scalar_value(GgufType::I64, v)); }
void GgufWriter::set_f32(const std::string& k, float v) { set(k, scalar_value(GgufType::F32, double(v))); }
void GgufWriter::set_f64(const std::string& k, double v) { set(k, scalar_value(GgufType::F64, v)); }
void GgufWriter::set_bool(const std::string& k, bool v) { set(k, scalar_value(GgufType::BOOL, int64_t(v))); }
void GgufWriter::set_string(const std::string& k, const std::string& v) { set(k, scalar_value(GgufType::STRING, v)); }
void GgufWriter::set_string_array(const std::string& k, const std::vector<std::string>& v) {
  set(k, array_value(GgufType::STRING, v));
}
void GgufWriter::set_i32_array(const std::string& k, const std::vector<int32_t>& v) { set(k, array_value(GgufType::I32, v)); }
void GgufWriter::set_u32_array(const std::string& k, const std::vector<uint32_t>& v) { set(k, array_value(GgufType::U32, v)); }
void GgufWriter::set_i64_array(const std::string& k, const std::vector<int64_t>& v) { set(k, array_value(GgufType::I64, v)); }
void GgufWriter::set_f32_array(const std::string& k, const std::vector<float>& v) { set(k, array_value(GgufType::F32, v)); }
void GgufWriter::set_bool_array(const std::string& k, const std::vector<bool>& v) {
  set(k, array_value(GgufType::BOOL, std::vector<int64_t>(v.begin(), v.end())));
}
void GgufWriter::set_value(const std::string& k, GgufValue v) { set(k, std::move(v)); }

void GgufWriter::set_alignment(uint32_t a) {
  LATHE_CHECK(a > 0 && std::has_single_bit(a), "GGUF alignment must be a power of two, got {}", a);
  alignment_ = a;
  set_u32("general.alignment", a);
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& t, GgmlType out) {
  for (const auto& p : tensors_)
    if (p.name == name) fail("gguf", "duplicate tensor '{}' in writer", name);
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail("gguf", "tensor '{}': cannot write a {} tensor (need F32, F16 or BF16)", name, dtype_name(t.dtype));
  if (!t.is_contiguous()) fail("gguf", "tensor '{}': must be contiguous", name);
  if (t.ndim() > 4) fail("gguf", "tensor '{}': GGUF holds at most 4 dims, got {}", name, t.shape_str());
  if (out != GgmlType::F32 && out != GgmlType::F16 && out != GgmlType::BF16 && out != GgmlType::Q8_0)
    fail("gguf", "tensor '{}': cannot write ggml type {} (supported: F32, F16, BF16, Q8_0)", name,
         ggml_type_name(uint32_t(out)));
  PendingTensor p;
  p.name = name;
  p.dims.assign(t.shape.rbegin(), t.shape.rend());
  p.ggml_type = uint32_t(out);
  GgmlTypeTraits tr = ggml_type_traits(p.ggml_type);
  int64_t ne0 = p.dims.empty() ? 1 : p.dims[0];
  if (ne0 % tr.block)
    fail("gguf", "tensor '{}': last dim of {} is not a multiple of the {} block size {}", name, t.shape_str(), tr.name,
         tr.block);
  p.nbytes = size_t(t.numel() / tr.block * tr.bytes);
  p.src = t;
  tensors_.push_back(std::move(p));
}

void GgufWriter::add_tensor_raw(const std::string& name, const std::vector<int64_t>& shape, uint32_t ggml_type,
                                std::vector<uint8_t> bytes) {
  for (const auto& p : tensors_)
    if (p.name == name) fail("gguf", "duplicate tensor '{}' in writer", name);
  GgmlTypeTraits tr = ggml_type_traits(ggml_type);
  if (!tr.block) fail("gguf", "tensor '{}': unknown ggml type {}", name, ggml_type);
  PendingTensor p;
  p.name = name;
  p.dims.assign(shape.rbegin(), shape.rend());
  p.ggml_type = ggml_type;
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  int64_t ne0 = p.dims.empty() ? 1 : p.dims[0];
  if (ne0 % tr.block || size_t(numel / tr.block * tr.bytes) != bytes.size())
    fail("gguf", "tensor '{}': {} bytes do not encode shape {} as {}", name, bytes.size(), shape_to_string(shape), tr.name);
  p.nbytes = bytes.size();
  p.raw = std::move(bytes);
  p.is_raw = true;
  tensors_.push_back(std::move(p));
}

void GgufWriter::emit(const Sink& out) const {
  Bytes h;
  h.s.append("GGUF", 4);
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(kv_.size());
  for (const auto& [k, v] : kv_) {
    h.put_str(k);
    h.put<uint32_t>(uint32_t(v.type));
    h.put_value(k, v);
  }
  // Each tensor starts on an alignment boundary relative to the data section.
  size_t offset = 0;
  for (const auto& t : tensors_) {
    h.put_str(t.name);
    h.put<uint32_t>(uint32_t(t.dims.size()));
    for (int64_t d : t.dims) h.put<uint64_t>(uint64_t(d));
    h.put<uint32_t>(t.ggml_type);
    h.put<uint64_t>(offset);
    offset = align_up(offset + t.nbytes, alignment_);
  }
  h.s.resize(align_up(h.s.size(), alignment_), '\0');
  out(h.s.data(), h.s.size());

  static const char kZeros[4096] = {};
  std::vector<uint8_t> buf;
  for (const auto& t : tensors_) {
    if (t.is_raw) {
      out(t.raw.data(), t.raw.size());
    } else {
      // Convert in chunks so exporting a large model never holds a second full copy.
      const auto* src = static_cast<const uint8_t*>(t.src.data);
      size_t esize = dtype_size(t.src.dtype);
      int64_t n = t.src.numel();
      GgmlTypeTraits tr = ggml_type_traits(t.ggml_type);
      const int64_t chunk = 32 * 1024;  // a multiple of every block size we write
      std::vector<float> xs(size_t(std::min(chunk, n)));
      for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int64_t m = std::min(chunk, n - i0);
        convert_to_f32(t.src.dtype, src + size_t(i0) * esize, xs.data(), m);
        const float* x = xs.data();
        buf.resize(size_t(m / tr.block * tr.bytes));
        switch (GgmlType(t.ggml_type)) {
          case GgmlType::F32: std::memcpy(buf.data(), x, size_t(m) * 4); break;
          case GgmlType::F16:
            for (int64_t j = 0; j < m; j++) {
              uint16_t h16 = f32_to_f16(x[j]);
              std::memcpy(&buf[size_t(j) * 2], &h16, 2);
            }
            break;
          case GgmlType::BF16:
            for (int64_t j = 0; j < m; j++) {
              uint16_t h16 = f32_to_bf16(x[j]);
              std::memcpy(&buf[size_t(j) * 2], &h16, 2);
            }
            break;
          case GgmlType::Q8_0: quantize_q8_0(x, buf.data(), m); break;
          default: LATHE_CHECK(false, "unreachable ggml type {}", t.ggml_type);
        }
        out(buf.data(), buf.size());
      }
    }
    for (size_t pad = align_up(t.nbytes, alignment_) - t.nbytes; pad > 0;) {
      size_t k = std::min(pad, sizeof kZeros);
      out(kZeros, k);
      pad -= k;
    }
  }
}

std::string GgufWriter::to_bytes() const {
  std::string s;
  emit([&](const void* p, size_t n) { s.append(static_cast<const char*>(p), n); });
  return s;
}

// Streams to a temporary file beside `path`, then fsync + rename, so readers never see a partial
// file and a model-sized export is never buffered whole in memory.
void GgufWriter::write(const std::string& path) const {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("gguf", "{}: cannot create: {}", tmp, std::strerror(errno));
  // Any failure below closes and removes the partial file; the error (its message formatted before
  // this runs, so errno is the failing call's) propagates as it is.
  ScopeExit discard([&] {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
  });
  emit([&](const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("gguf", "{}: write failed: {}", tmp, std::strerror(errno));
      }
      p += w;
      n -= size_t(w);
    }
  });
  if (fsync(fd) != 0) fail("gguf", "{}: cannot flush: {}", tmp, std::strerror(errno));
  const int closed = ::close(fd);
  fd = -1;
  if (closed != 0) fail("gguf", "{}: cannot close: {}", tmp, std::strerror(errno));
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    fail("gguf", "{}: cannot rename into place: {}", path, std::strerror(errno));
  discard.dismiss();
}

}  // namespace lathe
