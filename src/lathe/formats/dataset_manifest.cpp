#include "lathe/formats/dataset_manifest.h"

#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"

using nlohmann::json;

namespace lathe {

namespace {

// Field readers: `key` of object `j` at `field` (a dotted path for messages), absent → default.
struct Fields {
  const std::string& where;
  [[noreturn]] void bad(const std::string& field, const char* want) const {
    fail("dataset", "{}: {} must be {}", where, field, want);
  }
  static std::string name(const std::string& parent, const std::string& key) {
    return (parent.empty() ? "" : parent + ".") + "\"" + key + "\"";
  }
  const json* find(const json& j, const std::string& key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  void str(const json& j, const std::string& parent, const char* key, std::string& out) const {
    if (const json* v = find(j, key)) {
      if (!v->is_string()) bad(name(parent, key), "a string");
      out = v->get<std::string>();
    }
  }
  void count(const json& j, const std::string& parent, const char* key, uint64_t& out) const {
    if (const json* v = find(j, key)) {
      if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<int64_t>() >= 0))
        bad(name(parent, key), "a non-negative integer");
      out = v->get<uint64_t>();
    }
  }
  void flag(const json& j, const std::string& parent, const char* key, bool& out) const {
    if (const json* v = find(j, key)) {
      if (!v->is_boolean()) bad(name(parent, key), "true or false");
      out = v->get<bool>();
    }
  }
  void strings(const json& j, const std::string& parent, const char* key, std::vector<std::string>& out) const {
    if (const json* v = find(j, key)) {
      const std::string f = name(parent, key);
      if (!v->is_array()) bad(f, "a list of strings");
      for (size_t i = 0; i < v->size(); i++) {
        if (!(*v)[i].is_string()) bad(fmt::format("{}[{}]", f, i), "a string");
        out.push_back((*v)[i].get<std::string>());
      }
    }
  }
  const json& object(const json& j, const std::string& field) const {
    if (!j.is_object()) bad(field, "an object");
    return j;
  }
  // fn(key, value, path) for each member of the object `j` at `field`, each itself an object.
  template <class Fn>
  void objects(const json& j, const std::string& field, Fn fn) const {
    object(j, field);
    for (auto& [key, v] : j.items()) {
      const std::string p = name(field, key);
      fn(key, object(v, p), p);
    }
  }
};

}  // namespace

json DatasetManifest::to_json() const {
  json m{{"format", kDatasetManifestFormat}, {"config", config}};
  json sp = json::object();
  for (auto& [name, s] : splits) {
    json j{{"records", s.records}, {"records_count", s.records_count}, {"records_hash", s.records_hash},
           {"shards", s.shards}, {"sequences", s.sequences}, {"tokens", s.tokens},
           {"label_tokens", s.label_tokens}, {"packed", s.packed}};
    if (!s.shard_hashes.empty()) j["shard_hashes"] = s.shard_hashes;
    if (s.packed) j["bins"] = s.bins;
    sp[name] = std::move(j);
  }
  m["splits"] = std::move(sp);
  if (!preference.empty()) m["preference"] = preference;
  if (tokenizer) {
    m["tokenizer"] = {{"source", tokenizer->source}, {"hash", tokenizer->hash}};
    m["chat_template"] = chat_template;
  }
  json in = json::array();
  for (auto& f : inputs) in.push_back({{"path", f.path}, {"hash", f.hash}, {"records", f.records}, {"format", f.format}});
  m["inputs"] = std::move(in);
  json c = json::object();
  for (auto& [stage, t] : counts) c[stage] = {{"in", t.in}, {"out", t.out}, {"dropped", t.dropped}};
  m["counts"] = std::move(c);
  m["content_hash"] = content_hash;
  return m;
}

