#include "lathe/formats/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "lathe/core/error.h"

namespace lathe {

// The format is little-endian; so are all hosts we build for, which lets us copy bytes as they are.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using nlohmann::json;

// safetensors/src/tensor.rs MAX_HEADER_SIZE: a bound so a hostile length cannot make us parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Every dtype the format defines (REFERENCE.md §2.4) with its width in bits. F4 and F6 are
// sub-byte: a tensor of them is valid only when numel * bits is a whole number of bytes (as in the
// Rust implementation); lathe can validate such files but tensor() refuses them.
struct DtypeInfo {
  const char* name;
  uint32_t bits;
};
constexpr DtypeInfo kDtypes[] = {
    {"BOOL", 8},         {"F4", 4},           {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},           {"F8_E5M2", 8},      {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8},  {"I16", 16},         {"U16", 16},    {"F16", 16},    {"BF16", 16},
    {"I32", 32},         {"U32", 32},         {"F32", 32},    {"C64", 64},    {"F64", 64},
    {"I64", 64},         {"U64", 64},
};

uint32_t dtype_bits(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.bits;
  return 0;
}

// The dtypes lathe has a DType for; checked explicitly so a future DType spelling (e.g. "Q8_0")
// can never be accepted from a safetensors file.
bool lathe_dtype(const std::string& name, DType* out) {
  static const char* kSupported[] = {"F32", "F16", "BF16", "I32", "I64", "U8"};
  for (const char* s : kSupported)
    if (name == s) return dtype_from_name(name, out);
  return false;
}

// nlohmann keeps the last of two equal keys silently, but the format forbids duplicates (a second
// "w" could hide the first from one reader and not another). This parser callback sees every key
// as it is read, so it records the first duplicate at any depth together with its enclosing key.
struct DuplicateFinder {
  std::vector<std::set<std::string>> seen;  // keys of each open object, innermost last
  std::vector<std::string> current;         // the key being read in each open object
  bool found = false;
  int depth = 0;  // 1 = a top-level key (a tensor name or __metadata__)
  std::string key, parent;

  bool operator()(int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        seen.emplace_back();
        current.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!seen.empty()) {
          seen.pop_back();
          current.pop_back();
        }
        break;
      case json::parse_event_t::key:
        if (!seen.empty()) {
          const std::string& k = parsed.get_ref<const std::string&>();
          if (!found && !seen.back().insert(k).second) {
            found = true;
            depth = int(seen.size());
            key = k;
            parent = seen.size() >= 2 ? current[current.size() - 2] : "";
          }
          current.back() = k;
        }
        break;
      default:
        break;
    }
    return true;
  }
};

