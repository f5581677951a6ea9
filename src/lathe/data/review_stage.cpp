#include "lathe/data/review_stage.h"

#include <set>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"

namespace lathe::data {

using nlohmann::json;

json load_review(const std::string& path) {
  json r;
  try {
    r = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("data", "{}: not a review file (invalid JSON: {})", path, e.what());
  }
  if (!r.is_object() || r.value("format", "") != "lathe-data-review-v1")
    fail("data", "{}: not a review file (expected \"format\": \"lathe-data-review-v1\")", path);
  if (!r.contains("decisions") || !r["decisions"].is_object()) fail("data", "{}: \"decisions\" must be an object", path);
  for (auto it = r["decisions"].begin(); it != r["decisions"].end(); ++it) {
    const json& d = it.value();
    const std::string a = d.is_object() ? d.value("action", "") : "";
    if (a != "approve" && a != "edit" && a != "reject" && a != "label")
      fail("data", "{}: decision {}: action must be approve, edit, reject or label", path, it.key());
    if (a == "edit" && !(d.contains("record") && d["record"].is_object() &&
                         (d["record"].contains("messages") || d["record"].contains("text") ||
                          d["record"].contains("prompt") || d["record"].contains("chosen"))))
      fail("data", "{}: decision {}: an edit needs \"record\" with messages, text, prompt or chosen", path, it.key());
    if (d.contains("labels") && !d["labels"].is_array()) fail("data", "{}: decision {}: labels must be a list", path, it.key());
  }
  return r;
}

StageCounts review_stage(std::vector<Record>& recs, const json& review, const std::string& path, json& summary,
                         std::vector<char>* edited_flags) {
  StageCounts c("review");
  c.in = recs.size();
  const json& dec = review["decisions"];
  int approved = 0, edited = 0, rejected = 0, labelled = 0;
  json labels = json::object();
  std::set<std::string> matched;
  std::vector<Record> kept;
  kept.reserve(recs.size());
  if (edited_flags) edited_flags->clear();
  for (Record& r : recs) {
    auto it = dec.find(r.id);
    if (it == dec.end()) {
      kept.push_back(std::move(r));
      if (edited_flags) edited_flags->push_back(0);
      continue;
    }
    matched.insert(r.id);
    const json& d = *it;
    const std::string a = d["action"];
    const std::string who = d.value("reviewer", "");
    if (d.contains("labels") && !d["labels"].empty()) {
      labelled++;
      for (auto& l : d["labels"])
        if (l.is_string()) labels[l.get<std::string>()] = labels.value(l.get<std::string>(), 0) + 1;
    }
    if (a == "reject") {
      rejected++;
      c.drop("rejected by reviewer", r.source.where() + ": " + (who.empty() ? "" : who + ": ") + d.value("reason", ""));
      continue;
    }
    if (a == "edit") {
      // The edited record replaces the mapped one; its own _id/_source (if the page sent them back) are not its content.
      json rec = d["record"];
      rec.erase("_id");
      rec.erase("_source");
      r.json = std::move(rec);
      edited++;
    } else if (a == "approve") {
      approved++;
    }
    kept.push_back(std::move(r));
    if (edited_flags) edited_flags->push_back(a == "edit");
  }
  recs = std::move(kept);
  c.out = recs.size();
  json unmatched = json::array();
  for (auto it = dec.begin(); it != dec.end(); ++it)
    if (!matched.count(it.key())) unmatched.push_back(it.key());
  summary = {{"file", path},         {"decisions", dec.size()}, {"approved", approved}, {"edited", edited},
             {"rejected", rejected}, {"labelled", labelled},    {"labels", labels},     {"unmatched", unmatched}};
  return c;
}

}  // namespace lathe::data