DatasetManifest DatasetManifest::from_json(const json& j, const std::string& where) {
  Fields f{where};
  f.object(j, "the manifest");
  DatasetManifest m;
  const json* format = f.find(j, "format");
  if (!format) fail("dataset", "{}: no \"format\" (expected \"{}\")", where, kDatasetManifestFormat);
  if (!format->is_string() || format->get<std::string>() != kDatasetManifestFormat)
    fail("dataset", "{}: \"format\" is not \"{}\"", where, kDatasetManifestFormat);
  const json* splits = f.find(j, "splits");
  if (!splits) fail("dataset", "{}: no \"splits\"", where);
  f.objects(*splits, "\"splits\"", [&](const std::string& name, const json& sj, const std::string& p) {
    DatasetSplit& s = m.splits[name];
    f.str(sj, p, "records", s.records);
    f.count(sj, p, "records_count", s.records_count);
    f.str(sj, p, "records_hash", s.records_hash);
    f.strings(sj, p, "shards", s.shards);
    f.strings(sj, p, "shard_hashes", s.shard_hashes);
    f.count(sj, p, "sequences", s.sequences);
    f.count(sj, p, "tokens", s.tokens);
    f.count(sj, p, "label_tokens", s.label_tokens);
    f.flag(sj, p, "packed", s.packed);
    f.count(sj, p, "bins", s.bins);
  });
  if (const json* c = f.find(j, "config")) m.config = f.object(*c, "\"config\"");
  if (const json* t = f.find(j, "tokenizer")) {
    f.object(*t, "\"tokenizer\"");
    m.tokenizer.emplace();
    f.str(*t, "\"tokenizer\"", "source", m.tokenizer->source);
    f.str(*t, "\"tokenizer\"", "hash", m.tokenizer->hash);
  }
  f.str(j, "", "chat_template", m.chat_template);
  f.str(j, "", "preference", m.preference);
  if (!m.preference.empty() && m.preference != "paired" && m.preference != "unpaired")
    fail("dataset", "{}: \"preference\" must be \"paired\" or \"unpaired\", got \"{}\"", where, m.preference);
  if (const json* in = f.find(j, "inputs")) {
    if (!in->is_array()) f.bad("\"inputs\"", "a list");
    for (size_t i = 0; i < in->size(); i++) {
      const std::string p = fmt::format("\"inputs\"[{}]", i);
      const json& ij = f.object((*in)[i], p);
      DatasetInputFile& x = m.inputs.emplace_back();
      f.str(ij, p, "path", x.path);
      f.str(ij, p, "hash", x.hash);
      f.str(ij, p, "format", x.format);
      f.count(ij, p, "records", x.records);
    }
  }
  if (const json* c = f.find(j, "counts")) {
    f.objects(*c, "\"counts\"", [&](const std::string& stage, const json& cj, const std::string& p) {
      DatasetStageTotals& t = m.counts[stage];
      f.count(cj, p, "in", t.in);
      f.count(cj, p, "out", t.out);
      if (const json* d = f.find(cj, "dropped")) {
        const std::string dp = Fields::name(p, "dropped");
        f.object(*d, dp);
        for (auto& [reason, n] : d->items()) {
          uint64_t v = 0;
          f.count(*d, dp, reason.c_str(), v);
          t.dropped[reason] = v;
        }
      }
    });
  }
  f.str(j, "", "content_hash", m.content_hash);
  return m;
}

const DatasetSplit* DatasetManifest::split(const std::string& name) const {
  auto it = splits.find(name);
  return it == splits.end() ? nullptr : &it->second;
}

std::string dataset_manifest_path(const std::string& dir) { return dir + "/manifest.json"; }

bool has_dataset_manifest(const std::string& dir) { return std::filesystem::exists(dataset_manifest_path(dir)); }

DatasetManifest read_dataset_manifest(const std::string& dir) {
  const std::string path = dataset_manifest_path(dir);
  if (!std::filesystem::exists(path)) fail("dataset", "{}: a directory without manifest.json is not a prepared dataset", dir);
  return DatasetManifest::from_json(read_json_file_bounded(path, "dataset"), path);
}

void write_dataset_manifest(const std::string& dir, const DatasetManifest& m) {
  write_file_atomic(dataset_manifest_path(dir), m.to_json().dump(2) + "\n");
}

std::string dataset_file(const std::string& dir, const std::string& name) {
  std::filesystem::path p(name);
  return (p.is_relative() ? std::filesystem::path(dir) / p : p).string();
}

}  // namespace lathe
