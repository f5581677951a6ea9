#include "lathe/ui/ui_review.h"

#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/data/record.h"
#include "lathe/data/review_stage.h"
#include "lathe/eval/overrules.h"
#include "lathe/project/run_registry.h"

namespace lathe::ui {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json_or(const std::string& path, json dflt) {
  if (!fs::exists(path)) return dflt;
  json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded()) fail("ui", "{}: invalid JSON; fix or remove the file", path);
  return j;
}

std::string where_of(const json& src) {
  if (!src.is_object()) return "";
  data::Source s;
  s.file = src.value("file", "");
  s.line = src.value("line", int64_t(0));
  s.page = src.value("page", int64_t(0));
  s.item = src.value("item", int64_t(0));
  return s.where();
}

json load_decisions(const project::ProjectPaths& p) {
  json r = read_json_or(p.data_review, json{{"format", "lathe-data-review-v1"}, {"decisions", json::object()}});
  if (fs::exists(p.data_review)) data::load_review(p.data_review);  // the same checks the prepare stage makes
  return r;
}

// The record as the review page showed it, for a decision (a rejected record leaves records.jsonl).
json find_record(const project::ProjectPaths& p, const std::string& id) {
  for (const char* split : {"train", "validation", "test"}) {
    std::ifstream f(p.data + "/" + split + ".records.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      if (line.find(id) == std::string::npos) continue;
      json r = json::parse(line, nullptr, false);
      if (r.is_object() && r.value("_id", "") == id) return r;
    }
  }
  return nullptr;
}

}  // namespace

json data_review_view(const project::ProjectPaths& p, size_t max_records) {
  json out{{"prepared", fs::exists(p.data + "/manifest.json")}, {"records", json::array()}, {"truncated", false}};
  for (const char* split : {"train", "validation", "test"}) {
    std::ifstream f(p.data + "/" + split + ".records.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      if (out["records"].size() >= max_records) {
        out["truncated"] = true;
        break;
      }
      json r = json::parse(line, nullptr, false);
      if (!r.is_object()) continue;
      json rec = r;
      rec.erase("_id");
      rec.erase("_source");
      out["records"].push_back(
          {{"id", r.value("_id", "")}, {"split", split}, {"where", where_of(r.value("_source", json()))}, {"record", rec}});
    }
  }
  json rep = read_json_or(p.data + "/report.json", json::object());
  json stages = json::array();
  for (const auto& st : rep.value("stages", json::array()))
    if (st.is_object() && st.contains("dropped") && !st["dropped"].empty())
      stages.push_back({{"stage", st.value("stage", "")}, {"dropped", st["dropped"]}, {"examples", st.value("examples", json())}});
  out["report"] = {{"drops", stages},
                   {"pii", rep.value("pii", json())},
                   {"dedup", rep.value("dedup", json())},
                   {"review", rep.value("review", json())},
                   {"totals", rep.value("totals", json())}};
  out["decisions"] = load_decisions(p)["decisions"];
  return out;
}

json save_data_decision(const project::ProjectPaths& p, const json& body, const std::string& reviewer) {
  if (!body.is_object() || !body.contains("id") || !body["id"].is_string() || body["id"].get<std::string>().empty())
    fail("ui", "data decision: 'id' (a record's _id) is required");
  const std::string id = body["id"];
  const std::string action = body.value("action", "");
  if (action != "approve" && action != "edit" && action != "reject" && action != "label")
    fail("ui", "data decision {}: 'action' must be approve, edit, reject or label", id);
  json d{{"action", action}, {"reviewer", reviewer}, {"at", project::utc_now_iso()}};
  if (action == "edit") {
    if (!body.contains("record") || !body["record"].is_object())
      fail("ui", "data decision {}: an edit needs 'record' (the corrected record)", id);
    d["record"] = body["record"];
  }
  if (body.contains("labels")) {
    if (!body["labels"].is_array()) fail("ui", "data decision {}: 'labels' must be a list of strings", id);
    for (auto& l : body["labels"])
      if (!l.is_string() || l.get<std::string>().empty() || l.get<std::string>().size() > 64)
        fail("ui", "data decision {}: a label must be a string of 1 to 64 bytes", id);
    d["labels"] = body["labels"];
  }
  if (body.contains("reason")) {
    if (!body["reason"].is_string()) fail("ui", "data decision {}: 'reason' must be a string", id);
    d["reason"] = body["reason"];
  }
  json file = load_decisions(p);
  // Keep what the record was when first decided on: a rejected record is gone from records.jsonl after
  // the next run, and the page still shows it (to undo the decision).
  if (file["decisions"].contains(id) && file["decisions"][id].contains("original")) d["original"] = file["decisions"][id]["original"];
  else d["original"] = find_record(p, id);
  file["decisions"][id] = d;
  fs::create_directories(p.review_dir);
  const std::string text = file.dump(2) + "\n";
  write_file_atomic(p.data_review, text);
  data::load_review(p.data_review);  // what the prepare stage will read must pass its checks
  return d;
}

bool remove_data_decision(const project::ProjectPaths& p, const std::string& id) {
  json file = load_decisions(p);
  if (!file["decisions"].contains(id)) return false;
  file["decisions"].erase(id);
  write_file_atomic(p.data_review, file.dump(2) + "\n");
  return true;
}

json eval_review_view(const project::ProjectPaths& p) {
  json rep = read_json_or(p.eval + "/report.json", json());
  json out{{"evaluated", rep.is_object()}};
  if (rep.is_object()) {
    json vars = json::array();
    for (auto& v : rep.value("variants", json::array()))
      vars.push_back({{"name", v.value("name", "")}, {"kind", v.value("kind", "")}, {"passed", v.value("passed", 0)},
                      {"cases", v.value("cases", 0)}, {"pass_rate", v.value("pass_rate", 0.0)}});
    out["variants"] = vars;
    out["cases"] = rep.value("cases", json::array());
    out["gate"] = rep.value("gate", json());
  }
  out["overrules"] = read_json_or(p.eval_overrules, json{{"overrules", json::array()}})["overrules"];
  return out;
}

json save_overrule(const project::ProjectPaths& p, const json& body, const std::string& reviewer) {
  if (!body.is_object() || !body.contains("case") || !body["case"].is_string() || !body.contains("variant") ||
      !body["variant"].is_string())
    fail("ui", "overrule: 'case' and 'variant' (strings) are required");
  if (!body.contains("pass") || !body["pass"].is_boolean()) fail("ui", "overrule: 'pass' (true or false) is required");
  if (!body.contains("reason") || !body["reason"].is_string() || body["reason"].get<std::string>().empty())
    fail("ui", "overrule: a 'reason' is required");
  json file = read_json_or(p.eval_overrules, json{{"format", "lathe-eval-overrules-v1"}, {"overrules", json::array()}});
  json o{{"case", body["case"]},     {"variant", body["variant"]}, {"pass", body["pass"]},
         {"reason", body["reason"]}, {"reviewer", reviewer},       {"at", project::utc_now_iso()}};
  file["overrules"].push_back(o);
  fs::create_directories(p.review_dir);
  write_file_atomic(p.eval_overrules, file.dump(2) + "\n");
  eval::load_overrules(p.eval_overrules);  // what lathe eval will read must pass its checks
  return o;
}

}  // namespace lathe::ui
