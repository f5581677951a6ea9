#include "lathe/core/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace lathe {

bool cpu_text_avx2() {
  static const bool yes = [] {
#if defined(__x86_64__)
    const char* isa = std::getenv("LATHE_CPU_ISA");
    if (isa && std::strcmp(isa, "scalar") == 0) return false;
    __builtin_cpu_init();
    return bool(__builtin_cpu_supports("avx2"));
#else
    return false;
#endif
  }();
  return yes;
}

}  // namespace lathe
