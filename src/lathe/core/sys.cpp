#include "lathe/core/sys.h"

#include <cstdio>
#include <cstring>

namespace lathe {

static size_t read_kb_field(const char* file, const char* field) {
  FILE* f = std::fopen(file, "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0, n = std::strlen(field);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, field, n) == 0) {
      std::sscanf(line + n, " %zu", &kb);
      break;
    }
  std::fclose(f);
  return kb * 1024;
}

size_t peak_rss_bytes() { return read_kb_field("/proc/self/status", "VmHWM:"); }
size_t current_rss_bytes() { return read_kb_field("/proc/self/status", "VmRSS:"); }
size_t available_ram_bytes() { return read_kb_field("/proc/meminfo", "MemAvailable:"); }
size_t available_memory_bytes() {
  size_t ram = available_ram_bytes();
  return ram ? ram + read_kb_field("/proc/meminfo", "SwapFree:") : 0;
}

}  // namespace lathe
