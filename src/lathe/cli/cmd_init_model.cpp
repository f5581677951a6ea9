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
};

// The command's options, declared once (core/options.h): flags (the HF config.json names), LATHE_*
// environment, defaults, help. project.yaml's base_model.build.model passes its keys on as these flags.
const lathe::OptionTable<Opts>& init_model_options() {
  static const lathe::OptionTable<Opts> table = [] {
    lathe::OptionTable<Opts> t("init-model");
    t.add("arch", &Opts::arch, "Architecture").one_of({"llama", "mistral", "qwen2", "qwen3"});
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
    bool vocab_given = false;
    for (const auto& g : given) vocab_given = vocab_given || g.option->key == "vocab_size";
    lathe::ModelConfig c;
    if (!lathe::arch_from_short_name(o->arch, &c.arch))
      lathe::fail("init-model", "unknown --arch '{}' (llama, mistral, qwen2, qwen3)", o->arch);
    c.hidden_size = o->hidden;
    c.intermediate_size = o->intermediate;
    c.num_hidden_layers = o->layers;
    c.num_attention_heads = o->heads;
    c.num_key_value_heads = o->kv_heads > 0 ? o->kv_heads : o->heads;
    c.head_dim = o->head_dim > 0 ? o->head_dim : (o->heads > 0 ? o->hidden / o->heads : 0);
    c.vocab_size = o->vocab;
    c.max_position_embeddings = o->max_pos;
    c.rope_theta = o->rope_theta;
    c.rms_norm_eps = o->rms_eps;
    c.tie_word_embeddings = o->tie;
    c.attention_bias = c.arch == lathe::Arch::Qwen2;
    c.qk_norm = c.arch == lathe::Arch::Qwen3;
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
