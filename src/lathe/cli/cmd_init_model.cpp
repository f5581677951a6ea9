// lathe init-model: a randomly initialised HF model directory, for tests, benchmarks and
// pre-training from scratch.
#include <cstdio>
#include <filesystem>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/model/model.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {

struct Opts {
  std::string arch = "llama", output, tokenizer;
  int hidden = 64, intermediate = 172, layers = 2, heads = 4, kv_heads = 0, vocab = 512, head_dim = 0;
  int max_pos = 2048;
  float rope_theta = 10000.0f, rms_eps = 1e-5f, init_std = 0.02f;
  bool tie = false;
  uint64_t seed = 0;
  // Family keys; a negative value leaves the family's HF default.
  int sliding_window = -1, sliding_window_pattern = -1, no_rope_layer_interval = -1;
  float query_pre_attn_scalar = -1, attn_logit_softcapping = -1, final_logit_softcapping = -1;
  float partial_rotary_factor = -1, rope_local_base_freq = -1;
};

// The command's options, declared once (core/options.h): flags (the HF config.json names), LATHE_*
// environment, defaults, help. project.yaml's base_model.build.model passes its keys on as these flags.
const lathe::OptionTable<Opts>& init_model_options() {
  static const lathe::OptionTable<Opts> table = [] {
    lathe::OptionTable<Opts> t("init-model");
    t.add("arch", &Opts::arch, "Architecture")
        .one_of({"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "smollm3", "exaone", "exaone4"});
    t.add("hidden_size", &Opts::hidden, "hidden_size (C)").min(1);
    t.add("intermediate_size", &Opts::intermediate, "intermediate_size (F)").min(1);
    t.add("num_hidden_layers", &Opts::layers, "num_hidden_layers (L)").min(1);
    t.add("num_attention_heads", &Opts::heads, "num_attention_heads (H)").min(1);
    t.add("num_key_value_heads", &Opts::kv_heads, "num_key_value_heads (0 = num_attention_heads)").min(0);
    t.add("head_dim", &Opts::head_dim, "head_dim (0 = hidden_size / num_attention_heads)").min(0);
    t.add("vocab_size", &Opts::vocab, "vocab_size (V)").min(1);
    t.add("tokenizer", &Opts::tokenizer,
          "Copy this tokenizer (a directory with tokenizer.json, or a tokenizer.json) into the model; vocab_size and "
          "bos/eos ids follow it unless vocab_size is given");
    t.add("max_position_embeddings", &Opts::max_pos, "max_position_embeddings").min(1);
    t.add("rope_theta", &Opts::rope_theta, "rope_theta").above(0);
    t.add("rms_norm_eps", &Opts::rms_eps, "rms_norm_eps").above(0);
    t.add("initializer_range", &Opts::init_std, "Std of the normal init of matrices (HF initializer_range)").above(0);
    t.add("tie_word_embeddings", &Opts::tie, "Share the embedding matrix with lm_head");
    t.add("seed", &Opts::seed, "Random seed");
    t.add("sliding_window", &Opts::sliding_window,
          "Keys a sliding-window layer sees (0 = none; -1 = the family's default)").min(-1);
    t.add("sliding_window_pattern", &Opts::sliding_window_pattern,
          "Every N-th layer is global, the others slide (Gemma 3, EXAONE 4; -1 = default)").min(-1);
    t.add("no_rope_layer_interval", &Opts::no_rope_layer_interval,
          "Every N-th layer skips RoPE (SmolLM3; -1 = default)").min(-1);
    t.add("query_pre_attn_scalar", &Opts::query_pre_attn_scalar, "Attention scale 1/sqrt(this) (Gemma; -1 = default)");
    t.add("attn_logit_softcapping", &Opts::attn_logit_softcapping, "Attention logit soft-cap (Gemma 2; 0 = off)");
    t.add("final_logit_softcapping", &Opts::final_logit_softcapping, "Final logit soft-cap (Gemma 2; 0 = off)");
    t.add("partial_rotary_factor", &Opts::partial_rotary_factor, "Fraction of head_dim RoPE rotates (Phi-3)");
    t.add("rope_local_base_freq", &Opts::rope_local_base_freq, "RoPE base of sliding layers (Gemma 3)");
    t.add("output", &Opts::output, "Output directory").needed();
    return t;
  }();
  return table;
}

std::function<int()> setup(CLI::App& app) {
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, init_model_options());
  return [flags] {
    auto o = std::make_shared<Opts>();
    const lathe::OptionSettings given = flags->overrides();  // defaults < LATHE_* environment < flags
    init_model_options().apply(*o, given);
    init_model_options().check(*o);
    bool vocab_given = false, tie_given = false;
    for (const auto& g : given) {
      vocab_given = vocab_given || g.option->key == "vocab_size";
      tie_given = tie_given || g.option->key == "tie_word_embeddings";
    }
    // A config.json as the family's HF config class writes it, read back by the one parser, so
    // every family default applies exactly as for a downloaded model.
    lathe::ModelConfig probe;
    if (!lathe::arch_from_short_name(o->arch, &probe.arch))
      lathe::fail("init-model", "unknown --arch '{}'", o->arch);
    const bool exaone = probe.arch == lathe::Arch::Exaone;
    nlohmann::json j;
    j["architectures"] = {lathe::arch_hf_name(probe.arch)};
    j["hidden_size"] = o->hidden;
    j["intermediate_size"] = o->intermediate;
    j[exaone ? "num_layers" : "num_hidden_layers"] = o->layers;
    j["num_attention_heads"] = o->heads;
    j["num_key_value_heads"] = o->kv_heads > 0 ? o->kv_heads : o->heads;
    j["head_dim"] = o->head_dim > 0 ? o->head_dim : (o->heads > 0 ? o->hidden / o->heads : 0);
    j["vocab_size"] = o->vocab;
    j["max_position_embeddings"] = o->max_pos;
    j["rope_theta"] = o->rope_theta;
    j[exaone ? "layer_norm_epsilon" : "rms_norm_eps"] = o->rms_eps;
    if (tie_given) j["tie_word_embeddings"] = o->tie;  // else the family's default (Gemma, EXAONE: tied)
    if (o->sliding_window >= 0)
      j["sliding_window"] = o->sliding_window > 0 ? nlohmann::json(o->sliding_window) : nlohmann::json();
    if (o->sliding_window_pattern >= 0) j["sliding_window_pattern"] = o->sliding_window_pattern;
    if (o->no_rope_layer_interval >= 0) j["no_rope_layer_interval"] = o->no_rope_layer_interval;
    if (o->query_pre_attn_scalar >= 0) j["query_pre_attn_scalar"] = o->query_pre_attn_scalar;
    if (o->attn_logit_softcapping >= 0) j["attn_logit_softcapping"] = o->attn_logit_softcapping;
    if (o->final_logit_softcapping >= 0) j["final_logit_softcapping"] = o->final_logit_softcapping;
    if (o->partial_rotary_factor >= 0) j["partial_rotary_factor"] = o->partial_rotary_factor;
    if (o->rope_local_base_freq >= 0) j["rope_local_base_freq"] = o->rope_local_base_freq;
    lathe::ModelConfig c = lathe::config_from_hf_json(j, "init-model");
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    std::unique_ptr<lathe::Tokenizer> tok;
    if (!o->tokenizer.empty()) {
      tok = lathe::Tokenizer::load(o->tokenizer);
      if (!vocab_given) c.vocab_size = tok->vocab_size();
      if (c.vocab_size < tok->vocab_size())
        lathe::fail("init-model", "--vocab-size {} is smaller than the tokenizer's {} tokens", c.vocab_size,
                    tok->vocab_size());
      c.bos_token_id = tok->bos_id();
      c.eos_token_id = tok->eos_id();
    }
    lathe::Model m = lathe::Model::init_random(c, o->seed, o->init_std);
    m.save_hf_dir(o->output);
    if (!o->tokenizer.empty()) {
      if (std::filesystem::is_directory(o->tokenizer))
        lathe::copy_tokenizer_files(o->tokenizer, o->output);
      else
        lathe::write_file_atomic(o->output + "/tokenizer.json", lathe::read_file(o->tokenizer));
    }
    std::printf("wrote %s: %s, %.2fM parameters\n", o->output.c_str(), lathe::arch_hf_name(c.arch),
                double(c.num_parameters()) / 1e6);
    return 0;
  };
}
LATHE_COMMAND("init-model", "Write a randomly initialised Hugging Face model directory", setup);

}  // namespace
