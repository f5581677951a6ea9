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
  nlohmann::json j{{"file", file}};
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

std::string record_text(const nlohmann::json& rec) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += '\n';
    out += s;
  };
  if (rec.contains("messages") && rec["messages"].is_array())
    for (auto& m : rec["messages"])
      if (m.is_object() && m.contains("content") && m["content"].is_string()) add(m["content"].get_ref<const std::string&>());
  if (rec.contains("text") && rec["text"].is_string()) add(rec["text"].get_ref<const std::string&>());
  return out;
}

std::string record_answer(const nlohmann::json& rec) {
  if (rec.contains("text") && rec["text"].is_string()) return rec["text"];
  if (!rec.contains("messages") || !rec["messages"].is_array()) return "";
  const auto& ms = rec["messages"];
  for (size_t i = ms.size(); i-- > 0;)
    if (ms[i].is_object() && ms[i].value("role", "") == "assistant" && ms[i].contains("content") && ms[i]["content"].is_string())
      return ms[i]["content"];
  return "";
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace lathe::data
