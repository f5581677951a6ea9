#include "lathe/data/record.h"

#include <fmt/format.h>

namespace lathe::data {

std::string Source::where() const {
  if (page > 0) return fmt::format("{} page {}", file, page);
  if (item > 0) return line > 0 ? fmt::format("{}:{} item {}", file, line, item) : fmt::format("{} item {}", file, item);
  if (line > 0) return fmt::format("{}:{}", file, line);
  return file;
}

nlohmann::json Source::to_json() const {
  // Built member by member, not from an initializer list (which nlohmann copies through a list of
  // references and checks for an object's shape): every record's "_source" is one.
  nlohmann::json j(nlohmann::json::value_t::object);
  j["file"] = file;
  if (line > 0) j["line"] = line;
  if (page > 0) j["page"] = page;
  if (item > 0) j["item"] = item;
  return j;
}

void StageCounts::drop(const std::string& reason, const std::string& example, size_t max_examples) {
  dropped[reason]++;
  auto& ex = examples[reason];
  if (ex.size() < max_examples) ex.push_back(example);
}

bool StageCounts::reconciles() const {
  size_t d = 0;
  for (auto& [k, v] : dropped) d += v;
  return in == out + d;
}

nlohmann::json StageCounts::to_json() const {
  nlohmann::json j{{"stage", stage}, {"in", in}, {"out", out}, {"dropped", dropped}, {"examples", examples}};
  j["reconciles"] = reconciles();
  return j;
}

// fmt's "{:016x}" (sixteen lowercase digits, zero-padded) without parsing a format string per call:
// every record's id is one (tests/data_pipeline/data_collect_unit.cpp compares the two).
std::string hex64(uint64_t v) {
  std::string s(16, '0');
  for (int k = 15; k >= 0; k--, v >>= 4) s[size_t(k)] = "0123456789abcdef"[v & 15];
  return s;
}

}  // namespace lathe::data
