// GGUF v2/v3 reader (REFERENCE.md §2.5). Every read is bounds-checked against the buffer: this file
// is a fuzz target (fuzz/gguf.cpp), so a malformed file must end in lathe::Error, never in a crash,
// a huge allocation or a read past the mapping.
#include "lathe/formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <string_view>

#include "lathe/core/error.h"

namespace lathe {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

// Nested arrays are legal but nobody nests deeply; the cap keeps a crafted file from recursing the
// stack away.
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxKeyBytes = 65535;  // spec limit on key length
// Smallest possible encodings, used to reject counts that cannot fit in the bytes left before we
// allocate anything for them: a KV is key length (8) + type (4) + at least a 1-byte value; a tensor
// info is name length (8) + n_dims (4) + type (4) + offset (8).
constexpr uint64_t kMinKvBytes = 13;
constexpr uint64_t kMinTensorInfoBytes = 24;

// ggml's type table (ggml-common.h block structs). Removed or unknown numbers stay {nullptr, 0, 0};
// knowing the block sizes of types we cannot dequantize still lets us validate every offset.
constexpr GgmlTypeTraits kGgmlTypes[] = {
    {"F32", 1, 4},         {"F16", 1, 2},        {"Q4_0", 32, 18},    {"Q4_1", 32, 20},
    {},                    {},                   {"Q5_0", 32, 22},    {"Q5_1", 32, 24},
    {"Q8_0", 32, 34},      {"Q8_1", 32, 36},     {"Q2_K", 256, 84},   {"Q3_K", 256, 110},
    {"Q4_K", 256, 144},    {"Q5_K", 256, 176},   {"Q6_K", 256, 210},  {"Q8_K", 256, 292},
    {"IQ2_XXS", 256, 66},  {"IQ2_XS", 256, 74},  {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},    {"IQ3_S", 256, 110},  {"IQ2_S", 256, 82},  {"IQ4_XS", 256, 136},
    {"I8", 1, 1},          {"I16", 1, 2},        {"I32", 1, 4},       {"I64", 1, 8},
    {"F64", 1, 8},         {"IQ1_M", 256, 56},   {"BF16", 1, 2},      {},
    {},                    {},                   {"TQ1_0", 256, 54},  {"TQ2_0", 256, 66},
    {},                    {},                   {},                  {"MXFP4", 32, 17},
};

const char* value_type_name(uint32_t t) {
  static const char* kNames[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                 "bool", "string", "array", "u64", "i64", "f64"};
  return t < std::size(kNames) ? kNames[t] : "unknown";
}

// Bytes a value of this type takes at least (arrays/strings: just their headers); 0 if unknown.
uint64_t min_value_bytes(uint32_t t) {
  switch (GgufType(t)) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 0;
}

// Keys and names come from the file; escape what a terminal should not see and cap the length.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 96)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') out += char(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > 96) out += "...";
  return out;
}

// A cursor over the buffer. `item` names what is being read ("key 'x'", "tensor 'y'") so every
// error says where it happened.
class Reader {
 public:
  Reader(const std::string& path, const uint8_t* data, size_t size) : path_(path), data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  std::string item;

