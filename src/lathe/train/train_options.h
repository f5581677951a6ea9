// Every `lathe train` option, declared once in LATHE_TRAIN_OPTIONS below: (type, key, default, help).
// That one line gives the TrainOptions field and its default, the CLI flag (the key with '_' -> '-':
// learning_rate -> --learning-rate; a bool gets --key and --no-key), the YAML key of --config
// files, and the key in the resolved-config JSON stored with every checkpoint. Names follow Hugging
// Face TrainingArguments and PEFT's LoraConfig / PrefixTuningConfig.
//
// Precedence: defaults < the --config YAML file < flags given on the command line.
//
// Use:
//   TrainOptions opt;
//   declare_train_options(app, opt);        // before app.parse / in a command's setup
//   ... parse ...
//   finalize_train_options(app, opt);       // after parsing: YAML under explicit flags, then validate
// --threads is one of these options: a command using them must not also call add_threads_option.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace lathe {

// clang-format off
#define LATHE_TRAIN_OPTIONS(X)                                                                                  \
  X(std::string, model, "", "Base model: a Hugging Face model directory or a GGUF file")                        \
  X(std::string, data, "", "Training data: JSONL records (messages, alpaca, prompt/completion, text, input_ids) or a prepared dataset dir") \
  X(std::string, eval_data, "", "Evaluation data (same format); empty = no evaluation")                         \
  X(std::string, output, "", "Output directory: checkpoints, metrics.jsonl, the final adapter")                 \
  X(std::string, method, "lora", "Fine-tuning method: lora | qlora | prefix | full")                             \
  X(std::string, init_adapter, "", "Start from this PEFT adapter directory instead of a fresh one")             \
  X(std::string, config, "", "YAML file of these options (keys as listed here); flags given override it")      \
  X(double, learning_rate, 2e-4, "Peak learning rate (AdamW)")                                                  \
  X(std::string, lr_scheduler_type, "linear", "constant | constant_with_warmup | linear | cosine")              \
  X(int, warmup_steps, 0, "Linear warmup steps (wins over warmup_ratio when > 0)")                              \
  X(double, warmup_ratio, 0.0, "Warmup as a fraction of max_steps: ceil(ratio * max_steps) steps")              \
  X(int, max_steps, -1, "Optimizer steps to run; -1 = num_train_epochs over the data")                          \
  X(double, num_train_epochs, 1.0, "Epochs over the training data (when max_steps is -1)")                      \
  X(int, per_device_train_batch_size, 1, "Sequences per micro-batch")                                           \
  X(int, gradient_accumulation_steps, 1, "Micro-batches per optimizer step")                                    \
  X(double, max_grad_norm, 1.0, "Clip the global gradient L2 norm to this; 0 = no clipping")                    \
  X(double, weight_decay, 0.0, "AdamW decoupled weight decay (not applied to biases and norm weights)")         \
  X(double, adam_beta1, 0.9, "AdamW beta1")                                                                     \
  X(double, adam_beta2, 0.999, "AdamW beta2")                                                                   \
  X(double, adam_epsilon, 1e-8, "AdamW epsilon")                                                                \
  X(int, seed, 42, "Seed for initialisation, data order and dropout")                                           \
  X(bool, shuffle, true, "Shuffle the training data every epoch (--no-shuffle: file order)")                    \
  X(int, max_seq_length, 2048, "Truncate longer sequences to this many tokens (counted and reported)")          \
  X(int, save_steps, 500, "Save a checkpoint every this many optimizer steps (0 = only at the end)")            \
  X(int, save_total_limit, 0, "Keep only the newest N checkpoints; 0 = keep all")                               \
  X(int, logging_steps, 1, "Log metrics every this many optimizer steps")                                       \
  X(int, eval_steps, 0, "Evaluate every this many optimizer steps; 0 = off")                                    \
  X(bool, gradient_checkpointing, false, "Recompute activations in backward to save memory")                    \
  X(std::string, resume_from_checkpoint, "", "Resume from a checkpoint directory, or 'latest' under --output")  \
  X(int, lora_r, 8, "LoRA rank")                                                                                \
  X(int, lora_alpha, 16, "LoRA alpha (scale alpha/r, or alpha/sqrt(r) with use_rslora)")                        \
  X(double, lora_dropout, 0.0, "Dropout on the LoRA input")                                                     \
  X(std::string, lora_target_modules, "q_proj,v_proj", "Comma-separated module names, or all-linear")          \
  X(bool, use_rslora, false, "Rank-stabilised LoRA scaling alpha/sqrt(r)")                                      \
  X(int, num_virtual_tokens, 20, "Prefix tuning: number of virtual tokens")                                     \
  X(bool, prefix_projection, false, "Prefix tuning: reparameterise the prefix through an MLP")                  \
  X(int, encoder_hidden_size, 0, "Prefix tuning: hidden size of that MLP; 0 = the model's hidden size")         \
  X(bool, train_on_inputs, false, "Also compute loss on prompt tokens (ignore -100 masking from formatting)")    \
  X(std::string, chat_template, "", "Chat template for conversational records: built-in name or .jinja file (default: the model's)") \
  X(std::string, system_prompt, "", "System message added to conversations that have none")                     \
  X(int, threads, 0, "Threads for kernels and BLAS; 0 = all cores")
// clang-format on

struct TrainOptions {
#define LATHE_TRAIN_OPTION_FIELD(type, key, def, help) type key = def;
  LATHE_TRAIN_OPTIONS(LATHE_TRAIN_OPTION_FIELD)
#undef LATHE_TRAIN_OPTION_FIELD
};

// "learning_rate" -> "--learning-rate".
std::string train_option_flag(const std::string& key);
// Every key, in declaration order.
std::vector<std::string> train_option_keys();

// Adds one CLI11 option per key (plus --no-KEY for bools), bound to the fields of `opt`.
void declare_train_options(CLI::App& app, TrainOptions& opt);

// After parsing: when opt.config names a YAML file, applies each of its keys whose flag was not given
// on the command line; then validates (validate_train_options). Throws lathe::Error:
//   "[train] FILE:LINE: unknown key 'x' (not a lathe train option)"
//   "[train] FILE:LINE: key 'x' must be an integer (got '1.5')"
void finalize_train_options(CLI::App& app, TrainOptions& opt);

// Applies a YAML file onto `opt` for every key for which keep(key) is false (null keep: all keys).
void apply_train_options_yaml(const std::string& path, TrainOptions& opt,
                              const std::function<bool(const std::string&)>& keep = nullptr);

// Range and choice checks (method, lr_scheduler_type, positive sizes, required model/data/output);
// throws "[train] --key: ..." naming the option.
void validate_train_options(const TrainOptions& opt);

// The resolved options as {"key": value, ...}, and back; from_json rejects
// unknown keys and wrong types, naming them.
nlohmann::json train_options_to_json(const TrainOptions& opt);
TrainOptions train_options_from_json(const nlohmann::json& j);
// "key: value" lines, for printing the resolved config at start.
std::string train_options_to_string(const TrainOptions& opt);

}  // namespace lathe
