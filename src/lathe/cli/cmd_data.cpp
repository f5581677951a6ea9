// lathe data: prepare a training dataset (collect → map → clean → personal data → dedup → format →
// split) into a directory `lathe train --data` accepts, plus report.html/report.json. `collect` and
// `clean` run the first stages alone and write JSONL, for looking at what the pipeline sees.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/options_yaml.h"
#include "lathe/data/data_config.h"
#include "lathe/dist/comm.h"

namespace {

struct Opts {
  std::string config, output_file;
  bool json = false;
  std::shared_ptr<lathe::cli::CliOptions> prepare, collect, clean;  // the data table's flags per subcommand
};

// defaults < the --config file's `data:` section < LATHE_* environment < flags (data/data_config.h).
lathe::data::DataConfig build_config(const Opts& o, const lathe::cli::CliOptions& flags) {
  const auto& t = lathe::data::data_options_table();
  lathe::data::DataConfig c;
  if (!o.config.empty()) t.apply(c, lathe::options_from_yaml_file(o.config, t, "data"));
  t.apply(c, flags.overrides());
  lathe::data::finish_data_config(c, o.config.empty() ? "the command line" : o.config);
  return c;
}

void write_jsonl(const std::string& path, const std::vector<lathe::data::Record>& recs) {
  std::string body;
  for (auto& r : recs) {
    nlohmann::json j = r.json;
    j["_source"] = r.source.to_json();
    j["_id"] = r.id;
    body += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  lathe::write_file_atomic(path, body);
}

void print_counts(const lathe::data::StageCounts& c) {
  std::fprintf(stderr, "%s: %zu in, %zu out\n", c.stage.c_str(), c.in, c.out);
  for (auto& [k, v] : c.dropped) {
    std::fprintf(stderr, "  dropped %zu: %s\n", v, k.c_str());
    for (auto& ex : c.examples.at(k)) std::fprintf(stderr, "    %s\n", ex.c_str());
  }
}

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  const auto& table = lathe::data::data_options_table();
  app.require_subcommand(1);
  const char* config_help = "YAML file with a data: section (docs/data.md); environment and flags override it";
  auto* prep = app.add_subcommand("prepare", "Run every stage; write a prepared dataset directory and report.html");
  prep->add_option("--config", o->config, config_help);
  o->prepare = std::make_shared<lathe::cli::CliOptions>(*prep, table);
  prep->add_flag("--json", o->json, "Print the stage counts as JSON");
  // collect and clean run the first stages alone: their options are the inputs', and --output names a JSONL file.
  auto* col = app.add_subcommand("collect", "Read inputs into JSONL records with their source (stage 1 alone)");
  col->add_option("--config", o->config, config_help);
  o->collect = std::make_shared<lathe::cli::CliOptions>(*col, table, std::vector<std::string>{"inputs", "strict"});
  col->add_option("--output", o->output_file, "Output JSONL")->required();
  auto* cln = app.add_subcommand("clean", "Collect, map and clean; write JSONL (stages 1-3)");
  cln->add_option("--config", o->config, config_help);
  o->clean = std::make_shared<lathe::cli::CliOptions>(*cln, table, std::vector<std::string>{"inputs", "strict"});
  cln->add_option("--output", o->output_file, "Output JSONL")->required();
  return [o, prep, col] {
    lathe::data::DataConfig c = build_config(*o, prep->parsed() ? *o->prepare : col->parsed() ? *o->collect : *o->clean);
    if (prep->parsed()) {
      const auto t0 = std::chrono::steady_clock::now();
      nlohmann::json r = lathe::data::run_pipeline(c);
      if (r.is_null()) return 0;  // a rank other than 0 under mpirun: rank 0 writes and prints
      // Throughput on stderr (the report stays deterministic): input bytes of the files read, records in.
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      size_t bytes = 0;
      std::error_code ec;
      for (auto& in : r["inputs"]) bytes += size_t(std::filesystem::file_size(in.value("path", ""), ec)) * !ec;
      std::fprintf(stderr, "data prepare: %.1f MB in %.1f s: %.1f MB/s, %.0f records/s\n", bytes / 1e6, secs,
                   bytes / 1e6 / std::max(secs, 1e-9), r["totals"]["records_in"].get<size_t>() / std::max(secs, 1e-9));
      if (o->json) {
        nlohmann::json j{{"totals", r["totals"]}, {"splits", r["splits"]}, {"stages", r["stages"]}};
        if (r.contains("preference")) j["preference"] = r["preference"];
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        for (auto& s : r["stages"]) {
          std::printf("%-9s %8zu in %8zu out", s["stage"].get<std::string>().c_str(), s["in"].get<size_t>(), s["out"].get<size_t>());
          for (auto& [k, v] : s["dropped"].items()) std::printf("  [%s: %zu]", k.c_str(), v.get<size_t>());
          std::printf("\n");
        }
        for (auto& w : r["warnings"]) std::printf("warning: %s\n", w.get<std::string>().c_str());
        const std::string pref = r.value("preference", "");
        std::printf("kept %zu of %zu %s (train %zu, validation %zu, test %zu) → %s (report.html)\n",
                    r["totals"]["records_kept"].get<size_t>(), r["totals"]["records_in"].get<size_t>(),
                    pref == "paired" ? "preference pairs" : pref == "unpaired" ? "labelled completions (KTO)" : "records",
                    r["splits"]["train"].get<size_t>(), r["splits"]["validation"].get<size_t>(), r["splits"]["test"].get<size_t>(),
                    c.output.c_str());
      }
      return 0;
    }
    // collect and clean are for looking at a few files: under mpirun, rank 0 alone runs them.
    if (!lathe::world().is_root()) return 0;
    if (c.inputs.empty()) lathe::fail("data", "no inputs (give --input or data.inputs)");
    lathe::data::CollectResult cr = lathe::data::collect(c.inputs, c.collect);
    for (auto& w : cr.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    print_counts(cr.counts);
    if (!col->parsed()) {
      lathe::data::StageCounts mc("map"), cc("clean");
      std::map<std::string, size_t> shapes;
      lathe::data::map_records(cr.records, c.mapping, mc, shapes);
      lathe::data::clean_records(cr.records, c.clean, cc);
      print_counts(mc);
      print_counts(cc);
    }
    write_jsonl(o->output_file, cr.records);
    std::fprintf(stderr, "wrote %zu records to %s\n", cr.records.size(), o->output_file.c_str());
    return 0;
  };
}

}  // namespace

LATHE_COMMAND("data", "Prepare training data: collect, clean, redact, dedup, tokenize, split, report", setup);
