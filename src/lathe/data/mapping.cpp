#include "lathe/data/mapping.h"

#include <optional>

#include "lathe/core/error.h"
#include "lathe/data/collect.h"
#include "lathe/records/record_format.h"

namespace lathe::data {

namespace {

const nlohmann::json* lookup(const nlohmann::json& j, const std::string& path) {
  const nlohmann::json* cur = &j;
  size_t p = 0;
  while (true) {
    size_t dot = path.find('.', p);
    std::string key = path.substr(p, dot == std::string::npos ? std::string::npos : dot - p);
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
    if (dot == std::string::npos) return cur;
    p = dot + 1;
  }
}

// ordered_json → json without a text round trip.
nlohmann::json unordered(const nlohmann::ordered_json& o) {
  if (o.is_object()) {
    nlohmann::json j = nlohmann::json::object();
    for (auto& [k, v] : o.items()) j[k] = unordered(v);
    return j;
  }
  if (o.is_array()) {
    nlohmann::json j = nlohmann::json::array();
    for (auto& v : o) j.push_back(unordered(v));
    return j;
  }
  if (o.is_string()) return o.get<std::string>();
  if (o.is_boolean()) return o.get<bool>();
  if (o.is_number_integer()) return o.get<int64_t>();
  if (o.is_number_float()) return o.get<double>();
  return nullptr;
}

bool is_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string();
}

// The common shapes without record_to_messages' detour through ordered_json (a dump and re-parse per
// message, then a conversion back): the same messages, built directly. Returns false when the record is
// anything but plain strings in the usual places; record_to_messages then handles (or rejects) it.
bool messages_fast(nlohmann::json& rec, RecordShape shape, nlohmann::json& msgs) {
  if (shape == RecordShape::Messages) {
    auto& list = rec["messages"];
    if (!list.is_array()) return false;
    for (auto& m : list) {
      // Only string values: record_to_messages' conversion would turn e.g. unsigned numbers signed.
      if (!m.is_object() || !is_string(m, "role") || !is_string(m, "content")) return false;
      for (auto& [k, v] : m.items())
        if (!v.is_string()) return false;
    }
    msgs = std::move(list);
    return true;
  }
  if (shape == RecordShape::Alpaca) {
    if (!is_string(rec, "instruction") || !is_string(rec, "output")) return false;
    auto in = rec.find("input");
    if (in != rec.end() && !in->is_null() && !in->is_string()) return false;
    auto message = [](const char* role, std::string content) {
      nlohmann::json m = nlohmann::json::object();
      m["role"] = role;
      m["content"] = std::move(content);
      return m;
    };
    msgs = nlohmann::json::array();
    auto sys = rec.find("system");
    if (sys != rec.end() && sys->is_string() && !sys->get_ref<const std::string&>().empty())
      msgs.push_back(message("system", std::move(sys->get_ref<std::string&>())));
    std::string user = std::move(rec["instruction"].get_ref<std::string&>());
    if (in != rec.end() && in->is_string() && !in->get_ref<const std::string&>().empty())
      user += "\n\n" + in->get_ref<const std::string&>();
    msgs.push_back(message("user", std::move(user)));
    msgs.push_back(message("assistant", std::move(rec["output"].get_ref<std::string&>())));
    return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> map_record(Record& r, const MappingOptions& o) {
  if (!o.stratify_by.empty()) {
    const nlohmann::json* v = lookup(r.json, o.stratify_by);
    r.stratum = !v ? "" : v->is_string() ? v->get<std::string>() : v->dump();
  }
  if (!o.fields.empty()) {
    nlohmann::json mapped = nlohmann::json::object();
    for (auto& [target, source] : o.fields)
      if (const nlohmann::json* v = lookup(r.json, source)) mapped[target] = *v;
    if (!mapped.empty()) r.json = std::move(mapped);
  }
  RecordShape shape = detect_record_shape(r.json);
  if (shape == RecordShape::Unknown) {
    std::string keys;
    if (r.json.is_object())
      for (auto& [k, v] : r.json.items()) keys += (keys.empty() ? "" : ", ") + k;
    return "no known shape (fields: " + keys + ")";
  }
  if (shape == RecordShape::Text) {
    if (!r.json["text"].is_string()) return "\"text\" is not a string";
    nlohmann::json text = std::move(r.json["text"]);
    r.json = nlohmann::json::object();
    r.json["text"] = std::move(text);
    return std::nullopt;
  }
  if (shape == RecordShape::PreTokenized) {
    nlohmann::json j{{"input_ids", r.json["input_ids"]}};
    if (r.json.contains("labels")) j["labels"] = r.json["labels"];
    r.json = std::move(j);
    return std::nullopt;
  }
  try {
    nlohmann::json msgs;
    if (!messages_fast(r.json, shape, msgs)) msgs = unordered(record_to_messages(r.json, shape));
    if (!o.system_prompt.empty() && (msgs.empty() || msgs[0].value("role", "") != "system"))
      msgs.insert(msgs.begin(), nlohmann::json{{"role", "system"}, {"content", o.system_prompt}});
    r.json = nlohmann::json{{"messages", std::move(msgs)}};
  } catch (const Error& e) {
    return std::string("malformed ") + record_shape_name(shape) + " record: " + e.what();
  }
  return std::nullopt;
}

void map_records(std::vector<Record>& records, const MappingOptions& o, StageCounts& counts,
                 std::map<std::string, size_t>& shapes) {
  const int64_t n = int64_t(records.size());
  std::vector<std::optional<std::string>> why(n);
  std::vector<RecordShape> shape(n);
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < n; i++) {
    shape[i] = o.fields.empty() ? detect_record_shape(records[i].json) : RecordShape::Unknown;
    why[i] = map_record(records[i], o);
  }
  counts.in += records.size();
  std::vector<Record> kept;
  kept.reserve(records.size());
  for (int64_t i = 0; i < n; i++) {
    if (why[i]) {
      // The reason names the fields; group the report by its first words so reasons stay few.
      std::string reason = why[i]->substr(0, why[i]->find(" (fields"));
      if (reason.rfind("malformed", 0) == 0) reason = reason.substr(0, reason.find(':'));
      counts.drop(reason, records[i].source.where() + ": " + *why[i]);
      continue;
    }
    shapes[o.fields.empty() ? record_shape_name(shape[i]) : "mapped"]++;
    kept.push_back(std::move(records[i]));
  }
  records.swap(kept);
  counts.out += records.size();
}

}  // namespace lathe::data
