// libFuzzer target for the GGUF reader: any input must parse or throw lathe::Error; whatever parses
// must also survive metadata accessors and tensor_f32 on every tensor (bounds were checked at parse
// time, so dequantization may not read outside the buffer).
#include <cstddef>
#include <cstdint>

#include "lathe/core/error.h"
#include "lathe/formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    // No owner: the views below die before `data` does.
    lathe::GgufFile f = lathe::GgufFile::parse("fuzz.gguf", nullptr, data, size);
    for (const auto& [key, v] : f.metadata()) {
      try {
        if (v.is_array()) {
          if (v.elem_type == lathe::GgufType::STRING) f.get_string_array(key);
          else f.get_float_array(key);
        } else if (v.type == lathe::GgufType::STRING) {
          f.get_string(key, "");
        } else {
          f.get_float(key, 0);
        }
      } catch (const lathe::Error&) {
      }
    }
    for (const auto& t : f.tensors()) {
      try {
        lathe::Tensor x = f.tensor_f32(t.name);
        volatile float sink = x.numel() ? x.f32()[x.numel() - 1] : 0.f;
        (void)sink;
      } catch (const lathe::Error&) {
      }
    }
  } catch (const lathe::Error&) {
  }
  return 0;
}
