// Test helpers that write hostile GGUF files: the stories260K fixture with one metadata value
// replaced (or added), and scalar GgufValue constructors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/formats/gguf.h"
#include "lathe/formats/gguf_write.h"
#include "test_util.h"

namespace lathe::test {

inline constexpr const char* kStoriesGguf = "models/gguf/stories260K.gguf";

// A copy of the stories260K GGUF with `key` set to `v` (added when the file lacks it), written to
// DIR/hostile.gguf.
inline std::string gguf_with(const TempDir& dir, const std::string& key, const GgufValue& v) {
  GgufFile src = GgufFile::open(fixture_path(kStoriesGguf));
  GgufWriter w;
  w.set_alignment(src.alignment());
  for (const auto& [k, val] : src.metadata())
    if (k != "general.alignment") w.set_value(k, k == key ? v : val);
  if (!src.has(key)) w.set_value(key, v);
  for (const auto& t : src.tensors()) {
    const uint8_t* p = src.tensor_data(t.name);
    w.add_tensor_raw(t.name, t.shape(), t.ggml_type, std::vector<uint8_t>(p, p + t.nbytes));
  }
  std::string out = dir / "hostile.gguf";
  w.write(out);
  return out;
}

template <class T>
GgufValue gguf_scalar(GgufType type, T x) {
  GgufValue v;
  v.type = type;
  v.scalar = x;
  return v;
}
inline GgufValue gguf_u32(uint64_t x) { return gguf_scalar(GgufType::U32, x); }
inline GgufValue gguf_u64(uint64_t x) { return gguf_scalar(GgufType::U64, x); }
inline GgufValue gguf_f32(double x) { return gguf_scalar(GgufType::F32, x); }

}  // namespace lathe::test
