// lathe inspect: what a model file is, how big, and what it will need in memory.
#include <cstdio>

#include "lathe/cli/command.h"
#include "lathe/model/forward.h"
#include "lathe/model/model.h"

namespace {

std::function<int()> setup(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto ctx = std::make_shared<int>(0);
  app.add_option("PATH", *path, "HF model directory or .gguf file")->required();
  app.add_option("--context-length", *ctx, "Context for the KV-cache estimate (default: max_position_embeddings)");
  return [path, ctx] {
    lathe::Model m = lathe::Model::load(*path);
    const lathe::ModelConfig& c = m.config;
    int T = *ctx > 0 ? *ctx : c.max_position_embeddings;
    std::printf("model           %s (%s)\n", m.source.c_str(), m.format.c_str());
    std::printf("architecture    %s\n", lathe::arch_hf_name(c.arch));
    std::printf("parameters      %lld (%.2fM)\n", (long long)c.num_parameters(), c.num_parameters() / 1e6);
    std::printf("layers %d  hidden %d  ffn %d  heads %d  kv_heads %d  head_dim %d  vocab %d\n",
                c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
                c.num_key_value_heads, c.head_dim, c.vocab_size);
    std::printf("rope_theta %g  scaling %s  rms_norm_eps %g  max_positions %d  tied %s  qkv_bias %s  qk_norm %s\n",
                c.rope_theta,
                c.rope_scaling.type == lathe::RopeScaling::None     ? "none"
                : c.rope_scaling.type == lathe::RopeScaling::Linear ? "linear"
                                                                    : "llama3",
                c.rms_norm_eps, c.max_position_embeddings, c.tie_word_embeddings ? "yes" : "no",
                c.attention_bias ? "yes" : "no", c.qk_norm ? "yes" : "no");
    std::printf("\n%-48s %-16s %s\n", "tensor", "shape", "stored dtype");
    for (auto& t : m.stored)
      std::printf("%-48s %-16s %s\n", t.name.c_str(), lathe::shape_to_string(t.shape).c_str(), t.stored_dtype.c_str());
    double kv = 2.0 * c.num_hidden_layers * T * c.kv_dim() * 4;
    std::printf("\nmemory (f32 compute)\n  weights         %8.1f MiB\n  kv cache @%-5d %8.1f MiB\n",
                m.weight_bytes_f32 / 1048576.0, T, kv / 1048576.0);
    return 0;
  };
}
LATHE_COMMAND("inspect", "Architecture, parameter count, dtypes, tensor table, memory needed", setup);

}  // namespace
