// Every `lathe train` option, declared once in LATHE_TRAIN_OPTIONS below: (type, key, default, help,
// validation). That one line gives the TrainOptions field and its default, and the entry of
// train_options_table() (core/options.h) from which come the CLI flag (the key with '_' -> '-':
// learning_rate -> --learning-rate; a bool gets --key and --no-key; bound by cli/cli_options.h), the
// environment variable (LATHE_LEARNING_RATE), the YAML key of --config files and of project.yaml's
// `train:` section, and the key in the resolved-config JSON stored with every checkpoint. Names follow
// Hugging Face TrainingArguments and PEFT's LoraConfig / PrefixTuningConfig. Every key is documented
// in docs/train.md (a unit test keeps the two equal).
//
// Precedence: defaults < the --config YAML file < LATHE_* environment variables < command-line flags.
// --threads is one of these options: a command using them must not also call add_threads_option.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/options.h"

namespace lathe {

// clang-format off
#define LATHE_TRAIN_OPTIONS(X)                                                                                  \
  X(std::string, model, "", "Base model: a Hugging Face model directory or a GGUF file", )                      \
  X(std::string, data, "", "Training data: JSONL records (messages, alpaca, prompt/completion, text, input_ids) or a prepared dataset dir", ) \
  X(std::string, eval_data, "", "Evaluation data (same format); empty = no evaluation", )                       \
  X(std::string, output, "", "Output directory: checkpoints, metrics.jsonl, the final adapter", )               \
  X(std::string, method, "lora", "Fine-tuning method: lora | qlora | prefix | full, or a preference method dpo | kto | orpo", ) \
  X(std::string, finetuning_type, "", "What a preference method trains: lora | qlora | full (default: lora, or the --init-adapter's kind)", ) \
  X(std::string, init_adapter, "", "Start from this PEFT adapter directory instead of a fresh one", )           \
  X(std::string, config, "", "YAML file of these options (keys as listed here); environment and flags override it", ) \
  X(double, learning_rate, 2e-4, "Peak learning rate (AdamW)", .above(0))                                       \
  X(std::string, lr_scheduler_type, "linear", "constant | constant_with_warmup | linear | cosine", )            \
  X(int, warmup_steps, 0, "Linear warmup steps (wins over warmup_ratio when > 0)", .min(0))                     \
  X(double, warmup_ratio, 0.0, "Warmup as a fraction of max_steps: ceil(ratio * max_steps) steps", .range(0, 1)) \
  X(int, max_steps, -1, "Optimizer steps to run; -1 = num_train_epochs over the data", .min(-1))                \
  X(double, num_train_epochs, 1.0, "Epochs over the training data (when max_steps is -1)", .min(0))             \
  X(int, per_device_train_batch_size, 1, "Sequences per micro-batch", .min(1))                                  \
  X(int, gradient_accumulation_steps, 1, "Micro-batches per optimizer step", .min(1))                           \
  X(double, max_grad_norm, 1.0, "Clip the global gradient L2 norm to this; 0 = no clipping", .min(0))           \
  X(double, weight_decay, 0.0, "AdamW decoupled weight decay (not applied to biases and norm weights)", .min(0)) \
  X(double, adam_beta1, 0.9, "AdamW beta1", .min(0).below(1))                                                   \
  X(double, adam_beta2, 0.999, "AdamW beta2", .min(0).below(1))                                                 \
  X(double, adam_epsilon, 1e-8, "AdamW epsilon", .min(0))                                                       \
  X(int, seed, 42, "Seed for initialisation, data order and dropout", )                                         \
  X(bool, shuffle, true, "Shuffle the training data every epoch (--no-shuffle: file order)", )                  \
  X(int, max_seq_length, 2048, "Truncate longer sequences to this many tokens (counted and reported)", .min(1)) \
  X(int, save_steps, 500, "Save a checkpoint every this many optimizer steps (0 = only at the end)", .min(0))   \
  X(int, save_total_limit, 0, "Keep only the newest N checkpoints; 0 = keep all", .min(0))                      \
  X(int, logging_steps, 1, "Log metrics every this many optimizer steps", .min(1))                              \
  X(int, eval_steps, 0, "Evaluate every this many optimizer steps; 0 = off", .min(0))                           \
  X(bool, gradient_checkpointing, false, "Recompute activations in backward to save memory", )                  \
  X(std::string, recompute_activations, "auto", "keep: keep the normalised inputs, SwiGLU output and attention probabilities for backward when the memory plan with them fits in half the available memory, else recompute them | auto: keep with a bf16 --base-compute, or int8 where the CPU has VNNI (where it measured faster), else recompute | always: recompute (least memory)", ) \
  X(std::string, resume_from_checkpoint, "", "Resume from a checkpoint directory, or 'latest' under --output", ) \
  X(int, lora_r, 8, "LoRA rank", .min(1))                                                                       \
  X(int, lora_alpha, 16, "LoRA alpha (scale alpha/r, or alpha/sqrt(r) with use_rslora)", .min(1))               \
  X(double, lora_dropout, 0.0, "Dropout on the LoRA input", .min(0).below(1))                                   \
  X(std::string, lora_target_modules, "q_proj,v_proj", "Comma-separated module names (a YAML list is joined), or all-linear", .csv()) \
  X(bool, use_rslora, false, "Rank-stabilised LoRA scaling alpha/sqrt(r)", )                                    \
  X(std::string, ia3_target_modules, "k_proj,v_proj,down_proj", "IA3: modules whose output (or, feed-forward, input) is scaled", .csv()) \
  X(std::string, ia3_feedforward_modules, "down_proj", "IA3: the target modules that scale their input (PEFT's feedforward_modules)", .csv()) \
  X(int, num_virtual_tokens, 20, "Prefix tuning, prompt tuning, P-tuning: number of virtual tokens", .min(1)) \
  X(std::string, init_lora_weights, "true", "LoRA init: true (A Kaiming-uniform, B 0) | gaussian (A ~ N(0, 1/r)) | pissa (SVD of W) | pissa_niter_N | olora (QR of W) | loftq (method qlora: NF4 base and A, B from the SVD of its error); PEFT names", ) \
  X(int, loftq_iter, 1, "LoftQ (init_lora_weights loftq): alternations of NF4 quantization and SVD (PEFT's LoftQConfig loftq_iter; loftq_bits is 4)", .min(1)) \
  X(bool, use_dora, false, "DoRA: a learned magnitude per output row over the normalised W + scaling*B*A (PEFT use_dora)", ) \
  X(double, loraplus_lr_ratio, 0.0, "LoRA+: lora_B (and DoRA magnitudes) train at learning_rate x this ratio; 0 = off (PEFT create_loraplus_optimizer)", .min(0)) \
  X(bool, prefix_projection, false, "Prefix tuning: reparameterise the prefix through an MLP", )                \
  X(int, encoder_hidden_size, 0, "Prefix tuning, P-tuning: hidden size of the MLP; 0 = the model's hidden size", .min(0)) \
  X(std::string, prompt_tuning_init, "", "Prompt tuning: RANDOM | TEXT (default: TEXT when prompt_tuning_init_text is given)", ) \
  X(std::string, prompt_tuning_init_text, "", "Prompt tuning: text whose token embeddings start the virtual tokens", ) \
  X(std::string, encoder_reparameterization_type, "MLP", "P-tuning: the prompt encoder, MLP | LSTM", ) \
  X(int, encoder_num_layers, 2, "P-tuning LSTM: layers of the bidirectional LSTM", .min(1)) \
  X(bool, train_on_inputs, false, "Also compute loss on prompt tokens (ignore -100 masking from formatting)", )  \
  X(std::string, chat_template, "", "Chat template for conversational records: built-in name or .jinja file (default: the model's)", ) \
  X(std::string, system_prompt, "", "System message added to conversations that have none", )                   \
  X(double, beta, 0.1, "Preference methods: DPO/KTO temperature of the implicit reward; ORPO's lambda (TRL's beta)", .above(0)) \
  X(std::string, loss_type, "sigmoid", "DPO loss: sigmoid (summed log-probabilities) | ipo (averaged per token)", ) \
  X(double, label_smoothing, 0.0, "DPO sigmoid: probability that a preference label is wrong (conservative DPO)", .range(0, 0.5)) \
  X(double, desirable_weight, 1.0, "KTO: weight of the desirable (thumbs-up) completions' losses", .above(0)) \
  X(double, undesirable_weight, 1.0, "KTO: weight of the undesirable (thumbs-down) completions' losses", .above(0)) \
  X(std::string, base_compute, "f32", "Frozen base's products: f32 | bf16 | int8 | auto (bf16 where the CPU has bf16 dot products, else f32; full fine-tuning and QLoRA: f32). Default f32: PEFT's trajectories", ) \
  X(int, threads, 0, "Threads for kernels and BLAS; 0 = all cores", .min(0))
// clang-format on

struct TrainOptions {
#define LATHE_TRAIN_OPTION_FIELD(type, key, def, help, checks) type key = def;
  LATHE_TRAIN_OPTIONS(LATHE_TRAIN_OPTION_FIELD)
#undef LATHE_TRAIN_OPTION_FIELD
};

// The table built from LATHE_TRAIN_OPTIONS (component "train").
const OptionTable<TrainOptions>& train_options_table();

// "learning_rate" -> "--learning-rate".
std::string train_option_flag(const std::string& key);
// Every key, in declaration order.
std::vector<std::string> train_option_keys();

// The resolved options: defaults < the YAML file named by `config` (taken from `overrides` when given
// there) < `overrides` (the environment, then command-line flags, in that order). Validates the
// result (validate_train_options). Throws lathe::Error:
//   "[train] FILE:LINE: unknown key 'x' (did you mean 'y'?)"
//   "[train] FILE:LINE: key 'x' must be an integer (got '1.5')"
TrainOptions resolve_train_options(const OptionSettings& overrides);

// The settings of a YAML file of train options (errors name FILE:LINE; 'config' may not appear).
OptionSettings train_options_from_yaml(const std::string& path);

// Every value against its declaration (train_options_table), then what involves several options
// (method, lr_scheduler_type, max_steps, eval_steps needs eval_data, required model/data/output);
// throws "[train] --key: ..." naming the option.
void validate_train_options(const TrainOptions& opt);

// dpo | kto | orpo: the preference methods (the rest train on supervised records).
bool is_preference_method(const std::string& method);
// What trains: the method itself for lora | qlora | prefix | full; for a preference method its
// finetuning_type, else the --init-adapter's kind (qlora when its adapter_config.json records the NF4
// base), else lora.
std::string trained_kind(const TrainOptions& opt);

// The resolved options as {"key": value, ...}, and back; from_json rejects
// unknown keys and wrong types (integers read exactly), naming them.
nlohmann::json train_options_to_json(const TrainOptions& opt);
TrainOptions train_options_from_json(const nlohmann::json& j);
// "key: value" lines, for printing the resolved config at start.
std::string train_options_to_string(const TrainOptions& opt);

}  // namespace lathe
