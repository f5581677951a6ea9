// Shared by the project tests: which stages a `lathe run` printed as running / unchanged.
#pragma once
#include <regex>
#include <string>

namespace lathe::test {

// "train,eval" for the lines "== train    running" and "== eval     running" when what = "running".
inline std::string stages_with(const std::string& out, const std::string& what) {
  std::string s;
  std::regex re("== (\\w+) +" + what);
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    s += (s.empty() ? "" : ",") + (*it)[1].str();
  return s;
}

}  // namespace lathe::test
