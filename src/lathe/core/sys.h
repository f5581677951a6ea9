// Process facts for reports and memory plans.
#pragma once
#include <cstddef>

namespace lathe {

size_t peak_rss_bytes();      // VmHWM of this process
size_t current_rss_bytes();   // VmRSS
size_t available_ram_bytes(); // MemAvailable

}  // namespace lathe