  template <class... Args>
  [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) const {
    fail("gguf", "{}: {}{}", path_, item.empty() ? "" : item + ": ", fmt::format(f, std::forward<Args>(args)...));
  }
  void need(uint64_t n, const char* what) const {
    if (n > left()) error("file truncated reading {} at offset {} (need {} bytes, {} left)", what, pos_, n, left());
  }
  // Rejects a count whose items (each at least `min_bytes`) cannot fit in what is left.
  void check_count(uint64_t count, uint64_t min_bytes, const char* what) const {
    if (min_bytes && count > left() / min_bytes)
      error("{} count {} cannot fit in the {} bytes left at offset {}", what, count, left(), pos_);
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v = load_le<T>(data_ + pos_);
    pos_ += sizeof v;
    return v;
  }
  std::string_view str(const char* what) {
    uint64_t len = get<uint64_t>(what);
    if (len > left()) error("{} length {} runs past end of file ({} bytes left at offset {})", what, len, left(), pos_);
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

GgufValue read_value(Reader& r, uint32_t type, int depth);

// Reads `count` elements of `elem` into `out.array`, with fixed-size scalars read in one checked span.
void read_array_elems(Reader& r, GgufValue& out, uint64_t count, int depth) {
  uint32_t elem = uint32_t(out.elem_type);
  r.check_count(count, min_value_bytes(elem), "array element");
  out.array.resize(size_t(count));
  for (auto& v : out.array) v = read_value(r, elem, depth + 1);
}

GgufValue read_value(Reader& r, uint32_t type, int depth) {
  GgufValue v;
  if (min_value_bytes(type) == 0) r.error("unknown value type {}", type);
  v.type = GgufType(type);
  switch (v.type) {
    case GgufType::U8: v.scalar = uint64_t(r.get<uint8_t>("u8 value")); break;
    case GgufType::I8: v.scalar = int64_t(r.get<int8_t>("i8 value")); break;
    case GgufType::U16: v.scalar = uint64_t(r.get<uint16_t>("u16 value")); break;
    case GgufType::I16: v.scalar = int64_t(r.get<int16_t>("i16 value")); break;
    case GgufType::U32: v.scalar = uint64_t(r.get<uint32_t>("u32 value")); break;
    case GgufType::I32: v.scalar = int64_t(r.get<int32_t>("i32 value")); break;
    case GgufType::U64: v.scalar = r.get<uint64_t>("u64 value"); break;
    case GgufType::I64: v.scalar = r.get<int64_t>("i64 value"); break;
    case GgufType::F32: v.scalar = double(r.get<float>("f32 value")); break;
    case GgufType::F64: v.scalar = r.get<double>("f64 value"); break;
    case GgufType::BOOL: {
      uint8_t b = r.get<uint8_t>("bool value");
      if (b > 1) r.error("bool value {} is not 0 or 1", b);
      v.scalar = int64_t(b);
      break;
    }
    case GgufType::STRING: v.scalar = std::string(r.str("string")); break;
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth) r.error("arrays nested deeper than {}", kMaxArrayDepth);
      uint32_t elem = r.get<uint32_t>("array element type");
      if (min_value_bytes(elem) == 0) r.error("unknown array element type {}", elem);
      v.elem_type = GgufType(elem);
      read_array_elems(r, v, r.get<uint64_t>("array count"), depth);
      break;
    }
  }
  return v;
}

bool is_int_type(GgufType t) {
  return t != GgufType::F32 && t != GgufType::F64 && t != GgufType::STRING && t != GgufType::ARRAY;
}
bool is_numeric_type(GgufType t) { return t != GgufType::STRING && t != GgufType::ARRAY; }

// Checked product; false on overflow of int64.
bool mul_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }

int64_t dims_numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // validated against overflow at parse time
  return n;
}

}  // namespace

GgmlTypeTraits ggml_type_traits(uint32_t t) { return t < std::size(kGgmlTypes) ? kGgmlTypes[t] : GgmlTypeTraits{}; }

std::string ggml_type_name(uint32_t t) {
  const char* n = ggml_type_traits(t).name;
  return n ? std::string(n) : fmt::format("type {}", t);
}

// ---- GgufValue ---------------------------------------------------------------------------------

int64_t GgufValue::as_int() const {
  if (!is_int_type(type)) fail("gguf", "value of type {} is not an integer", value_type_name(uint32_t(type)));
  if (auto* u = std::get_if<uint64_t>(&scalar)) {
    if (*u > uint64_t(std::numeric_limits<int64_t>::max())) fail("gguf", "u64 value {} does not fit in int64", *u);
    return int64_t(*u);
  }
  return std::get<int64_t>(scalar);
}

double GgufValue::as_float() const {
  if (!is_numeric_type(type)) fail("gguf", "value of type {} is not a number", value_type_name(uint32_t(type)));
  if (auto* d = std::get_if<double>(&scalar)) return *d;
  if (auto* u = std::get_if<uint64_t>(&scalar)) return double(*u);
  return double(std::get<int64_t>(scalar));
}

const std::string& GgufValue::as_string() const {
  if (type != GgufType::STRING) fail("gguf", "value of type {} is not a string", value_type_name(uint32_t(type)));
  return std::get<std::string>(scalar);
}

std::vector<int64_t> GgufTensorInfo::shape() const { return std::vector<int64_t>(dims.rbegin(), dims.rend()); }

// ---- parsing -------------------------------------------------------------------------------------

GgufFile GgufFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> m = MappedFile::open(path);
  const uint8_t* data = m->data();
  size_t size = m->size();
  return parse(path, std::move(m), data, size);
}

