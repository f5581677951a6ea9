// Encoder forward speed (model/encoder.h): texts per second for B random sequences of T tokens.
//
//   encoder_bench DIR [T=128] [B=16] [reps=3]        time an encoder directory
//   encoder_bench --make-bge-m3-shape DIR            write a random encoder shaped like bge-m3 /
//                                                    multilingual-e5-large (XLM-R, hidden 1024, 24 layers,
//                                                    16 heads, intermediate 4096, 514 positions; F16) with
//                                                    a 1000-token vocabulary (the vocabulary is a table
//                                                    lookup: it costs memory, not time)
//
// The reference point is the FLOP count: 2 x params x tokens for the linears plus 4 x T x C per token
// for attention; the printout gives the achieved GFLOP/s to compare with sgemm_peak.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/threads.h"
#include "lathe/formats/safetensors.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/encoder.h"

namespace {

void make_random(const std::string& dir) {
  const int V = 1000, C = 1024, L = 24, H = 16, F = 4096, P = 514;
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = {{"model_type", "xlm-roberta"}, {"vocab_size", V}, {"hidden_size", C},
                        {"num_hidden_layers", L}, {"num_attention_heads", H}, {"intermediate_size", F},
                        {"max_position_embeddings", P}, {"type_vocab_size", 1}, {"pad_token_id", 1},
                        {"layer_norm_eps", 1e-5}, {"hidden_act", "gelu"}};
  lathe::write_file_atomic(dir + "/config.json", cfg.dump(2));
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<std::pair<std::string, lathe::Tensor>> ts;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float fill) {
    lathe::Tensor t = lathe::Tensor::empty(lathe::DType::F16, shape);
    auto* p = t.as<uint16_t>();
    for (int64_t i = 0; i < t.numel(); i++) p[i] = lathe::f32_to_f16(fill != 0.0f ? fill : nd(rng));
    ts.emplace_back(name, t);
  };
  add("embeddings.word_embeddings.weight", {V, C}, 0);
  add("embeddings.position_embeddings.weight", {P, C}, 0);
  add("embeddings.token_type_embeddings.weight", {1, C}, 0);
  add("embeddings.LayerNorm.weight", {C}, 1.0f);
  add("embeddings.LayerNorm.bias", {C}, 0);
  for (int l = 0; l < L; l++) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    for (const char* m : {"query", "key", "value"}) {
      add(p + "attention.self." + m + ".weight", {C, C}, 0);
      add(p + "attention.self." + m + ".bias", {C}, 0);
    }
    add(p + "attention.output.dense.weight", {C, C}, 0);
    add(p + "attention.output.dense.bias", {C}, 0);
    add(p + "attention.output.LayerNorm.weight", {C}, 1.0f);
    add(p + "attention.output.LayerNorm.bias", {C}, 0);
    add(p + "intermediate.dense.weight", {F, C}, 0);
    add(p + "intermediate.dense.bias", {F}, 0);
    add(p + "output.dense.weight", {C, F}, 0);
    add(p + "output.dense.bias", {C}, 0);
    add(p + "output.LayerNorm.weight", {C}, 1.0f);
    add(p + "output.LayerNorm.bias", {C}, 0);
  }
  lathe::safetensors_write(dir + "/model.safetensors", ts);
  std::printf("wrote %s (bge-m3 shape, vocab %d, F16)\n", dir.c_str(), V);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc >= 3 && std::string(argv[1]) == "--make-bge-m3-shape") {
    make_random(argv[2]);
    return 0;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: encoder_bench DIR [T] [B] [reps] | --make-bge-m3-shape DIR\n");
    return 2;
  }
  const int T = argc > 2 ? std::atoi(argv[2]) : 128, B = argc > 3 ? std::atoi(argv[3]) : 16;
  const int reps = argc > 4 ? std::atoi(argv[4]) : 3;
  lathe::cpu_set_num_threads(std::getenv("LATHE_THREADS") ? std::atoi(std::getenv("LATHE_THREADS")) : 0);
  auto t0 = std::chrono::steady_clock::now();
  lathe::Encoder enc = lathe::Encoder::load(argv[1]);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& c = enc.config();
  const int len = std::min(T, c.max_tokens());
  std::mt19937 rng(1);
  std::vector<std::vector<int32_t>> seqs(B, std::vector<int32_t>(len));
  for (auto& s : seqs)
    for (auto& id : s) id = int32_t(rng() % uint32_t(c.vocab_size));
  const double C = c.hidden_size, F = c.intermediate_size;
  const double flops = double(B) * len * c.num_hidden_layers * (2.0 * (4 * C * C + 2 * C * F) + 4.0 * len * C);
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    auto a = std::chrono::steady_clock::now();
    auto h = enc.forward_packed(seqs);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::printf("%s: C %d, L %d, F %d | load %.2f s | %d texts x %d tokens: best of %d %.3f s = %.1f texts/s, "
              "%.0f tokens/s, %.1f GFLOP/s (%d threads)\n",
              argv[1], c.hidden_size, c.num_hidden_layers, c.intermediate_size, load_s, B, len, reps, best, B / best,
              B * len / best, flops / best / 1e9, lathe::num_threads());
  return 0;
} catch (const lathe::Error& e) {
  std::fprintf(stderr, "encoder_bench: %s\n", e.what());
  return 1;
}
