// Small string helpers shared by every layer.
#pragma once
#include <string>
#include <vector>

namespace lathe {

// Splits "a,b,,c" at `sep` into every item (empty ones included), each with spaces and tabs
// around it removed when `trim`. "" gives one empty item.
inline std::vector<std::string> split_list(const std::string& s, char sep = ',', bool trim = true) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(sep, i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    if (trim) {
      const size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
      item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    }
    out.push_back(std::move(item));
    i = j + 1;
  }
  return out;
}

}  // namespace lathe
