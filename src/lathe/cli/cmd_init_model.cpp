// lathe init-model: a randomly initialised HF model directory, for tests, benchmarks and
// pre-training from scratch.
#include <cstdio>
#include <filesystem>

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

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("--arch", o->arch, "llama | mistral | qwen2 | qwen3")->capture_default_str();
  app.add_option("--hidden-size", o->hidden, "hidden_size (C)")->capture_default_str();
  app.add_option("--intermediate-size", o->intermediate, "intermediate_size (F)")->capture_default_str();
  app.add_option("--num-hidden-layers", o->layers, "num_hidden_layers (L)")->capture_default_str();
  app.add_option("--num-attention-heads", o->heads, "num_attention_heads (H)")->capture_default_str();
  app.add_option("--num-key-value-heads", o->kv_heads, "num_key_value_heads (default: = heads)");
  app.add_option("--head-dim", o->head_dim, "head_dim (default: hidden / heads)");
  auto* vocab_opt = app.add_option("--vocab-size", o->vocab, "vocab_size (V)")->capture_default_str();
  app.add_option("--tokenizer", o->tokenizer,
                 "Copy this tokenizer (a directory with tokenizer.json, or a tokenizer.json) into the model; "
                 "vocab_size and bos/eos ids follow it unless --vocab-size is given");
  app.add_option("--max-position-embeddings", o->max_pos, "max_position_embeddings")->capture_default_str();
  app.add_option("--rope-theta", o->rope_theta, "rope_theta")->capture_default_str();
  app.add_option("--rms-norm-eps", o->rms_eps, "rms_norm_eps")->capture_default_str();
  app.add_option("--initializer-range", o->init_std, "Std of the normal init of matrices (HF initializer_range)")
      ->capture_default_str();
  app.add_flag("--tie-word-embeddings", o->tie, "Share the embedding matrix with lm_head");
  app.add_option("--seed", o->seed, "Random seed")->capture_default_str();
  app.add_option("--output", o->output, "Output directory")->required();
  return [o, vocab_opt] {
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
      if (vocab_opt->count() == 0) c.vocab_size = tok->vocab_size();
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
