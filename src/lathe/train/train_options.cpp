#include "lathe/train/train_options.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <variant>

#include "lathe/core/error.h"
#include "lathe/train/schedule.h"

using nlohmann::json;

namespace lathe {

namespace {

using Member = std::variant<std::string TrainOptions::*, double TrainOptions::*, int TrainOptions::*,
                            bool TrainOptions::*>;

struct OptionSpec {
  const char* key;
  const char* help;
  Member member;
};

const std::vector<OptionSpec>& option_specs() {
  static const std::vector<OptionSpec> specs = {
#define LATHE_TRAIN_OPTION_SPEC(type, key, def, help) {#key, help, &TrainOptions::key},
      LATHE_TRAIN_OPTIONS(LATHE_TRAIN_OPTION_SPEC)
#undef LATHE_TRAIN_OPTION_SPEC
  };
  return specs;
}

const OptionSpec* find_spec(const std::string& key) {
  for (const auto& s : option_specs())
    if (key == s.key) return &s;
  return nullptr;
}

// PEFT configs write target_modules as a YAML list; we keep one comma-separated string.
bool is_list_key(const std::string& key) { return key == "lora_target_modules"; }

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

void apply_yaml_value(const std::string& where, const std::string& key, const YAML::Node& node, const Member& member,
                      TrainOptions& opt) {
  auto scalar_text = [&]() { return node.IsScalar() ? node.Scalar() : std::string("a list or map"); };
  std::visit(
      Overloaded{
          [&](std::string TrainOptions::*m) {
            if (node.IsNull()) {
              opt.*m = "";
            } else if (node.IsScalar()) {
              opt.*m = node.Scalar();
            } else if (node.IsSequence() && is_list_key(key)) {
              std::string joined;
              for (const auto& item : node) {
                if (!item.IsScalar()) fail("train", "{}: key '{}' must be a list of names", where, key);
                joined += (joined.empty() ? "" : ",") + item.Scalar();
              }
              opt.*m = joined;
            } else {
              fail("train", "{}: key '{}' must be a string", where, key);
            }
          },
          [&](double TrainOptions::*m) {
            try {
              if (!node.IsScalar()) throw YAML::Exception(node.Mark(), "not a scalar");
              opt.*m = node.as<double>();
            } catch (const YAML::Exception&) {
              fail("train", "{}: key '{}' must be a number (got {})", where, key, scalar_text());
            }
          },
          [&](int TrainOptions::*m) {
            try {
              if (!node.IsScalar()) throw YAML::Exception(node.Mark(), "not a scalar");
              opt.*m = node.as<int>();
            } catch (const YAML::Exception&) {
              fail("train", "{}: key '{}' must be an integer (got '{}')", where, key, scalar_text());
            }
          },
          [&](bool TrainOptions::*m) {
            try {
              if (!node.IsScalar()) throw YAML::Exception(node.Mark(), "not a scalar");
              opt.*m = node.as<bool>();
            } catch (const YAML::Exception&) {
              fail("train", "{}: key '{}' must be true or false (got '{}')", where, key, scalar_text());
            }
          },
      },
      member);
}

[[noreturn]] void bad_value(const char* key, const std::string& what) {
  fail("train", "{}: {}", train_option_flag(key), what);
}

}  // namespace

std::string train_option_flag(const std::string& key) {
  std::string flag = "--" + key;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::vector<std::string> train_option_keys() {
  std::vector<std::string> keys;
  for (const auto& s : option_specs()) keys.push_back(s.key);
  return keys;
}

void declare_train_options(CLI::App& app, TrainOptions& opt) {
  for (const auto& s : option_specs()) {
    const std::string flag = train_option_flag(s.key);
    std::visit(Overloaded{
                   [&](bool TrainOptions::*m) {
                     // "--key,!--no-key": one CLI11 option, so count() sees either spelling.
                     app.add_flag(flag + ",!--no-" + flag.substr(2), opt.*m, s.help)->capture_default_str();
                   },
                   [&](auto m) { app.add_option(flag, opt.*m, s.help)->capture_default_str(); },
               },
               s.member);
  }
}

void apply_train_options_yaml(const std::string& path, TrainOptions& opt,
                              const std::function<bool(const std::string&)>& keep) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail("train", "{}: cannot read config file", path);
  } catch (const YAML::Exception& e) {
    fail("train", "{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  if (root.IsNull()) return;  // an empty file sets nothing
  if (!root.IsMap()) fail("train", "{}: expected a mapping of option: value", path);
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.Scalar();
    const std::string where = fmt::format("{}:{}", path, it->first.Mark().line + 1);
    const OptionSpec* spec = find_spec(key);
    if (!spec) {
      std::string underscored = key;
      std::replace(underscored.begin(), underscored.end(), '-', '_');
      if (find_spec(underscored)) fail("train", "{}: unknown key '{}' (did you mean '{}'?)", where, key, underscored);
      fail("train", "{}: unknown key '{}' (not a lathe train option; see lathe train --help)", where, key);
    }
    if (key == "config") fail("train", "{}: 'config' cannot be set inside a config file", where);
    if (keep && keep(key)) continue;
    apply_yaml_value(where, key, it->second, spec->member, opt);
  }
}

void finalize_train_options(CLI::App& app, TrainOptions& opt) {
  if (!opt.config.empty()) {
    apply_train_options_yaml(opt.config, opt, [&](const std::string& key) {
      return app.get_option(train_option_flag(key))->count() > 0;  // given on the command line: it wins
    });
  }
  validate_train_options(opt);
}

void validate_train_options(const TrainOptions& o) {
  if (o.model.empty()) bad_value("model", "required (a Hugging Face model directory or a GGUF file)");
  if (o.data.empty()) bad_value("data", "required (pre-tokenized JSONL)");
  if (o.output.empty()) bad_value("output", "required (the output directory)");
  static const std::vector<std::string> methods = {"lora", "qlora", "prefix", "full"};
  if (std::find(methods.begin(), methods.end(), o.method) == methods.end())
    bad_value("method", fmt::format("unknown method '{}' (valid: lora, qlora, prefix, full)", o.method));
  validate_lr_schedule_type(o.lr_scheduler_type);
  auto need = [](bool ok, const char* key, const std::string& rule, auto value) {
    if (!ok) bad_value(key, fmt::format("must be {} (got {})", rule, value));
  };
  need(std::isfinite(o.learning_rate) && o.learning_rate > 0, "learning_rate", "> 0", o.learning_rate);
  need(o.warmup_steps >= 0, "warmup_steps", ">= 0", o.warmup_steps);
  need(o.warmup_ratio >= 0 && o.warmup_ratio <= 1, "warmup_ratio", "in [0, 1]", o.warmup_ratio);
  need(o.max_steps == -1 || o.max_steps > 0, "max_steps", "-1 or > 0", o.max_steps);
  need(o.max_steps > 0 || o.num_train_epochs > 0, "num_train_epochs", "> 0 when max_steps is -1",
       o.num_train_epochs);
  need(o.per_device_train_batch_size >= 1, "per_device_train_batch_size", ">= 1", o.per_device_train_batch_size);
  need(o.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", ">= 1", o.gradient_accumulation_steps);
  need(o.max_grad_norm >= 0, "max_grad_norm", ">= 0", o.max_grad_norm);
  need(o.weight_decay >= 0, "weight_decay", ">= 0", o.weight_decay);
  need(o.adam_beta1 >= 0 && o.adam_beta1 < 1, "adam_beta1", "in [0, 1)", o.adam_beta1);
  need(o.adam_beta2 >= 0 && o.adam_beta2 < 1, "adam_beta2", "in [0, 1)", o.adam_beta2);
  need(o.adam_epsilon >= 0, "adam_epsilon", ">= 0", o.adam_epsilon);
  need(o.max_seq_length >= 1, "max_seq_length", ">= 1", o.max_seq_length);
  need(o.save_steps >= 0, "save_steps", ">= 0", o.save_steps);
  need(o.save_total_limit >= 0, "save_total_limit", ">= 0", o.save_total_limit);
  need(o.logging_steps >= 1, "logging_steps", ">= 1", o.logging_steps);
  need(o.eval_steps >= 0, "eval_steps", ">= 0", o.eval_steps);
  if (o.eval_steps > 0 && o.eval_data.empty()) bad_value("eval_steps", "needs --eval-data");
  need(o.lora_r >= 1, "lora_r", ">= 1", o.lora_r);
  need(o.lora_alpha >= 1, "lora_alpha", ">= 1", o.lora_alpha);
  need(o.lora_dropout >= 0 && o.lora_dropout < 1, "lora_dropout", "in [0, 1)", o.lora_dropout);
  if (o.lora_target_modules.empty()) bad_value("lora_target_modules", "must name at least one module");
  need(o.num_virtual_tokens >= 1, "num_virtual_tokens", ">= 1", o.num_virtual_tokens);
  need(o.encoder_hidden_size >= 0, "encoder_hidden_size", ">= 0", o.encoder_hidden_size);
  need(o.threads >= 0, "threads", ">= 0", o.threads);
}

json train_options_to_json(const TrainOptions& opt) {
  json j = json::object();
  for (const auto& s : option_specs()) std::visit([&](auto m) { j[s.key] = opt.*m; }, s.member);
  return j;
}

TrainOptions train_options_from_json(const json& j) {
  TrainOptions opt;
  if (!j.is_object()) fail("train", "options JSON must be an object");
  for (const auto& item : j.items()) {
    // Named references, not a structured binding: clang 14 cannot capture bindings in the lambdas below.
    const std::string& key = item.key();
    const json& value = item.value();
    const OptionSpec* spec = find_spec(key);
    if (!spec) fail("train", "options JSON: unknown key '{}'", key);
    std::visit(Overloaded{
                   [&](std::string TrainOptions::*m) {
                     if (!value.is_string()) fail("train", "options JSON: key '{}' must be a string", key);
                     opt.*m = value.get<std::string>();
                   },
                   [&](double TrainOptions::*m) {
                     if (!value.is_number()) fail("train", "options JSON: key '{}' must be a number", key);
                     opt.*m = value.get<double>();
                   },
                   [&](int TrainOptions::*m) {
                     if (!value.is_number_integer()) fail("train", "options JSON: key '{}' must be an integer", key);
                     opt.*m = value.get<int>();
                   },
                   [&](bool TrainOptions::*m) {
                     if (!value.is_boolean()) fail("train", "options JSON: key '{}' must be true or false", key);
                     opt.*m = value.get<bool>();
                   },
               },
               spec->member);
  }
  return opt;
}

std::string train_options_to_string(const TrainOptions& opt) {
  std::string out;
  for (const auto& s : option_specs())
    std::visit([&](auto m) { out += fmt::format("{}: {}\n", s.key, opt.*m); }, s.member);
  return out;
}

}  // namespace lathe