// Reads a non-negative JSON integer; `what` names the field for the error message.
uint64_t get_uint(const json& v, const std::string& path, const std::string& tensor, const char* what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) fail("safetensors", "{}: tensor '{}': {} is negative ({})", path, tensor, what, v.dump());
  fail("safetensors", "{}: tensor '{}': {} must be a non-negative integer, got {}", path, tensor, what,
       v.dump().substr(0, 64));
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& v, uint64_t buffer_size) {
  if (!v.is_object())
    fail("safetensors", "{}: tensor '{}': entry must be a JSON object, got {}", path, name, v.type_name());
  SafetensorsEntry e;
  e.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end()) fail("safetensors", "{}: tensor '{}': missing field 'dtype'", path, name);
  if (!dt->is_string()) fail("safetensors", "{}: tensor '{}': 'dtype' must be a string", path, name);
  e.dtype_name = dt->get<std::string>();
  uint32_t bits = dtype_bits(e.dtype_name);
  if (bits == 0) fail("safetensors", "{}: tensor '{}': unknown dtype '{}'", path, name, e.dtype_name);

  auto sh = v.find("shape");
  if (sh == v.end()) fail("safetensors", "{}: tensor '{}': missing field 'shape'", path, name);
  if (!sh->is_array()) fail("safetensors", "{}: tensor '{}': 'shape' must be an array", path, name);
  // numel is the product of the dims; the product of the non-zero dims must also fit in int64 so
  // Tensor's strides (computed from the shape even when numel is 0) cannot overflow.
  uint64_t nonzero_product = 1;
  bool has_zero = false;
  for (const json& d : *sh) {
    uint64_t x = get_uint(d, path, name, "a 'shape' dimension");
    if (x == 0) {
      has_zero = true;
    } else if (__builtin_mul_overflow(nonzero_product, x, &nonzero_product) ||
               nonzero_product > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail("safetensors", "{}: tensor '{}': shape {} is absurdly large (element count overflows)", path, name,
           sh->dump().substr(0, 200));
    }
    e.shape.push_back(int64_t(x));
  }
  uint64_t numel = has_zero ? 0 : nonzero_product;
  uint64_t total_bits;
  if (__builtin_mul_overflow(numel, uint64_t(bits), &total_bits))
    fail("safetensors", "{}: tensor '{}': shape {} is absurdly large (byte size overflows)", path, name,
         shape_to_string(e.shape));
  if (total_bits % 8 != 0)
    fail("safetensors", "{}: tensor '{}': {} elements of {}-bit dtype {} do not fill whole bytes", path, name, numel,
         bits, e.dtype_name);

  auto off = v.find("data_offsets");
  if (off == v.end()) fail("safetensors", "{}: tensor '{}': missing field 'data_offsets'", path, name);
  if (!off->is_array() || off->size() != 2)
    fail("safetensors", "{}: tensor '{}': 'data_offsets' must be an array [begin, end]", path, name);
  uint64_t begin = get_uint((*off)[0], path, name, "data_offsets begin");
  uint64_t end = get_uint((*off)[1], path, name, "data_offsets end");
  if (begin > end)
    fail("safetensors", "{}: tensor '{}': data_offsets begin {} is after end {}", path, name, begin, end);
  if (end > buffer_size)
    fail("safetensors", "{}: tensor '{}': data_offsets end {} is beyond the data buffer ({} bytes)", path, name,
         end, buffer_size);
  if (end - begin != total_bits / 8)
    fail("safetensors", "{}: tensor '{}': data_offsets span {} bytes but {} {} needs {} bytes", path, name,
         end - begin, e.dtype_name, shape_to_string(e.shape), total_bits / 8);
  e.begin = size_t(begin);
  e.end = size_t(end);
  return e;
}

// The byte buffer must be tiled exactly by the tensors: no overlap (two names aliasing bytes) and
// no hole or trailing bytes (room to smuggle a second file format in: "anti-polyglot").
void check_coverage(const std::string& path, const std::vector<SafetensorsEntry>& entries, uint64_t buffer_size) {
  std::vector<const SafetensorsEntry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  size_t covered = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry* e : order) {
    if (e->begin < covered)
      fail("safetensors", "{}: tensor '{}': bytes [{}, {}) overlap tensor '{}' [{}, {})", path, e->name, e->begin,
           e->end, prev->name, prev->begin, prev->end);
    if (e->begin > covered)
      fail("safetensors", "{}: tensor '{}': hole of {} bytes in the data buffer before it (offset {})", path,
           e->name, e->begin - covered, covered);
    covered = e->end;
    prev = e;
  }
  if (covered != buffer_size)
    fail("safetensors", "{}: {} trailing bytes of the data buffer belong to no tensor", path, buffer_size - covered);
}

// Writes a file under a temporary name in the same directory and renames it into place, so
// readers never see a half-written file. Streams the pieces, so a multi-GB model is never
// assembled in one string.
class AtomicWriter {
 public:
  explicit AtomicWriter(const std::string& path) : path_(path), tmp_(path + ".tmp." + std::to_string(getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("safetensors", "{}: cannot create {}: {}", path_, tmp_, std::strerror(errno));
  }
  ~AtomicWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!done_) ::unlink(tmp_.c_str());
  }
  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("safetensors", "{}: write to {} failed: {}", path_, tmp_, std::strerror(errno));
      }
      p += w;
      n -= size_t(w);
    }
  }
  void commit() {
    int rc = ::fsync(fd_);
    int rc2 = ::close(fd_);
    fd_ = -1;
    if (rc != 0 || rc2 != 0) fail("safetensors", "{}: cannot flush {}: {}", path_, tmp_, std::strerror(errno));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail("safetensors", "{}: cannot rename {} into place: {}", path_, tmp_, std::strerror(errno));
    done_ = true;
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool done_ = false;
};

