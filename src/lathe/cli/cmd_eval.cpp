// lathe eval: run a test suite on the base model, a prompt-engineering baseline and each adapter,
// write report.json + report.html, and gate: exit status 3 when --min-pass-rate / --max-forgetting
// (or the suite's gates) fail, with the failing cases listed on stderr. Errors exit 1 as elsewhere.
#include <cstdio>
#include <filesystem>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/strings.h"
#include "lathe/eval/eval_options.h"
#include "lathe/eval/overrules.h"
#include "lathe/eval/report.h"
#include "lathe/eval/runner.h"

namespace {

namespace fs = std::filesystem;

std::pair<std::string, std::string> split_named(const std::string& s, const char* flag) {
  size_t eq = s.find('=');
  if (eq == std::string::npos) {  // DIR alone: the directory's name names the variant
    std::string name = fs::path(s).filename().string();
    if (name.empty()) name = fs::path(s).parent_path().filename().string();
    return {name, s};
  }
  if (eq == 0 || eq + 1 == s.size()) lathe::fail("eval", "{} {}: expected NAME=PATH", flag, s);
  return {s.substr(0, eq), s.substr(eq + 1)};
}

std::function<int()> setup(CLI::App& app) {
  const auto& table = lathe::eval::eval_options_table();
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, table);
  return [flags, &table] {
    // defaults < LATHE_* environment < flags (eval/eval_options.h)
    auto o = std::make_shared<lathe::eval::EvalCommandOptions>();
    table.apply(*o, flags->overrides());
    table.check(*o);
    lathe::cli::apply_threads(o->threads);
    lathe::eval::EvalSuite suite = lathe::eval::load_suite(o->tests);
    if (o->min_pass_rate >= 0) suite.gates.min_pass_rate = o->min_pass_rate;
    if (o->max_forgetting >= 0) suite.gates.max_forgetting = o->max_forgetting;
    if (!o->gate_variants.empty())
      for (auto& v : lathe::split_list(o->gate_variants))
        if (!v.empty()) suite.gates.variants.push_back(v);
    for (auto& a : o->adapters) o->run.adapters.push_back(split_named(a, "--adapter"));
    o->run.progress = !o->json;

    lathe::eval::EvalRun run = lathe::eval::run_eval(suite, o->run);
    if (!o->overrules.empty()) {  // reviewers' verdicts (lathe ui): before the gates, which count them
      for (auto& u : lathe::eval::apply_overrules(run, lathe::eval::load_overrules(o->overrules)))
        std::fprintf(stderr, "lathe eval: %s: overrule of case '%s' for variant '%s' matches nothing in this run\n",
                     o->overrules.c_str(), u["case"].get<std::string>().c_str(), u["variant"].get<std::string>().c_str());
    }

    lathe::eval::ReportInputs in;
    in.gates = suite.gates;
    in.gate_failures = lathe::eval::evaluate_gates(run, suite.gates);
    for (auto& t : o->train_metrics) in.train_metrics.push_back(split_named(t, "--train-metrics"));
    for (auto& [name, dir] : o->run.adapters) {
      bool given = false;
      for (auto& [n, p] : in.train_metrics) given = given || n == name || p == dir + "/metrics.jsonl";
      if (!given && lathe::file_exists(dir + "/metrics.jsonl")) in.train_metrics.emplace_back(name, dir + "/metrics.jsonl");
    }
    in.command_line = "lathe eval --model " + o->run.model_path + " --tests " + o->tests;
    for (auto& a : o->adapters) in.command_line += " --adapter " + a;
    if (!o->run.eval_data.empty()) in.command_line += " --eval-data " + o->run.eval_data;
    if (!o->run.holdout.empty()) in.command_line += " --holdout " + o->run.holdout;
    if (!o->run.retrieval.empty()) in.command_line += " --retrieval " + o->run.retrieval;
    if (!o->overrules.empty()) in.command_line += " --overrules " + o->overrules;
    in.command_line += " --output " + o->output;

    nlohmann::ordered_json report = lathe::eval::report_json(run, in);
    fs::create_directories(o->output);
    lathe::write_file_atomic(o->output + "/report.json", report.dump(2) + "\n");
    lathe::write_file_atomic(o->output + "/report.html", lathe::eval::report_html(report));

    if (o->json) {
      nlohmann::ordered_json s;
      s["variants"] = nlohmann::ordered_json::array();
      for (auto& v : report["variants"])
        s["variants"].push_back({{"name", v["name"]}, {"pass_rate", v["pass_rate"]}, {"weighted_score", v["weighted_score"]},
                                 {"forgetting", v["forgetting"]}});
      s["gate"] = report["gate"];
      s["report"] = o->output + "/report.html";
      std::printf("%s\n", s.dump().c_str());
    } else {
      std::printf("%-14s %9s %9s %9s %12s %12s\n", "variant", "passed", "score", "val ppl", "holdout ppl", "forgetting");
      for (auto& v : run.variants)
        std::printf("%-14s %4d/%-4zu %9.3f %9s %12s %12s\n", v.name.c_str(), v.passed, v.cases.size(), v.weighted_score,
                    v.validation ? fmt::format("{:.3f}", v.validation->ppl).c_str() : "-",
                    v.holdout ? fmt::format("{:.3f}", v.holdout->ppl).c_str() : "-",
                    v.forgetting ? fmt::format("{:+.1f}%", 100 * *v.forgetting).c_str() : "-");
      if (report.contains("retrieval")) {
        const auto& rt = report["retrieval"];
        std::string hk;
        int j = 1;
        for (auto& x : rt["hit_at_k"]) hk += fmt::format(" @{} {:.1f}%", j++, 100 * x.get<double>());
        std::printf("retrieval: %s, hit@k over %d cases with a key:%s; search %.1f ms p50\n",
                    rt["index"].get<std::string>().c_str(), rt["cases_with_key"].get<int>(), hk.c_str(),
                    rt["latency_ms_p50"].get<double>());
      }
      const auto& d = report["decision"];
      std::printf("decision: %s\n  %s\n",
                  d["overall"]["choice"].is_null() ? "no variant passes"
                                                   : ("choose " + d["overall"]["choice"].get<std::string>()).c_str(),
                  d["summary"].get<std::string>().c_str());
      for (auto& fr : d["feedback_rounds"]) {
        auto ids = [](const nlohmann::ordered_json& a) {
          std::string s;
          for (auto& c : a) s += (s.empty() ? "" : " ") + c.get<std::string>();
          return s.empty() ? std::string("-") : s;
        };
        std::printf("round %s on %s: fixed %zu: %s\n  broke %zu: %s\n", fr["variant"].get<std::string>().c_str(),
                    fr["parent"].get<std::string>().c_str(), fr["fixed"].size(), ids(fr["fixed"]).c_str(),
                    fr["broken"].size(), ids(fr["broken"]).c_str());
      }
      std::printf("report: %s/report.html\n", o->output.c_str());
    }
    std::fflush(stdout);
    if (!in.gate_failures.empty()) {
      for (auto& f : in.gate_failures) {
        std::fprintf(stderr, "lathe eval: gate failed: %s %s = %.4f (limit %.4f)\n", f.variant.c_str(), f.gate.c_str(),
                     f.value, f.limit);
        for (auto& id : f.failing_cases) std::fprintf(stderr, "  failing case: %s\n", id.c_str());
      }
      return 3;
    }
    return 0;
  };
}
LATHE_COMMAND("eval", "Evaluate base, prompting and adapters on test cases; report and CI gate", setup);

}  // namespace
