// safetensors (REFERENCE.md §2.4): an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype","shape","data_offsets":[begin,end]}, "__metadata__": {str: str}}, then the data.
// Reading maps the file and hands out zero-copy views; every rule of the format is validated and a
// violation throws lathe::Error naming the file and the tensor.
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

  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }
  bool has(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws naming file + tensor
  // Zero-copy view into the mapping (dtypes F32/F16/BF16/I32/I64/U8); throws for other dtypes.
  Tensor tensor(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
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
// sorted by name. Throws on a duplicate name.
void safetensors_write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace lathe
