#include "lathe/data/mapping.h"

#include <algorithm>
#include <optional>

#include "lathe/core/error.h"
#include "lathe/data/collect.h"
#include "lathe/records/record_shape.h"

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

}  // namespace

std::optional<std::string> map_record(Record& r, const MappingOptions& o, RecordShape* shape_out, PreferenceShape* pref_out) {
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
  const RecordShape shape = detect_record_shape(r.json);
  if (shape_out) *shape_out = shape;
  if (pref_out) *pref_out = PreferenceShape::None;
  if (shape == RecordShape::Preference) {
    const PreferenceShape ps = preference_shape_of(r.json);
    if (pref_out) *pref_out = ps;
    try {
      nlohmann::json stored = preference_record(r.json, ps);
      if (stored.contains("prompt") && stored["prompt"].is_array()) add_system_prompt(stored["prompt"], o.system_prompt);
      r.json = std::move(stored);
    } catch (const Error& e) {
      return std::string("malformed ") + preference_shape_name(ps) + " preference record: " + e.what();
    }
    return std::nullopt;
  }
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
    // The record is consumed: its strings move into the messages (a dropped record keeps only its source).
    nlohmann::json msgs = record_messages(std::move(r.json), shape);
    add_system_prompt(msgs, o.system_prompt);
    r.json = nlohmann::json{{"messages", std::move(msgs)}};
  } catch (const Error& e) {
    return std::string("malformed ") + record_shape_name(shape) + " record: " + e.what();
  }
  return std::nullopt;
}

const char* dataset_kind_name(DatasetKind k) {
  switch (k) {
    case DatasetKind::Paired: return "paired";
    case DatasetKind::Unpaired: return "unpaired";
    case DatasetKind::Sft: break;
  }
  return "sft";
}

namespace {

std::optional<DatasetKind> kind_of(RecordShape s, PreferenceShape p) {
  if (s == RecordShape::Unknown) return std::nullopt;
  if (s != RecordShape::Preference) return DatasetKind::Sft;
  return is_paired(p) ? DatasetKind::Paired : DatasetKind::Unpaired;
}

const char* kind_words(DatasetKind k) {
  switch (k) {
    case DatasetKind::Paired: return "a paired preference record (chosen/rejected)";
    case DatasetKind::Unpaired: return "an unpaired preference record (completion/label)";
    case DatasetKind::Sft: break;
  }
  return "an SFT record";
}

[[noreturn]] void kind_mix_error(const std::string& where, DatasetKind k, DatasetKind first_kind,
                                 const std::string& first_where) {
  fail("data", "{}: {} among records of another kind ({} at {}): a prepared dataset holds SFT records or one kind of "
       "preference records, not a mix; prepare them separately",
       where, kind_words(k), kind_words(first_kind), first_where);
}

}  // namespace

void merge_kinds(KindSeen& into, const KindSeen& next) {
  if (!next.kind) return;
  if (!into.kind) into = next;
  else if (*next.kind != *into.kind) kind_mix_error(next.first, *next.kind, *into.kind, into.first);
}

DatasetKind map_records(std::vector<Record>& records, const MappingOptions& o, StageCounts& counts,
                        std::map<std::string, size_t>& shapes, KindSeen* seen) {
  const int64_t n = int64_t(records.size());
  std::vector<std::optional<std::string>> why(n);
  std::vector<RecordShape> shape(n);
  std::vector<PreferenceShape> pref(n);
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < n; i++) why[i] = map_record(records[i], o, &shape[i], &pref[i]);
  counts.in += records.size();
  std::vector<Record> kept;
  // The first record's kind (shape after mapping.fields, malformed or not) is the set's; the first
  // record of another kind stops the preparation.
  std::optional<DatasetKind> kind;
  int64_t first = -1;
  for (int64_t i = 0; i < n; i++) {
    const std::optional<DatasetKind> k = kind_of(shape[i], pref[i]);
    if (k && !kind) {
      kind = k;
      first = i;
    } else if (k && *k != *kind) {
      kind_mix_error(records[i].source.where(), *k, *kind, records[first].source.where());
    }
  }
  if (seen) *seen = {kind, kind ? records[first].source.where() : std::string()};
  // Shapes counted by name pointer (a handful), then into `shapes`: a map lookup with a key string built
  // per record, and a move of every record into a new vector, were a serial step of the streamed run;
  // the records move only when some are dropped.
  std::vector<std::pair<const char*, size_t>> tally;
  auto count_shape = [&](int64_t i) {
    const char* name = !o.fields.empty()                       ? "mapped"
                       : shape[i] == RecordShape::Preference ? preference_shape_name(pref[i])
                                                             : record_shape_name(shape[i]);
    for (auto& [nm, c] : tally)
      if (nm == name) {
        c++;
        return;
      }
    tally.emplace_back(name, 1);
  };
  const bool drops = std::any_of(why.begin(), why.end(), [](const auto& w) { return w.has_value(); });
  for (int64_t i = 0; i < n && !drops; i++) count_shape(i);
  if (drops) kept.reserve(records.size());
  for (int64_t i = 0; i < n && drops; i++) {
    if (why[i]) {
      // The reason names the fields; group the report by its first words so reasons stay few.
      std::string reason = why[i]->substr(0, why[i]->find(" (fields"));
      if (reason.rfind("malformed", 0) == 0) reason = reason.substr(0, reason.find(':'));
      counts.drop(reason, records[i].source.where() + ": " + *why[i]);
      continue;
    }
    count_shape(i);
    kept.push_back(std::move(records[i]));
  }
  if (drops) records.swap(kept);
  for (auto& [name, c] : tally) shapes[name] += c;
  counts.out += records.size();
  return kind.value_or(DatasetKind::Sft);
}

}  // namespace lathe::data