std::string join_path(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> f = MappedFile::open(path);
  const uint8_t* bytes = f->data();
  size_t size = f->size();
  return parse(path, bytes, size, std::move(f));
}

SafetensorsFile SafetensorsFile::parse(const std::string& path, const uint8_t* bytes, size_t size,
                                       std::shared_ptr<void> owner) {
  if (size < 8) fail("safetensors", "{}: file is {} bytes, shorter than the 8-byte header length", path, size);
  uint64_t n = load_le<uint64_t>(bytes);
  if (n > kMaxHeaderBytes)
    fail("safetensors", "{}: header length {} exceeds the limit of {} bytes", path, n, kMaxHeaderBytes);
  if (n > size - 8)
    fail("safetensors", "{}: header length {} is beyond the end of the file ({} bytes)", path, n, size);
  const char* hdr = reinterpret_cast<const char*>(bytes + 8);
  if (n == 0 || hdr[0] != '{') fail("safetensors", "{}: header does not start with '{{'", path);

  DuplicateFinder dups;
  json root;
  try {
    root = json::parse(hdr, hdr + n, std::ref(dups));
  } catch (const json::exception& e) {
    fail("safetensors", "{}: header is not valid JSON: {}", path, e.what());
  }
  if (dups.found) {
    if (dups.depth == 1) fail("safetensors", "{}: duplicate tensor name '{}'", path, dups.key);
    fail("safetensors", "{}: duplicate key '{}' inside '{}'", path, dups.key, dups.parent);
  }
  if (!root.is_object()) fail("safetensors", "{}: header must be a JSON object, got {}", path, root.type_name());

  SafetensorsFile st;
  st.path_ = path;
  st.owner_ = std::move(owner);
  st.data_begin_ = bytes + 8 + n;
  uint64_t buffer_size = size - 8 - n;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail("safetensors", "{}: __metadata__ must be an object of strings", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail("safetensors", "{}: __metadata__ value of '{}' must be a string, got {}", path, m.key(),
               m->type_name());
        st.metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    // nlohmann's object is a std::map, so entries come out sorted by name.
    st.index_[it.key()] = st.entries_.size();
    st.entries_.push_back(parse_entry(path, it.key(), *it, buffer_size));
  }
  check_coverage(path, st.entries_, buffer_size);
  return st;
}

bool SafetensorsFile::has(const std::string& name) const { return index_.count(name) != 0; }

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("safetensors", "{}: no tensor named '{}'", path_, name);
  return entries_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  DType dt;
  if (!lathe_dtype(e.dtype_name, &dt))
    fail("safetensors", "{}: tensor '{}' has dtype {}, which lathe cannot load (supported: F32, F16, BF16, I32, "
         "I64, U8)", path_, name, e.dtype_name);
  const uint8_t* p = data_begin_ + e.begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(dt) != 0) {
    // Misaligned (a header not padded to 8): kernels dereference typed pointers, so copy.
    Tensor t = Tensor::empty(dt, e.shape);
    if (e.end > e.begin) std::memcpy(t.data, p, e.end - e.begin);
    return t;
  }
  return Tensor::view(dt, e.shape, const_cast<uint8_t*>(p), owner_);
}

