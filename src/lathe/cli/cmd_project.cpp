// The project commands: `lathe init` scaffolds a project, `lathe run` executes its stages (skipping
// unchanged ones) and ends with the gate's verdict, `lathe runs` lists and compares past runs.
#include <cstdio>
#include <filesystem>
#include <map>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/project/project_config.h"
#include "lathe/project/run_registry.h"
#include "lathe/project/scaffold.h"
#include "lathe/project/stage_runner.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using namespace lathe::project;

std::string find_project_file(const std::string& given) {
  if (!given.empty()) return fs::is_directory(given) ? given + "/project.yaml" : given;
  return "project.yaml";
}

std::function<int()> setup_init(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto example = std::make_shared<std::string>();
  app.add_option("dir", *dir, "Directory to create the project in")->required();
  app.add_option("--example", *example, "Copy a bundled example project (e.g. acme-policy-qa)");
  return [=] {
    std::string file = init_project(*dir, *example);
    std::printf("created %s\nnext: cd %s && lathe run\n", file.c_str(), dir->c_str());
    return 0;
  };
}

// "base 0/38 (0%) · prompt 0/38 (0%) · tuned 22/38 (58%)": the line a user looks for after a run.
void print_pass_rates(const std::string& report) {
  if (!fs::exists(report)) return;
  try {
    ordered_json rep = lathe::read_ordered_json_file_bounded(report, "project");
    std::string line;
    for (const auto& v : rep.value("variants", ordered_json::array()))
      line += fmt::format("{}{} {}/{} ({:.0f}%)", line.empty() ? "" : " · ", v.value("name", "?"), v.value("passed", 0),
                          v.value("cases", 0), 100.0 * v.value("pass_rate", 0.0));
    if (!line.empty()) std::printf("  pass rates:   %s\n", line.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe run: cannot read %s: %s\n", report.c_str(), e.what());
  }
}

std::function<int()> setup_run(CLI::App& app) {
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, run_options_table());
  return [=] {
    RunCommandOptions o;
    run_options_table().apply(o, flags->overrides());  // defaults < LATHE_* environment < flags
    ProjectConfig cfg = load_project(find_project_file(o.config));
    RunOutcome r = run_project(cfg, o.run);
    ProjectPaths p = project_paths(cfg);
    std::printf("\nrun %lld of %s: %s\n", (long long)r.run_id, cfg.name.c_str(),
                r.exit_code == 3     ? "GATE FAILED"
                : r.exit_code != 0   ? "a stage failed"
                : r.verdict == "pass" ? "gate passed"
                : r.verdict == "incomplete" ? "done (not evaluated in this run)"
                                            : "done");
    if (r.verdict == "pass" || r.verdict == "fail" || r.verdict == "no-gate") print_pass_rates(p.eval + "/report.json");
    for (const char* f : {"/report.html"}) {
      if (fs::exists(p.data + f)) std::printf("  data report:  %s%s\n", p.data.c_str(), f);
      if (fs::exists(p.eval + f)) std::printf("  eval report:  %s%s\n", p.eval.c_str(), f);
    }
    if (fs::exists(p.export_dir)) std::printf("  exports:      %s\n", p.export_dir.c_str());
    std::printf("  run history:  lathe runs --config %s\n", cfg.path.c_str());
    return r.exit_code;
  };
}

// "a.b.c" → value, for comparing two runs' configs key by key.
void flatten(const ordered_json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j.dump();
  }
}

std::string pass_rates(const ordered_json& metrics) {
  // The eval summary lists variants with their pass rates; show "name=rate" for each.
  std::string s;
  auto add = [&](const std::string& name, const ordered_json& v) {
    if (v.is_object() && v.contains("pass_rate") && v["pass_rate"].is_number())
      s += fmt::format("{}{}={:.2f}", s.empty() ? "" : " ", name, v["pass_rate"].get<double>());
  };
  if (metrics.is_array())
    for (const auto& v : metrics) add(v.value("name", v.value("variant", "?")), v);
  else if (metrics.is_object())
    for (auto it = metrics.begin(); it != metrics.end(); ++it) add(it.key(), it.value());
  return s.empty() ? "-" : s;
}

