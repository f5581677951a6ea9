// libFuzzer target for the safetensors reader: any byte string must either parse into entries whose
// bytes lie inside the buffer, or throw lathe::Error. Crashes, sanitizer reports and other
// exception types are bugs. Parses from memory (SafetensorsFile::parse), so no temp files.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lathe::SafetensorsFile st = lathe::SafetensorsFile::parse("fuzz.safetensors", data, size);
    uint32_t sum = 0;
    for (const auto& e : st.entries()) {
      // Touch every byte an entry claims so ASan flags any range that escapes the input.
      const uint8_t* p = st.raw_data(e);
      for (size_t i = e.begin; i < e.end; i++) sum += p[i - e.begin];
      try {
        lathe::Tensor t = st.tensor(e.name);
        if (t.nbytes() != e.end - e.begin) __builtin_trap();
        if (t.nbytes() > 0) sum += static_cast<const uint8_t*>(t.data)[t.nbytes() - 1];
      } catch (const lathe::Error&) {
        // dtypes lathe does not load (I8, F8_*, ...) are refused here, by design.
      }
    }
    for (const auto& [k, v] : st.metadata()) sum += uint32_t(k.size() + v.size());
    volatile uint32_t sink = sum;
    (void)sink;
  } catch (const lathe::Error&) {
  }
  return 0;
}
