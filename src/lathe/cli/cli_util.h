// Small parsing helpers shared by subcommands.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/core/error.h"

namespace lathe::cli {

// "1,2, 3" -> {1,2,3}; throws "[cli] --flag: ..." naming the bad item.
inline std::vector<int32_t> parse_id_list(const std::string& s, const char* flag) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a == std::string::npos) fail("cli", "{}: empty item in '{}'", flag, s);
    item = item.substr(a, b - a + 1);
    try {
      size_t used = 0;
      long long v = std::stoll(item, &used);
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(int32_t(v));
    } catch (const std::exception&) {
      fail("cli", "{}: '{}' is not an integer token id", flag, item);
    }
    i = j + 1;
  }
  return ids;
}

}  // namespace lathe::cli