SafetensorsCollection SafetensorsCollection::open_dir(const std::string& dir) {
  if (!is_directory(dir)) fail("safetensors", "{}: not a directory", dir);
  SafetensorsCollection c;
  c.dir_ = dir;
  std::string single = join_path(dir, "model.safetensors");
  std::string index_path = join_path(dir, "model.safetensors.index.json");
  if (!file_exists(index_path)) {
    if (!file_exists(single))
      fail("safetensors", "{}: neither model.safetensors nor model.safetensors.index.json found", dir);
    c.files_.push_back(SafetensorsFile::open(single));
    for (const auto& e : c.files_[0].entries()) c.owner_[e.name] = 0;
    return c;
  }

  json index;
  try {
    index = json::parse(read_file(index_path));
  } catch (const json::exception& e) {
    fail("safetensors", "{}: not valid JSON: {}", index_path, e.what());
  }
  if (!index.is_object()) fail("safetensors", "{}: must be a JSON object", index_path);
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object())
    fail("safetensors", "{}: missing or non-object 'weight_map'", index_path);

  std::map<std::string, size_t> shard_index;  // shard file name -> index into files_
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string& name = it.key();
    if (!it->is_string())
      fail("safetensors", "{}: weight_map entry for tensor '{}' must be a file name string", index_path, name);
    std::string shard = it->get<std::string>();
    // Shards sit beside the index; refusing other paths keeps a downloaded index from reading
    // arbitrary files.
    if (shard.empty() || shard[0] == '/' || shard.find("..") != std::string::npos)
      fail("safetensors", "{}: tensor '{}': shard name '{}' must be a file beside the index", index_path, name,
           shard);
    auto s = shard_index.find(shard);
    if (s == shard_index.end()) {
      std::string shard_path = join_path(dir, shard);
      if (!file_exists(shard_path))
        fail("safetensors", "{}: shard '{}' (holding tensor '{}') does not exist", index_path, shard, name);
      s = shard_index.emplace(shard, c.files_.size()).first;
      c.files_.push_back(SafetensorsFile::open(shard_path));
    }
    if (!c.files_[s->second].has(name))
      fail("safetensors", "{}: tensor '{}' is listed in weight_map but absent from shard '{}'", index_path, name,
           shard);
    c.owner_[name] = s->second;
  }
  // The weight_map is authoritative: tensors a shard holds beyond it are not part of the model.
  return c;
}

bool SafetensorsCollection::has(const std::string& name) const { return owner_.count(name) != 0; }

Tensor SafetensorsCollection::tensor(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) fail("safetensors", "{}: missing tensor '{}'", dir_, name);
  return files_[it->second].tensor(name);
}

std::vector<std::string> SafetensorsCollection::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : owner_) out.push_back(name);
  return out;
}

std::vector<const SafetensorsEntry*> SafetensorsCollection::all_entries() const {
  std::vector<const SafetensorsEntry*> out;
  for (const auto& [name, file] : owner_) out.push_back(&files_[file].entry(name));
  return out;
}

void safetensors_write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::map<std::string, const Tensor*> by_name;  // name order = data layout order
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("safetensors", "{}: '__metadata__' is reserved, not a tensor name", path);
    if (!by_name.emplace(name, &t).second) fail("safetensors", "{}: duplicate tensor name '{}'", path, name);
    DType dt;
    if (!lathe_dtype(std::string(dtype_name(t.dtype)), &dt) || dt != t.dtype)
      fail("safetensors", "{}: tensor '{}': cannot write dtype {} (supported: F32, F16, BF16, I32, I64, U8)", path,
           name, dtype_name(t.dtype));
    for (int64_t d : t.shape)
      if (d < 0) fail("safetensors", "{}: tensor '{}': negative dimension in shape {}", path, name, t.shape_str());
    if (!t.is_contiguous())
      fail("safetensors", "{}: tensor '{}' is not contiguous (shape {}); make a contiguous copy first", path, name,
           t.shape_str());
    if (t.nbytes() > 0 && t.data == nullptr) fail("safetensors", "{}: tensor '{}' has no data", path, name);
  }

  std::vector<SafetensorsSpec> specs;
  for (const auto& [name, t] : by_name) specs.push_back({name, t->dtype, t->shape});
  const std::string head = safetensors_header(specs, metadata);
  AtomicWriter w(path);
  w.write(head.data(), head.size());
  for (const auto& [name, t] : by_name) w.write(t->data, t->nbytes());
  w.commit();
}

std::string safetensors_header(const std::vector<SafetensorsSpec>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const SafetensorsSpec& t : tensors) {
    int64_t count = 1;
    for (int64_t d : t.shape) count *= d;
    const size_t nb = dtype_bytes(t.dtype, count);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  std::string text = header.dump();
  // Pad with spaces so the data buffer starts 8-byte aligned in a mapping (as the Rust writer does).
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + text;
}

}  // namespace lathe
