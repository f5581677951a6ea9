// safetensors (REFERENCE.md §2.4): an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype","shape","data_offsets":[begin,end]}, "__metadata__": {str: str}}, then the data.
// Reading maps the file and hands out zero-copy views; every rule of the format is validated and a
// violation throws lathe::Error naming the file and the tensor.
//
// Views are read-only (the mapping is PROT_READ). Kernels use a view's data as float*/int64_t*, so
// when a tensor's bytes are not aligned to its element size (legal in the format, never produced by
// the usual writers, which pad the header to 8 bytes) tensor() returns an aligned heap copy instead.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lathe/core/file_io.h"
#include "lathe/core/tensor.h"

namespace lathe {

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;      // as written in the file ("F32", "I8", ...)
  std::vector<int64_t> shape;  // PyTorch order
  size_t begin = 0, end = 0;   // byte offsets relative to the data buffer, end exclusive
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws lathe::Error("[safetensors] PATH: ...") on any malformation:
  // header length beyond the file or over 100,000,000 bytes, invalid JSON, unknown dtype, offsets
  // out of range / overlapping / leaving holes, size not matching dtype x shape, duplicate names.
  static SafetensorsFile open(const std::string& path);
  // Validates a whole file image held in memory (`path` only names it in messages). `owner` keeps
  // `bytes` alive for the views tensor() returns; with a null owner the caller must keep them alive.
  static SafetensorsFile parse(const std::string& path, const uint8_t* bytes, size_t size,
                               std::shared_ptr<void> owner = nullptr);

  // Sorted by name.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws naming file + tensor
  // Zero-copy view into the mapping (dtypes F32/F16/BF16/I32/I64/U8); throws for other dtypes.
  Tensor tensor(const std::string& name) const;
  // The raw little-endian bytes of any entry (any dtype): entry.end - entry.begin bytes.
  const uint8_t* raw_data(const SafetensorsEntry& e) const { return data_begin_ + e.begin; }

 private:
  std::string path_;
  std::shared_ptr<void> owner_;          // the mapping (or caller's buffer) the views keep alive
  const uint8_t* data_begin_ = nullptr;  // start of the byte buffer
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A model's weights in one file or sharded with model.safetensors.index.json ({"weight_map": {name: file}}).
class SafetensorsCollection {
 public:
  // `dir` holds model.safetensors, or model.safetensors.index.json plus its shards.
  static SafetensorsCollection open_dir(const std::string& dir);
  bool has(const std::string& name) const;
  Tensor tensor(const std::string& name) const;  // throws "[safetensors] DIR: missing tensor 'name'"
  std::vector<std::string> names() const;        // sorted
  std::vector<const SafetensorsEntry*> all_entries() const;

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index into files_
};

// Writes tensors (contiguous; F32/F16/BF16/I32/I64/U8) atomically, header padded to 8 bytes,
// data laid out in name order; "__metadata__" only when `metadata` is non-empty. Throws on a
// duplicate name, a non-contiguous tensor or an unsupported dtype.
void safetensors_write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// For writers that stream a tensor's data instead of holding it: the bytes safetensors_write puts
// before the data (the 8-byte length and the padded JSON header) for tensors given in name order.
struct SafetensorsSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};
std::string safetensors_header(const std::vector<SafetensorsSpec>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace lathe