GgufFile GgufFile::parse(const std::string& name, std::shared_ptr<void> owner, const uint8_t* data, size_t size) {
  GgufFile f;
  f.path_ = name;
  f.owner_ = std::move(owner);
  Reader r(f.path_, data, size);

  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) {
    std::string head = size >= 4 ? printable(std::string_view(reinterpret_cast<const char*>(data), 4)) : "";
    fail("gguf", "{}: not a GGUF file (magic '{}', expected 'GGUF')", name, head);
  }
  r.get<uint32_t>("magic");
  f.version_ = r.get<uint32_t>("version");
  if (f.version_ == 1)
    fail("gguf", "{}: GGUF version 1 (32-bit counts) is not supported; re-convert with a current llama.cpp", name);
  if (f.version_ != 2 && f.version_ != 3) {
    uint32_t swapped = __builtin_bswap32(f.version_);
    if (swapped >= 1 && swapped <= 3) fail("gguf", "{}: big-endian GGUF (version {}) is not supported", name, swapped);
    fail("gguf", "{}: unsupported GGUF version {} (lathe reads versions 2 and 3)", name, f.version_);
  }
  uint64_t n_tensors = r.get<uint64_t>("tensor count");
  uint64_t n_kv = r.get<uint64_t>("metadata count");
  r.check_count(n_kv, kMinKvBytes, "metadata key/value");
  r.check_count(n_tensors, kMinTensorInfoBytes, "tensor");

  for (uint64_t i = 0; i < n_kv; i++) {
    r.item = fmt::format("metadata entry {}", i);
    std::string_view key_view = r.str("key");
    if (key_view.size() > kMaxKeyBytes) r.error("key is {} bytes, longer than the {} allowed", key_view.size(), kMaxKeyBytes);
    std::string key(key_view);
    r.item = fmt::format("key '{}'", printable(key));
    uint32_t type = r.get<uint32_t>("value type");
    GgufValue v = read_value(r, type, 0);
    if (!f.kv_.emplace(std::move(key), std::move(v)).second) r.error("duplicate key");
  }

  if (auto it = f.kv_.find("general.alignment"); it != f.kv_.end()) {
    r.item = "key 'general.alignment'";
    const GgufValue& a = it->second;
    if (!is_int_type(a.type) || a.type == GgufType::BOOL) r.error("expected an integer, got {}", value_type_name(uint32_t(a.type)));
    int64_t al = a.as_int();
    // The spec asks for a multiple of 8; llama.cpp accepts any power of two, and so do we.
    if (al <= 0 || al > (int64_t(1) << 30) || !std::has_single_bit(uint64_t(al))) r.error("alignment {} is not a power of two", al);
    f.alignment_ = uint32_t(al);
  }

  r.item.clear();
  r.check_count(n_tensors, kMinTensorInfoBytes, "tensor");
  f.tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; i++) {
    r.item = fmt::format("tensor info {}", i);
    GgufTensorInfo t;
    t.name = std::string(r.str("tensor name"));
    r.item = fmt::format("tensor '{}'", printable(t.name));
    uint32_t n_dims = r.get<uint32_t>("n_dims");
    if (n_dims > 4) r.error("n_dims {} is more than 4", n_dims);
    // The overflow check runs over the non-zero dims: with a zero dim the product is 0 in this
    // order, but a later product in another order (shape() reverses the dims) could still overflow.
    int64_t numel = 1, nonzero = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
      uint64_t dim = r.get<uint64_t>("dims");
      if (dim > uint64_t(std::numeric_limits<int64_t>::max()) ||
          !mul_ok(nonzero, std::max<int64_t>(int64_t(dim), 1), &nonzero))
        r.error("dims product overflows (dim {} = {})", d, dim);
      numel *= int64_t(dim);  // |numel| <= nonzero: cannot overflow
      t.dims.push_back(int64_t(dim));
    }
    t.ggml_type = r.get<uint32_t>("ggml type");
    GgmlTypeTraits tr = ggml_type_traits(t.ggml_type);
    if (!tr.block) r.error("unknown ggml type {}", t.ggml_type);
    int64_t ne0 = t.dims.empty() ? 1 : t.dims[0];
    if (ne0 % tr.block) r.error("first dim {} is not a multiple of the {} block size {}", ne0, tr.name, tr.block);
    int64_t nbytes;
    if (!mul_ok(numel / tr.block, tr.bytes, &nbytes)) r.error("byte size overflows ({} elements of {})", numel, tr.name);
    t.nbytes = size_t(nbytes);
    t.offset = r.get<uint64_t>("offset");
    if (t.offset % f.alignment_) r.error("offset {} is not a multiple of the alignment {}", t.offset, f.alignment_);
    if (!f.index_.emplace(t.name, f.tensors_.size()).second) r.error("duplicate tensor name");
    f.tensors_.push_back(std::move(t));
  }

  // Tensor data starts at the next multiple of the alignment. A file without tensors may stop
  // short of that padding, so clamp rather than fail.
  size_t data_off = r.pos() + (f.alignment_ - r.pos() % f.alignment_) % f.alignment_;
  if (data_off > size) data_off = size;
  size_t data_size = size - data_off;
  f.data_begin_ = data + data_off;
  for (const auto& t : f.tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail("gguf", "{}: tensor '{}': data [{}, {}) runs past the end of the tensor data ({} bytes at file offset {})",
           name, printable(t.name), t.offset, t.offset + t.nbytes, data_size, data_off);
  }
  // Two tensors sharing bytes would alias: writing one (full fine-tuning of a zero-copy view) or
  // reading it as another type would silently corrupt the other. The safetensors reader refuses
  // this too. Empty tensors occupy nothing and may sit anywhere.
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(f.tensors_.size());
  for (const auto& t : f.tensors_)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const GgufTensorInfo* a, const GgufTensorInfo* b) {
    return a->offset < b->offset;
  });
  for (size_t i = 1; i < by_offset.size(); i++) {
    const GgufTensorInfo& a = *by_offset[i - 1];
    const GgufTensorInfo& b = *by_offset[i];
    if (b.offset < a.offset + a.nbytes)
      fail("gguf", "{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap in the tensor data", name, printable(a.name),
           a.offset, a.offset + a.nbytes, printable(b.name), b.offset, b.offset + b.nbytes);
  }
  return f;
}

