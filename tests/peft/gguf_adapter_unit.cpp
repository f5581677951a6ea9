// llama.cpp GGUF LoRA adapters: metadata, tensor names and ggml shapes as convert_lora_to_gguf.py
// writes them (REFERENCE.md §2.6), and applying the adapter the way llama.cpp does
// (W_gguf + alpha/rank · B_gguf A, rank = b.ne[0]) equals the GGUF export of the merged model.
#include <gtest/gtest.h>

#include <cmath>

#include "lathe/core/rng.h"
#include "lathe/formats/gguf.h"
#include "lathe/model/gguf_export.h"
#include "lathe/peft/gguf_adapter.h"
#include "test_util.h"

using namespace lathe;

namespace {

ModelConfig tiny(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 128;
  c.attention_bias = arch == Arch::Qwen2;
  return c;
}

std::unique_ptr<LoraAdapter> random_adapter(const ModelConfig& mc, bool rslora) {
  LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8.0f;
  lc.use_rslora = rslora;
  lc.target_modules = {"all-linear"};
  auto a = LoraAdapter::create(mc, lc, 9);
  Rng rng(21);
  for (Param* p : a->params())  // B starts at zero; give it values so the adapter does something
    if (p->name.find("lora_B") != std::string::npos)
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.05f * rng.normal();
  return a;
}

GgufFile parse(const std::string& bytes) {
  return GgufFile::parse("mem", nullptr, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string model_gguf(const Model& m) {
  GgufWriter w;
  add_model_to_gguf(m, GgmlType::F32, "", w);
  return w.to_bytes();
}

}  // namespace

TEST(GgufAdapter, MetadataNamesAndShapes) {
  ModelConfig mc = tiny(Arch::Llama);
  auto a = random_adapter(mc, /*rslora=*/true);
  GgufWriter w;
  add_lora_to_gguf(*a, mc, GgmlType::F32, "ad", w);
  std::string bytes = w.to_bytes();
  GgufFile g = parse(bytes);
  EXPECT_EQ(g.get_string("general.type", ""), "adapter");
  EXPECT_EQ(g.get_string("general.architecture", ""), "llama");
  EXPECT_EQ(g.get_string("adapter.type", ""), "lora");
  EXPECT_EQ(g.get("adapter.lora.alpha").type, GgufType::F32);
  // rsLoRA: PEFT scales by alpha/√r; llama.cpp by alpha'/r, so alpha' = alpha·√r = 8·2.
  EXPECT_FLOAT_EQ(float(g.get_float("adapter.lora.alpha", 0)), 16.0f);
  EXPECT_EQ(g.tensors().size(), size_t(2 * 7 * 2));
  struct Want {
    const char* name;
    int64_t in, out;
  };
  for (int l = 0; l < 2; l++)
    for (Want x : {Want{"attn_q", 32, 32}, Want{"attn_k", 32, 16}, Want{"attn_v", 32, 16}, Want{"attn_output", 32, 32},
                   Want{"ffn_gate", 32, 64}, Want{"ffn_up", 32, 64}, Want{"ffn_down", 64, 32}}) {
      std::string base = "blk." + std::to_string(l) + "." + x.name + ".weight";
      ASSERT_TRUE(g.has_tensor(base + ".lora_a")) << base;
      EXPECT_EQ(g.tensor_info(base + ".lora_a").dims, (std::vector<int64_t>{x.in, 4})) << base;   // ne [n_in, r]
      EXPECT_EQ(g.tensor_info(base + ".lora_b").dims, (std::vector<int64_t>{4, x.out})) << base;  // ne [r, n_out]
    }
  // Q8_0: A rows (in = 32, 64) quantize; B rows (r = 4) cannot and fall back to F16.
  GgufWriter wq;
  add_lora_to_gguf(*a, mc, GgmlType::Q8_0, "", wq);
  GgufFile q = parse(wq.to_bytes());
  EXPECT_EQ(q.tensor_info("blk.0.attn_q.weight.lora_a").ggml_type, uint32_t(GgmlType::Q8_0));
  EXPECT_EQ(q.tensor_info("blk.0.attn_q.weight.lora_b").ggml_type, uint32_t(GgmlType::F16));
}

class GgufAdapterApply : public ::testing::TestWithParam<std::tuple<Arch, bool>> {};

TEST_P(GgufAdapterApply, LlamaCppStyleApplyEqualsMergedExport) {
  auto [arch, rslora] = GetParam();
  ModelConfig mc = tiny(arch);
  Model base = Model::init_random(mc, 4);
  auto a = random_adapter(mc, rslora);
  GgufWriter aw;
  add_lora_to_gguf(*a, mc, GgmlType::F32, "", aw);
  std::string abytes = aw.to_bytes(), bbytes = model_gguf(base);
  Model merged = Model::init_random(mc, 4);
  a->merge_into(merged);
  std::string mbytes = model_gguf(merged);
  GgufFile ad = parse(abytes), bg = parse(bbytes), mg = parse(mbytes);
  const float alpha = float(ad.get_float("adapter.lora.alpha", 0));
  int checked = 0;
  for (auto& t : ad.tensors()) {
    if (t.name.size() < 7 || t.name.substr(t.name.size() - 7) != ".lora_a") continue;
    std::string w = t.name.substr(0, t.name.size() - 7);
    Tensor A = ad.tensor_f32(w + ".lora_a"), B = ad.tensor_f32(w + ".lora_b");  // [r,in], [out,r]
    Tensor W = bg.tensor_f32(w), M = mg.tensor_f32(w);                          // [out,in]
    const int64_t r = B.shape[1], out = W.shape[0], in = W.shape[1];
    const float scale = alpha / float(r);  // llama-adapter.h get_scale with user scale 1, rank = b.ne[0]
    float maxd = 0;
    for (int64_t o = 0; o < out; o++)
      for (int64_t i = 0; i < in; i++) {
        float v = W.f32()[o * in + i];
        for (int64_t j = 0; j < r; j++) v += scale * B.f32()[o * r + j] * A.f32()[j * in + i];
        maxd = std::max(maxd, std::fabs(v - M.f32()[o * in + i]));
      }
    EXPECT_LT(maxd, 1e-6f) << w;
    checked++;
  }
  EXPECT_EQ(checked, 14);
}

INSTANTIATE_TEST_SUITE_P(ArchRs, GgufAdapterApply,
                         ::testing::Combine(::testing::Values(Arch::Llama, Arch::Qwen2), ::testing::Bool()));
