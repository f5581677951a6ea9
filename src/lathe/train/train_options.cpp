#include "lathe/train/train_options.h"

#include "lathe/peft/lora.h"

#include <algorithm>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
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
  static const std::vector<std::string> methods = {"lora", "qlora", "prefix", "full", "dpo", "kto", "orpo", "ia3", "prompt_tuning", "p_tuning"};
  if (std::find(methods.begin(), methods.end(), o.method) == methods.end())
    bad_value("method", fmt::format("unknown method '{}' (valid: lora, qlora, ia3, prompt_tuning, p_tuning, prefix, full, dpo, kto, orpo)", o.method));
  const bool pref = is_preference_method(o.method);
  if (!o.finetuning_type.empty()) {
    if (!pref)
      bad_value("finetuning_type", fmt::format("applies to the preference methods dpo, kto and orpo (method is '{}'; "
                                               "the method itself says what trains)", o.method));
    if (o.finetuning_type != "lora" && o.finetuning_type != "qlora" && o.finetuning_type != "full")
      bad_value("finetuning_type", fmt::format("unknown '{}' (valid: lora, qlora, full)", o.finetuning_type));
  }
  if (o.loss_type != "sigmoid" && o.loss_type != "ipo")
    bad_value("loss_type", fmt::format("unknown '{}' (valid: sigmoid, ipo)", o.loss_type));
  if (o.loss_type != "sigmoid" && o.method != "dpo")
    bad_value("loss_type", fmt::format("'{}' is a DPO loss (method is '{}')", o.loss_type, o.method));
  if (o.finetuning_type == "full" && !o.init_adapter.empty())
    bad_value("init_adapter", "full fine-tuning starts from --model (give the SFT model directory there)");
  if (pref && o.train_on_inputs)
    bad_value("train_on_inputs", "preference methods compare completions; the prompt never carries loss");
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
  if (o.recompute_activations != "auto" && o.recompute_activations != "keep" && o.recompute_activations != "always")
    bad_value("recompute_activations", fmt::format("'{}' is not auto, keep or always", o.recompute_activations));
  if (o.base_compute != "auto" && o.base_compute != "f32" && o.base_compute != "bf16" && o.base_compute != "int8")
    bad_value("base_compute", fmt::format("'{}' is not a base compute (f32 | bf16 | int8 | auto)", o.base_compute));
  if (o.base_compute == "bf16" || o.base_compute == "int8") {
    const std::string k = trained_kind(o);
    if (k == "full")
      bad_value("base_compute", fmt::format("'{}': full fine-tuning trains the base weights, whose products stay f32 "
                                            "(use auto or f32)", o.base_compute));
    if (k == "qlora")
      bad_value("base_compute", fmt::format("'{}': a QLoRA base is NF4 and keeps its own kernel (use auto or f32)",
                                            o.base_compute));
  }
  if (o.use_dora && o.method != "lora" && o.method != "qlora" && !is_preference_method(o.method))
    bad_value("use_dora", fmt::format("DoRA is a LoRA variant (method lora or qlora; method is '{}')", o.method));
  const std::string& iw = o.init_lora_weights;
  const bool from_base = iw == "pissa" || iw == "olora" || pissa_niter(iw) >= 0;
  if (iw != "true" && iw != "gaussian" && iw != "loftq" && !from_base)
    bad_value("init_lora_weights", fmt::format("'{}' is not supported (valid: true, gaussian, pissa, pissa_niter_N, "
                                               "olora, loftq)", iw));
  if (iw == "loftq" && o.method != "qlora")
    bad_value("init_lora_weights", fmt::format("'loftq' initialises a LoRA adapter over a 4-bit NF4 base: method "
                                               "qlora only (method is '{}')", o.method));
  if (iw == "loftq" && o.use_dora) bad_value("init_lora_weights", "'loftq' with use_dora is not supported");
  if (iw == "loftq" && !o.init_adapter.empty())
    bad_value("init_lora_weights", "'loftq' starts a new adapter; --init-adapter continues one (a LoftQ adapter's "
              "base is rebuilt from its adapter_config.json)");
  if (o.loftq_iter != 1 && iw != "loftq")
    bad_value("loftq_iter", fmt::format("applies to init_lora_weights loftq (init_lora_weights is '{}')", iw));
  if (from_base && o.method != "lora")
    bad_value("init_lora_weights", fmt::format("'{}' rewrites the f32 base weights: method lora only (method is "
                                               "'{}')", iw, o.method));
  if (from_base && o.use_dora)
    bad_value("init_lora_weights", fmt::format("'{}' with use_dora is not supported", iw));
  if (o.loraplus_lr_ratio > 0 && trained_kind(o) != "lora" && trained_kind(o) != "qlora")
    bad_value("loraplus_lr_ratio", fmt::format("LoRA+ sets the learning rate of LoRA's B matrices; method '{}' "
                                               "trains no LoRA adapter", trained_kind(o)));
}

bool is_preference_method(const std::string& method) {
  return method == "dpo" || method == "kto" || method == "orpo";
}

std::string trained_kind(const TrainOptions& o) {
  if (!is_preference_method(o.method)) return o.method;
  if (!o.finetuning_type.empty()) return o.finetuning_type;
  if (!o.init_adapter.empty()) {
    const std::string path = o.init_adapter + "/adapter_config.json";
    json j = read_json_file_bounded(path, "train");
    const std::string type = j.is_object() ? j.value("peft_type", std::string("LORA")) : std::string();
    if (type != "LORA")
      fail("train", "{}: peft_type '{}': preference methods train LoRA adapters (or full weights)", path, type);
    return j.value("lathe_base_quantization", std::string()) == "nf4" ? "qlora" : "lora";
  }
  return "lora";
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