// ---- metadata access -----------------------------------------------------------------------------

void GgufFile::fail_key(const std::string& key, const std::string& why) const {
  fail("gguf", "{}: key '{}': {}", path_, key, why);
}

const GgufValue& GgufFile::get(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) fail("gguf", "{}: missing key '{}'", path_, key);
  return it->second;
}

std::string GgufFile::get_string(const std::string& key, const std::string& def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  if (it->second.type != GgufType::STRING)
    fail_key(key, fmt::format("expected a string, got {}", value_type_name(uint32_t(it->second.type))));
  return it->second.as_string();
}

int64_t GgufFile::get_int(const std::string& key, int64_t def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  if (!is_int_type(it->second.type))
    fail_key(key, fmt::format("expected an integer, got {}", value_type_name(uint32_t(it->second.type))));
  try {
    return it->second.as_int();
  } catch (const Error& e) {
    fail_key(key, e.what());
  }
}

double GgufFile::get_float(const std::string& key, double def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  if (!is_numeric_type(it->second.type))
    fail_key(key, fmt::format("expected a number, got {}", value_type_name(uint32_t(it->second.type))));
  return it->second.as_float();
}

const GgufValue& GgufFile::get_array(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_array()) fail_key(key, fmt::format("expected an array, got {}", value_type_name(uint32_t(v.type))));
  return v;
}

template <class T, class Accepts, class Convert>
std::vector<T> GgufFile::get_array_as(const std::string& key, Accepts accepts, const char* what, Convert convert) const {
  const GgufValue& v = get_array(key);
  if (!accepts(v.elem_type))
    fail_key(key, fmt::format("expected an array of {}, got an array of {}", what, value_type_name(uint32_t(v.elem_type))));
  std::vector<T> out;
  out.reserve(v.array.size());
  try {
    for (const auto& e : v.array) out.push_back(convert(e));
  } catch (const Error& e) {
    fail_key(key, e.what());
  }
  return out;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  return get_array_as<std::string>(
      key, [](GgufType t) { return t == GgufType::STRING; }, "strings",
      [](const GgufValue& e) { return std::get<std::string>(e.scalar); });
}

