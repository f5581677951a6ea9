#include "lathe/eval/report.h"

#include <algorithm>
#include <cmath>

#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/eval/decision.h"

namespace lathe::eval {

using ojson = nlohmann::ordered_json;

std::vector<GateFailure> evaluate_gates(const EvalRun& run, const Gates& gates) {
  std::vector<GateFailure> out;
  bool any_adapter = false;
  for (auto& v : run.variants) any_adapter = any_adapter || v.kind == "adapter";
  for (auto& v : run.variants) {
    if (!gates.variants.empty()) {
      if (std::find(gates.variants.begin(), gates.variants.end(), v.name) == gates.variants.end()) continue;
    } else if (any_adapter ? v.kind != "adapter" : v.kind != "base") {
      continue;
    }
    std::vector<std::string> failing;
    for (size_t i = 0; i < v.cases.size(); i++)
      if (!v.cases[i].pass) failing.push_back(run.suite.cases[i].id);
    if (gates.min_pass_rate >= 0 && v.pass_rate < gates.min_pass_rate)
      out.push_back({v.name, "min_pass_rate", v.pass_rate, gates.min_pass_rate, failing});
    // The base's forgetting is 0 by definition; only adapters can forget.
    if (gates.max_forgetting >= 0 && v.kind == "adapter" && v.forgetting && *v.forgetting > gates.max_forgetting)
      out.push_back({v.name, "max_forgetting", *v.forgetting, gates.max_forgetting, {}});
  }
  return out;
}

ojson read_training_curve(const std::string& path) {
  ojson rows = ojson::array();
  if (!file_exists(path)) return rows;
  JsonlReader in(path, "eval");
  std::string line;
  while (in.next_line(line)) {
    ojson j;
    if (!try_parse_json_bounded(line, j) || !j.is_object() || !j.contains("step")) continue;  // a torn last line
    ojson r;
    r["step"] = j["step"];
    for (const char* k : {"loss", "eval_loss", "lr"})
      if (j.contains(k) && j[k].is_number()) r[k] = j[k];
    if (r.size() > 1) rows.push_back(r);
  }
  return rows;
}

ojson read_training_summary(const std::string& path) {
  ojson last;
  if (!file_exists(path)) return last;
  JsonlReader in(path, "eval");
  std::string line;
  while (in.next_line(line)) {
    ojson j;
    if (try_parse_json_bounded(line, j) && j.is_object() && j.contains("trainable_params")) last = j;
  }
  return last;
}

static ojson ppl_json(const std::optional<PerplexityResult>& p) {
  if (!p) return nullptr;
  return ojson{{"tokens", p->tokens}, {"nll", p->nll}, {"ppl", p->ppl}};
}

ojson report_json(const EvalRun& run, const ReportInputs& in) {
  const EvalSuite& s = run.suite;
  ojson r;
  r["format"] = "lathe-eval-report-v1";
  ojson gen{{"max_new_tokens", s.generation.max_new_tokens}, {"temperature", s.generation.temperature},
            {"top_k", s.generation.top_k},  {"top_p", s.generation.top_p},
            {"seed", s.generation.seed},    {"stop", s.generation.stop},
            {"template", s.generation.template_name}, {"template_used", run.template_used}};
  ojson shots = ojson::array();
  for (auto& f : s.baseline.few_shot) shots.push_back({{"prompt", f.prompt}, {"response", f.response}});
  r["suite"] = {{"name", s.name}, {"source", s.source}, {"cases", s.cases.size()}, {"generation", gen},
                {"baseline", {{"system", s.baseline.system}, {"few_shot", shots}}}};
  ojson adapters = ojson::array();
  for (auto& [name, dir] : run.options.adapters) {
    ojson a{{"name", name}, {"dir", dir}};
    if (file_exists(dir + "/adapter_config.json")) {
      ojson cfg;
      if (try_parse_json_bounded(read_file(dir + "/adapter_config.json"), cfg)) a["adapter_config"] = cfg;
    }
    adapters.push_back(a);
  }
  const RunOptions& o = run.options;
  r["config"] = {{"model", o.model_path}, {"adapters", adapters},  {"eval_data", o.eval_data},
                 {"train_data", o.train_data}, {"holdout", o.holdout}, {"reference", run.reference},
                 {"command", in.command_line}};
  ojson vars = ojson::array();
  for (auto& v : run.variants) {
    ojson tags = ojson::object();
    for (auto& [t, st] : v.tags)
      tags[t] = {{"cases", st.cases}, {"passed", st.passed}, {"pass_rate", double(st.passed) / st.cases}};
    vars.push_back({{"name", v.name},
                    {"kind", v.kind},
                    {"adapter_dir", v.adapter_dir},
                    {"cases", v.cases.size()},
                    {"passed", v.passed},
                    {"pass_rate", v.pass_rate},
                    {"weighted_pass_rate", v.weighted_pass_rate},
                    {"weighted_score", v.weighted_score},
                    {"tags", tags},
                    {"validation", ppl_json(v.validation)},
                    {"holdout", ppl_json(v.holdout)},
                    {"forgetting", v.forgetting ? ojson(*v.forgetting) : ojson(nullptr)},
                    {"fixed_vs_reference", v.name == run.reference ? ojson(nullptr) : ojson(v.fixed)},
                    {"broken_vs_reference", v.name == run.reference ? ojson(nullptr) : ojson(v.broken)},
                    {"seconds", v.seconds},
                    {"mean_prompt_tokens", v.mean_prompt_tokens},
                    {"mean_new_tokens", v.mean_new_tokens},
                    {"mean_latency_s", v.mean_latency_s},
                    {"pass_given_hit", v.pass_given_hit ? ojson(*v.pass_given_hit) : ojson(nullptr)}});
  }
  r["variants"] = vars;
  ojson cases = ojson::array();
  int contaminated = 0;
  for (size_t i = 0; i < s.cases.size(); i++) {
    const EvalCase& c = s.cases[i];
    ojson cj{{"id", c.id}, {"where", c.where}};
    if (c.messages.is_null())
      cj["prompt"] = c.prompt;
    else
      cj["messages"] = c.messages;
    cj["system"] = c.system;
    cj["expected"] = c.has_expected ? ojson(c.expected) : ojson(nullptr);
    cj["tags"] = c.tags;
    cj["weight"] = c.weight;
    const Contamination& ct = run.contamination[i];
    contaminated += ct.flagged;
    cj["contaminated"] = ct.flagged;
    if (ct.flagged) cj["contamination_source"] = ct.source;
    ojson res = ojson::object();
    for (auto& v : run.variants) {
      const CaseOutput& co = v.cases[i];
      ojson as = ojson::array();
      for (auto& a : co.results)
        as.push_back({{"type", a.type}, {"pass", a.pass}, {"score", a.score}, {"detail", a.detail}});
      res[v.name] = {{"pass", co.pass},           {"score", co.score},
                     {"output", co.output},       {"prompt_text", co.prompt_text},
                     {"prompt_tokens", co.prompt_tokens}, {"new_tokens", co.new_tokens},
                     {"finish_reason", co.finish_reason}, {"assertions", as}};
      if (v.uses_retrieval()) res[v.name]["passages_used"] = co.passages_used;
      if (!co.overrule.is_null()) res[v.name]["overrule"] = co.overrule;
    }
    cj["results"] = res;
    if (i < run.retrieval.size()) {
      const CaseRetrieval& cr = run.retrieval[i];
      ojson ps = ojson::array();
      for (auto& h : cr.hits) ps.push_back({{"source", h.source}, {"score", h.score}, {"text", h.text}});
      cj["retrieval"] = {{"query", cr.query},
                         {"has_key", cr.has_key},
                         {"hit", cr.hit_rank > 0},
                         {"hit_rank", cr.hit_rank},
                         {"seconds", cr.seconds},
                         {"passages", ps}};
    }
    cases.push_back(cj);
  }
  r["contaminated_cases"] = contaminated;
  if (!run.retrieval_index.empty()) {
    std::vector<double> hk = hit_at_k(run.retrieval, run.retrieval_k);
    int with_key = 0;
    double secs = 0;
    std::vector<double> lat;
    for (auto& c : run.retrieval) {
      with_key += c.has_key;
      lat.push_back(c.seconds);
    }
    std::sort(lat.begin(), lat.end());
    for (double x : lat) secs += x;
    r["retrieval"] = {{"index", run.retrieval_index},
                      {"k", run.retrieval_k},
                      {"cases_with_key", with_key},
                      {"hit_at_k", hk},
                      {"latency_ms_mean", lat.empty() ? 0.0 : 1e3 * secs / double(lat.size())},
                      {"latency_ms_p50", lat.empty() ? 0.0 : 1e3 * lat[lat.size() / 2]},
                      {"latency_ms_max", lat.empty() ? 0.0 : 1e3 * lat.back()}};
  }
  r["decision"] = decision_json(run, in.gates);
  r["cases"] = cases;
  ojson curves = ojson::object();
  for (auto& [name, path] : in.train_metrics) curves[name] = {{"path", path}, {"rows", read_training_curve(path)}};
  r["training_curves"] = curves;
  // What each tuned variant cost to train (the trainer's last metrics row), next to what it scored:
  // the comparison of methods (LoRA, DoRA, IA3, prompt tuning, ...) on the same cases.
  ojson methods = ojson::array();
  for (auto& [name, path] : in.train_metrics) {
    ojson t = read_training_summary(path);
    if (t.is_null()) continue;
    ojson m{{"variant", name}};
    std::string method = t.value("method", std::string("?"));
    if (t.value("use_dora", false)) method += " + DoRA";
    m["method"] = method;
    for (const char* k : {"trainable_params", "all_params", "train_tokens_per_second", "peak_rss_mib", "train_runtime",
                          "train_tokens"})
      m[k] = t.value(k, ojson());
    if (m["trainable_params"].is_number() && m["all_params"].is_number() && m["all_params"].get<double>() > 0)
      m["trainable_percent"] = 100.0 * m["trainable_params"].get<double>() / m["all_params"].get<double>();
    for (const auto& v : r["variants"])
      if (v.value("name", std::string()) == name) m["pass_rate"] = v["pass_rate"];
    methods.push_back(m);
  }
  r["training_cost"] = methods;
  ojson fails = ojson::array();
  for (auto& f : in.gate_failures)
    fails.push_back({{"variant", f.variant}, {"gate", f.gate}, {"value", f.value}, {"limit", f.limit},
                     {"failing_cases", f.failing_cases}});
  r["gate"] = {{"min_pass_rate", in.gates.min_pass_rate >= 0 ? ojson(in.gates.min_pass_rate) : ojson(nullptr)},
               {"max_forgetting", in.gates.max_forgetting >= 0 ? ojson(in.gates.max_forgetting) : ojson(nullptr)},
               {"passed", in.gate_failures.empty()},
               {"failures", fails}};
  return r;
}

}  // namespace lathe::eval
