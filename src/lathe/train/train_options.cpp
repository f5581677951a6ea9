#include "lathe/train/train_options.h"

#include <algorithm>

#include "lathe/core/error.h"
#include "lathe/core/options_yaml.h"
#include "lathe/train/schedule.h"

using nlohmann::json;

namespace lathe {

namespace {

[[noreturn]] void bad_value(const char* key, const std::string& what) {
  fail("train", "{}: {}", train_option_flag(key), what);
}

}  // namespace

const OptionTable<TrainOptions>& train_options_table() {
  static const OptionTable<TrainOptions> table = [] {
    OptionTable<TrainOptions> t("train");
#define LATHE_TRAIN_OPTION_ENTRY(type, key, def, help, checks) t.add(#key, &TrainOptions::key, help) checks;
    LATHE_TRAIN_OPTIONS(LATHE_TRAIN_OPTION_ENTRY)
#undef LATHE_TRAIN_OPTION_ENTRY
    return t;
  }();
  return table;
}

std::string train_option_flag(const std::string& key) { return option_flag_of(key); }

std::vector<std::string> train_option_keys() { return train_options_table().keys(); }

OptionSettings train_options_from_yaml(const std::string& path) {
  OptionSettings s = options_from_yaml_file(path, train_options_table());
  for (const OptionSetting& x : s)
    if (x.option->key == "config") fail("train", "{}: 'config' cannot be set inside a config file", x.value.where);
  return s;
}

TrainOptions resolve_train_options(const OptionSettings& overrides) {
  const auto& t = train_options_table();
  TrainOptions probe;  // where the config file is: a flag or LATHE_CONFIG
  t.apply(probe, overrides);
  TrainOptions o;
  if (!probe.config.empty()) t.apply(o, train_options_from_yaml(probe.config));
  t.apply(o, overrides);
  validate_train_options(o);
  return o;
}

void validate_train_options(const TrainOptions& o) {
  if (o.model.empty()) bad_value("model", "required (a Hugging Face model directory or a GGUF file)");
  if (o.data.empty()) bad_value("data", "required (pre-tokenized JSONL)");
  if (o.output.empty()) bad_value("output", "required (the output directory)");
  static const std::vector<std::string> methods = {"lora", "qlora", "prefix", "full"};
  if (std::find(methods.begin(), methods.end(), o.method) == methods.end())
    bad_value("method", fmt::format("unknown method '{}' (valid: lora, qlora, prefix, full)", o.method));
  validate_lr_schedule_type(o.lr_scheduler_type);
  train_options_table().check(o);  // types and ranges as declared in LATHE_TRAIN_OPTIONS
  auto need = [](bool ok, const char* key, const std::string& rule, auto value) {
    if (!ok) bad_value(key, fmt::format("must be {} (got {})", rule, value));
  };
  need(o.max_steps == -1 || o.max_steps > 0, "max_steps", "-1 or > 0", o.max_steps);
  need(o.max_steps > 0 || o.num_train_epochs > 0, "num_train_epochs", "> 0 when max_steps is -1",
       o.num_train_epochs);
  if (o.eval_steps > 0 && o.eval_data.empty()) bad_value("eval_steps", "needs --eval-data");
  if (o.lora_target_modules.empty()) bad_value("lora_target_modules", "must name at least one module");
}

json train_options_to_json(const TrainOptions& opt) { return train_options_table().to_json(opt); }

TrainOptions train_options_from_json(const json& j) {
  TrainOptions opt;
  const auto& t = train_options_table();
  t.apply(opt, t.from_json(j, "options JSON"));
  return opt;
}

std::string train_options_to_string(const TrainOptions& opt) { return train_options_table().to_string(opt); }

}  // namespace lathe