std::vector<float> GgufFile::get_float_array(const std::string& key) const {
  return get_array_as<float>(key, is_numeric_type, "numbers", [](const GgufValue& e) { return float(e.as_float()); });
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  return get_array_as<int64_t>(key, is_int_type, "integers", [](const GgufValue& e) { return e.as_int(); });
}

// ---- tensors -------------------------------------------------------------------------------------

bool GgufFile::has_tensor(const std::string& name) const { return index_.count(name) > 0; }

const GgufTensorInfo& GgufFile::tensor_info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("gguf", "{}: no tensor named '{}'", path_, name);
  return tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const std::string& name) const { return data_begin_ + tensor_info(name).offset; }

Tensor GgufFile::tensor_quantized(const std::string& name) const {
  const GgufTensorInfo& t = tensor_info(name);
  DType dt;
  switch (GgmlType(t.ggml_type)) {
    case GgmlType::Q8_0: dt = DType::Q8_0; break;
    case GgmlType::Q4_0: dt = DType::Q4_0; break;
    case GgmlType::Q4_K: dt = DType::Q4_K; break;
    case GgmlType::Q6_K: dt = DType::Q6_K; break;
    case GgmlType::F16: dt = DType::F16; break;
    case GgmlType::BF16: dt = DType::BF16; break;
    default:
      fail("gguf", "{}: tensor '{}' is {}, not one lathe multiplies as stored (Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16)",
           path_, name, ggml_type_name(t.ggml_type));
  }
  // Blocks and halves are read with memcpy / unaligned loads by the kernels, so any address will do.
  return Tensor::view(dt, t.shape(), const_cast<uint8_t*>(data_begin_ + t.offset), owner_);
}

Tensor GgufFile::tensor_f32(const std::string& name) const {
  const GgufTensorInfo& t = tensor_info(name);
  const uint8_t* src = data_begin_ + t.offset;
  int64_t n = dims_numel(t.dims);
  if (t.ggml_type == uint32_t(GgmlType::F32) && reinterpret_cast<uintptr_t>(src) % alignof(float) == 0)
    return Tensor::view(DType::F32, t.shape(), const_cast<uint8_t*>(src), owner_);

  Tensor out = Tensor::empty(DType::F32, t.shape());
  float* dst = out.f32();
  switch (GgmlType(t.ggml_type)) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * 4); break;  // misaligned in the file
    // Element loads go through memcpy: with general.alignment 1 a half can sit at an odd address.
    case GgmlType::F16:
      for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(load_le<uint16_t>(src + 2 * i));
      break;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(load_le<uint16_t>(src + 2 * i));
      break;
    case GgmlType::Q8_0: dequantize_q8_0(src, dst, n); break;
    case GgmlType::Q4_0: dequantize_q4_0(src, dst, n); break;
    case GgmlType::Q4_K: dequantize_q4_k(src, dst, n); break;
    case GgmlType::Q6_K: dequantize_q6_k(src, dst, n); break;
    default:
      fail("gguf", "{}: tensor '{}' has ggml type {}, which lathe cannot dequantize (supported: F32, F16, BF16, Q8_0, "
           "Q4_0, Q4_K, Q6_K)",
           path_, name, ggml_type_name(t.ggml_type));
  }
  return out;
}

// Q8_0 block (34 bytes): f16 scale d, then 32 int8 q; x = d * q.
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n) {
  LATHE_CHECK(n % 32 == 0, "Q8_0 needs a multiple of 32 elements, got {}", n);
  for (int64_t b = 0; b < n / 32; b++, src += 34, dst += 32) {
    float d = f16_to_f32(load_le<uint16_t>(src));
    for (int j = 0; j < 32; j++) dst[j] = d * float(int8_t(src[2 + j]));
  }
}

// Q4_0 block (18 bytes): f16 scale d, then 16 bytes; byte j holds element j in its low nibble and
// element j+16 in its high nibble, stored with a +8 bias: x = d * (q - 8).
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n) {
  LATHE_CHECK(n % 32 == 0, "Q4_0 needs a multiple of 32 elements, got {}", n);
  for (int64_t b = 0; b < n / 32; b++, src += 18, dst += 32) {
    float d = f16_to_f32(load_le<uint16_t>(src));
    for (int j = 0; j < 16; j++) {
      uint8_t q = src[2 + j];
      dst[j] = d * float(int(q & 0x0f) - 8);
      dst[j + 16] = d * float(int(q >> 4) - 8);
    }
  }
}

}  // namespace lathe
