// lathe data: prepare a training dataset (collect → map → clean → personal data → dedup → format →
// split) into a directory `lathe train --data` accepts, plus report.html/report.json. `collect` and
// `clean` run the first stages alone and write JSONL, for looking at what the pipeline sees.
#include <cstdio>
#include <sstream>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/data/pipeline.h"

namespace {

struct Opts {
  std::string config, output, model, chat_template, split, pii, output_file;
  std::vector<std::string> inputs, eval_prompts;
  int max_seq_length = -1;
  int64_t seed = -1;
  bool packing = false, train_on_inputs = false, strict = false, json = false;
};

std::vector<double> parse_ratios(const std::string& s) {
  std::vector<double> r;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      r.push_back(std::stod(item));
    } catch (const std::exception&) {
      lathe::fail("cli", "--split: '{}' is not a number", item);
    }
  }
  if (r.empty() || r.size() > 3) lathe::fail("cli", "--split: give 1 to 3 ratios (train,validation,test), got '{}'", s);
  return r;
}

// The config file (when given) with command-line flags on top.
lathe::data::DataConfig build_config(const Opts& o) {
  lathe::data::DataConfig c;
  if (!o.config.empty()) c = lathe::data::load_data_config(o.config);
  if (!o.inputs.empty()) c.inputs = o.inputs;
  if (!o.output.empty()) c.output = o.output;
  if (!o.model.empty()) c.format.model = o.model;
  if (!o.chat_template.empty()) c.format.chat_template = o.chat_template;
  if (o.max_seq_length >= 0) c.format.max_seq_length = o.max_seq_length;
  if (o.packing) c.format.packing = true;
  if (o.train_on_inputs) c.format.train_on_inputs = true;
  if (!o.split.empty()) {
    auto r = parse_ratios(o.split);
    c.split.ratios = {0, 0, 0};
    for (size_t i = 0; i < r.size(); i++) c.split.ratios[i] = r[i];
  }
  if (o.seed >= 0) c.split.seed = uint64_t(o.seed);
  if (!o.pii.empty()) {
    if (o.pii != "redact" && o.pii != "drop" && o.pii != "report" && o.pii != "off")
      lathe::fail("cli", "--pii: '{}' is not redact, drop, report or off", o.pii);
    c.pii.policy = o.pii;
  }
  if (o.strict) c.strict = c.collect.strict = true;
  if (!o.eval_prompts.empty()) c.dedup.eval_prompts = o.eval_prompts;
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

void add_common(CLI::App* a, Opts& o) {
  a->add_option("--config", o.config, "YAML file with a data: section (docs/data.md); flags override it");
  a->add_option("--input", o.inputs, "Input files, directories or globs (repeatable)");
  a->add_flag("--strict", o.strict, "Fail on the first malformed line/row/file instead of skipping it");
}

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.require_subcommand(1);
  auto* prep = app.add_subcommand("prepare", "Run every stage; write a prepared dataset directory and report.html");
  add_common(prep, *o);
  prep->add_option("--output", o->output, "Output directory");
  prep->add_option("--model", o->model, "Model directory or .gguf whose tokenizer and chat template format the data");
  prep->add_option("--chat-template", o->chat_template, "Built-in template name or .jinja file (default: the model's)");
  prep->add_option("--max-seq-length", o->max_seq_length, "Tokens per sequence (truncation and packing limit)");
  prep->add_flag("--packing", o->packing, "Bin-pack sequences up to --max-seq-length");
  prep->add_flag("--train-on-inputs", o->train_on_inputs, "Loss on prompt tokens too");
  prep->add_option("--split", o->split, "train,validation,test ratios, e.g. 0.9,0.05,0.05");
  prep->add_option("--seed", o->seed, "Split seed");
  prep->add_option("--pii", o->pii, "redact | drop | report | off");
  prep->add_option("--eval-prompts", o->eval_prompts, "Evaluation files whose prompts must not appear in training data");
  prep->add_flag("--json", o->json, "Print the stage counts as JSON");
  auto* col = app.add_subcommand("collect", "Read inputs into JSONL records with their source (stage 1 alone)");
  add_common(col, *o);
  col->add_option("--output", o->output_file, "Output JSONL")->required();
  auto* cln = app.add_subcommand("clean", "Collect, map and clean; write JSONL (stages 1-3)");
  add_common(cln, *o);
  cln->add_option("--output", o->output_file, "Output JSONL")->required();
  return [o, prep, col] {
    lathe::data::DataConfig c = build_config(*o);
    if (prep->parsed()) {
      nlohmann::json r = lathe::data::run_pipeline(c);
      if (o->json) {
        std::printf("%s\n", nlohmann::json{{"totals", r["totals"]}, {"splits", r["splits"]}, {"stages", r["stages"]}}.dump(2).c_str());
      } else {
        for (auto& s : r["stages"]) {
          std::printf("%-9s %8zu in %8zu out", s["stage"].get<std::string>().c_str(), s["in"].get<size_t>(), s["out"].get<size_t>());
          for (auto& [k, v] : s["dropped"].items()) std::printf("  [%s: %zu]", k.c_str(), v.get<size_t>());
          std::printf("\n");
        }
        for (auto& w : r["warnings"]) std::printf("warning: %s\n", w.get<std::string>().c_str());
        std::printf("kept %zu of %zu records (train %zu, validation %zu, test %zu) → %s (report.html)\n",
                    r["totals"]["records_kept"].get<size_t>(), r["totals"]["records_in"].get<size_t>(),
                    r["splits"]["train"].get<size_t>(), r["splits"]["validation"].get<size_t>(), r["splits"]["test"].get<size_t>(),
                    c.output.c_str());
      }
      return 0;
    }
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