std::function<int()> setup_runs(CLI::App& app) {
  auto config = std::make_shared<std::string>();
  auto compare = std::make_shared<std::vector<int64_t>>();
  auto json = std::make_shared<bool>(false);
  app.add_option("--config", *config, "The project file (default: ./project.yaml), or its directory");
  app.add_option("--compare", *compare, "Two run ids: show the config keys that differ and the metric changes")
      ->expected(2);
  app.add_flag("--json", *json, "Print the runs as JSON");
  return [=] {
    ProjectConfig cfg = load_project(find_project_file(*config));
    RunRegistry reg(project_paths(cfg).registry);
    if (!compare->empty()) {
      auto a = reg.get((*compare)[0]), b = reg.get((*compare)[1]);
      if (!a || !b) lathe::fail("runs", "no run with id {}", !a ? (*compare)[0] : (*compare)[1]);
      std::map<std::string, std::string> fa, fb;
      flatten(a->config, "", fa);
      flatten(b->config, "", fb);
      std::printf("config changes from run %lld to run %lld:\n", (long long)a->id, (long long)b->id);
      int n = 0;
      for (auto& [k, v] : fb)
        if (!fa.count(k) || fa[k] != v) {
          std::printf("  %s: %s -> %s\n", k.c_str(), fa.count(k) ? fa[k].c_str() : "(unset)", v.c_str());
          n++;
        }
      for (auto& [k, v] : fa)
        if (!fb.count(k)) {
          std::printf("  %s: %s -> (unset)\n", k.c_str(), v.c_str());
          n++;
        }
      if (n == 0) std::printf("  (none)\n");
      if (a->data_hash != b->data_hash) std::printf("  data changed (%s -> %s)\n", a->data_hash.c_str(), b->data_hash.c_str());
      if (a->base_hash != b->base_hash) std::printf("  base model changed\n");
      std::printf("pass rates: %s -> %s\nverdict: %s -> %s\n", pass_rates(a->metrics).c_str(),
                  pass_rates(b->metrics).c_str(), a->verdict.c_str(), b->verdict.c_str());
      return 0;
    }
    auto runs = reg.list();
    if (*json) {
      ordered_json out = ordered_json::array();
      for (auto& r : runs) {
        ordered_json st = ordered_json::array();
        for (auto& s : r.stages)
          st.push_back({{"stage", s.stage}, {"status", s.status}, {"seconds", s.seconds}, {"exit_code", s.exit_code}});
        out.push_back({{"id", r.id}, {"started_at", r.started_at}, {"finished_at", r.finished_at},
                       {"verdict", r.verdict}, {"data_hash", r.data_hash}, {"base_hash", r.base_hash},
                       {"metrics", r.metrics}, {"artifacts", r.artifacts}, {"stages", st}});
      }
      std::printf("%s\n", out.dump(2).c_str());
      return 0;
    }
    std::printf("%-5s %-21s %-10s %-40s %s\n", "run", "started", "verdict", "stages", "pass rates");
    for (auto& r : runs) {
      std::string st;
      for (auto& s : r.stages) st += fmt::format("{}{}:{}", st.empty() ? "" : " ", s.stage, s.status);
      std::printf("%-5lld %-21s %-10s %-40s %s\n", (long long)r.id, r.started_at.c_str(), r.verdict.c_str(),
                  st.c_str(), pass_rates(r.metrics).c_str());
    }
    return 0;
  };
}

LATHE_COMMAND("init", "Create a project directory (a commented project.yaml, or a bundled example)", setup_init);
LATHE_COMMAND("run", "Run a project's stages: prepare, train, eval, export (unchanged stages are skipped)", setup_run);
LATHE_COMMAND("runs", "List a project's past runs, or compare two", setup_runs);

}  // namespace
