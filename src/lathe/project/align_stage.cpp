#include "lathe/project/align_stage.h"

#include <cstdio>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/eval/test_suite.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe::project {

namespace {

// The user turns of a message list, or a string as it stands (a string prompt is one user turn).
void user_texts(const json& v, std::vector<std::string>& out) {
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& m : v)
      if (m.is_object() && m.value("role", "") == "user" && m.contains("content") && m["content"].is_string())
        out.push_back(m["content"].get<std::string>());
  }
}

// Every text a person wrote in a field: a string, or the contents of a message list.
void all_texts(const json& v, std::string& out) {
  auto add = [&out](const std::string& s) { out += (out.empty() ? "" : "\n") + s; };
  if (v.is_string()) add(v.get<std::string>());
  else if (v.is_array())
    for (const auto& m : v)
      if (m.is_object() && m.contains("content") && m["content"].is_string()) add(m["content"].get<std::string>());
}

bool text_or_messages(const json& v) { return v.is_string() || v.is_array(); }

enum class Kind { Paired, Unpaired, PairedIds, UnpairedIds };

// The record's shape, as preference_data.h lists them; throws a message without the place.
Kind shape_of(const json& r) {
  if (!r.is_object()) throw std::runtime_error("expected a JSON object");
  if (r.contains("chosen_input_ids") || r.contains("rejected_input_ids")) {
    for (const char* k : {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids"})
      if (!r.contains(k) || !r[k].is_array()) throw std::runtime_error(fmt::format("'{}' must be a list of token ids", k));
    return Kind::PairedIds;
  }
  if (r.contains("completion_input_ids")) {
    if (!r.contains("label") || !r["label"].is_boolean()) throw std::runtime_error("'label' must be true or false");
    return Kind::UnpairedIds;
  }
  if (r.contains("chosen") || r.contains("rejected")) {
    for (const char* k : {"chosen", "rejected"})
      if (!r.contains(k) || !text_or_messages(r[k]))
        throw std::runtime_error(fmt::format("'{}' must be a string or a list of messages", k));
    if (r.contains("prompt") && !text_or_messages(r["prompt"]))
      throw std::runtime_error("'prompt' must be a string or a list of messages");
    return Kind::Paired;
  }
  if (r.contains("completion") || r.contains("label")) {
    if (!r.contains("prompt") || !text_or_messages(r["prompt"]))
      throw std::runtime_error("'prompt' must be a string or a list of messages");
    if (!r.contains("completion") || !text_or_messages(r["completion"]))
      throw std::runtime_error("'completion' must be a string or a list of messages");
    if (!r.contains("label") || !r["label"].is_boolean()) throw std::runtime_error("'label' must be true or false");
    return Kind::Unpaired;
  }
  std::string fields;
  for (auto it = r.begin(); it != r.end(); ++it) fields += (fields.empty() ? "" : ", ") + it.key();
  throw std::runtime_error(fmt::format(
      "not a preference record (fields: {}); expected {{\"prompt\",\"chosen\",\"rejected\"}}, {{\"chosen\",\"rejected\"}} "
      "or {{\"prompt\",\"completion\",\"label\"}} (or their *_input_ids forms)",
      fields.empty() ? "none" : fields));
}

std::string snippet(const std::string& s, size_t n = 80) {
  if (s.size() <= n) return s;
  size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;  // not inside a UTF-8 character
  return s.substr(0, cut) + "...";
}

}  // namespace

std::vector<std::string> project_eval_prompts(const ProjectConfig& cfg) {
  std::vector<std::string> prompts;
  if (!cfg.has("eval")) return prompts;
  const YAML::Node& ev = cfg.root["eval"];
  eval::EvalSuite suite;
  if (ev.IsMap() && ev["suite"]) {
    suite = eval::load_suite(cfg.resolve(ev["suite"].Scalar()));
  } else {
    // The inline suite as the eval stage hands it on (project_schema.cpp checked it the same way).
    YAML::Node s = YAML::Clone(ev);
    s.remove("holdout");
    YAML::Emitter em;
    em << s;
    suite = eval::parse_suite_yaml(em.c_str(), cfg.path, cfg.dir);
  }
  for (const auto& c : suite.cases) {
    if (c.messages.is_null()) prompts.push_back(c.prompt);
    else user_texts(json::parse(c.messages.dump()), prompts);
  }
  return prompts;
}

ContaminationPolicy project_contamination_policy(const ProjectConfig& cfg) {
  ContaminationPolicy p;
  if (!cfg.has("data")) return p;
  const YAML::Node& d = cfg.root["data"]["dedup"];
  if (!d || !d.IsMap()) return p;
  if (d["threshold"]) p.minhash.threshold = d["threshold"].as<double>();
  if (d["ngram"]) p.minhash.ngram = d["ngram"].as<int>();
  if (d["contamination_action"]) p.action = d["contamination_action"].Scalar();
  return p;
}

AlignDataSummary gather_align_data(const std::vector<std::string>& files, const std::vector<std::string>& names,
                                   const std::string& method, const std::vector<std::string>& eval_prompts,
                                   const ContaminationPolicy& policy, const std::string& output) {
  LATHE_CHECK(files.size() == names.size(), "gather_align_data: {} files, {} names", files.size(), names.size());
  struct Rec {
    std::string line, where;
    size_t source;
  };
  std::vector<Rec> recs;
  // Texts compared with the eval prompts, each pointing at its record: every user turn alone (what
  // `lathe eval` compares) and the whole record (what the prepare stage compares).
  std::vector<std::string> texts;
  std::vector<size_t> text_rec;
  AlignDataSummary sum;
  bool paired_method = method == "dpo" || method == "orpo";
  for (size_t f = 0; f < files.size(); f++) {
    sum.sources.push_back({names[f], 0, 0});
    JsonlReader in(files[f], "project");
    std::string line;
    while (in.next_line(line)) {
      const std::string where = fmt::format("{}:{}", names[f], in.line());
      json r;
      if (!try_parse_json_bounded(line, r)) fail("project", "{}: align.data: not valid JSON", where);
      Kind k;
      try {
        k = shape_of(r);
      } catch (const std::runtime_error& e) {
        fail("project", "{}: align.data: {}", where, e.what());
      }
      if (paired_method && (k == Kind::Unpaired || k == Kind::UnpairedIds))
        fail("project", "{}: align.data: an unpaired {{\"prompt\",\"completion\",\"label\"}} record; method {} needs pairs "
                        "{{\"prompt\",\"chosen\",\"rejected\"}} (kto reads both)", where, method);
      sum.sources.back().records++;
      const size_t idx = recs.size();
      recs.push_back({line, where, f});
      if (k == Kind::PairedIds || k == Kind::UnpairedIds) {
        sum.pretokenized++;
        continue;
      }
      std::vector<std::string> prompts;
      if (r.contains("prompt")) user_texts(r["prompt"], prompts);
      else user_texts(r["chosen"], prompts);  // implicit prompt: the conversations' shared opening
      std::string whole;
      for (const char* key : {"prompt", "chosen", "rejected", "completion"})
        if (r.contains(key)) all_texts(r[key], whole);
      for (auto& p : prompts) {
        texts.push_back(std::move(p));
        text_rec.push_back(idx);
      }
      texts.push_back(std::move(whole));
      text_rec.push_back(idx);
    }
  }
  sum.records = int64_t(recs.size());
  std::vector<int64_t> match(recs.size(), -1);
  if (!eval_prompts.empty() && !texts.empty()) {
    std::vector<std::string_view> tv(texts.begin(), texts.end()), pv(eval_prompts.begin(), eval_prompts.end());
    const std::vector<int64_t> m = data::contamination_matches(tv, pv, policy.minhash);
    for (size_t t = 0; t < m.size(); t++)
      if (m[t] >= 0 && match[text_rec[t]] < 0) match[text_rec[t]] = m[t];
  }
  std::string out;
  for (size_t i = 0; i < recs.size(); i++) {
    if (match[i] >= 0) {
      sum.contaminated++;
      if (sum.examples.size() < 10)
        sum.examples.push_back(fmt::format("{}: matches eval prompt \"{}\"", recs[i].where,
                                           snippet(eval_prompts[size_t(match[i])])));
      if (policy.action == "drop") continue;
    }
    out += recs[i].line;
    out += '\n';
    sum.kept++;
    sum.sources[recs[i].source].kept++;
  }
  fs::create_directories(fs::path(output).parent_path());
  write_file_atomic(output, out);
  return sum;
}

void report_align_data(const AlignDataSummary& sum, const ContaminationPolicy& policy, const std::string& path) {
  for (const auto& s : sum.sources)
    std::printf("align: %lld of %lld record(s) from %s\n", (long long)s.kept, (long long)s.records, s.file.c_str());
  if (sum.contaminated > 0) {
    std::printf("align: %lld record(s) repeat an evaluation prompt (%s, data.dedup.contamination_action):\n",
                (long long)sum.contaminated, policy.action == "drop" ? "dropped" : "kept: report");
    for (const auto& e : sum.examples) std::printf("  %s\n", e.c_str());
  }
  if (sum.pretokenized > 0)
    std::printf("align: %lld pre-tokenized record(s) not checked against the evaluation prompts\n",
                (long long)sum.pretokenized);
  std::fflush(stdout);
  nlohmann::ordered_json rep = {{"records", sum.records},          {"kept", sum.kept},
                                {"contaminated", sum.contaminated}, {"contamination_action", policy.action},
                                {"examples", sum.examples},         {"pretokenized", sum.pretokenized},
                                {"sources", nlohmann::ordered_json::array()}};
  for (const auto& s : sum.sources) rep["sources"].push_back({{"file", s.file}, {"records", s.records}, {"kept", s.kept}});
  write_file_atomic(path, rep.dump(2) + "\n");
}

}  // namespace lathe::project
