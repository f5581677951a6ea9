// Process facts for reports and memory plans.
#pragma once
#include <cstddef>

namespace lathe {

size_t peak_rss_bytes();      // VmHWM of this process
size_t current_rss_bytes();   // VmRSS
size_t available_ram_bytes(); // MemAvailable
// MemAvailable + SwapFree: the most a process can allocate before the OOM killer, what model loading
// checks a model's size against before it allocates (0 when /proc/meminfo cannot be read).
size_t available_memory_bytes();

}  // namespace lathe
