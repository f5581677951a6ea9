// GGUF LoRA adapters of the model families: the tensors are named like the base GGUF's (Phi-3's fused
// qkv_proj -> attn_qkv, gate_up_proj -> ffn_up; EXAONE 3's own module names -> attn_q, ffn_gate, ...),
// and applying the adapter the way llama.cpp does (W + alpha/r · B A on the base GGUF's tensors, q/k
// rows permuted for SmolLM3 as for its base) gives the GGUF of the merged model.
#include <gtest/gtest.h>

#include <cmath>

#include "lathe/core/rng.h"
#include "lathe/formats/gguf.h"
#include "lathe/model/gguf_export.h"
#include "lathe/peft/gguf_adapter.h"
#include "test_util.h"

using namespace lathe;

namespace {

GgufFile parse(std::shared_ptr<std::string> bytes) {
  return GgufFile::parse("mem", bytes, reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
}

std::shared_ptr<std::string> model_gguf(const Model& m) {
  GgufWriter w;
  add_model_to_gguf(m, GgmlType::F32, "", w);
  return std::make_shared<std::string>(w.to_bytes());
}

}  // namespace

class GgufAdapterFamily : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufAdapterFamily, NamesMatchTheBaseAndApplyLikeTheMergedExport) {
  const std::string dir = test::source_path(std::string("tests/data/golden/") + GetParam());
  Model base = Model::load_hf_dir(dir);
  const ModelConfig& mc = base.config;
  LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8.0f;
  lc.target_modules = {"all-linear"};
  auto a = LoraAdapter::create(mc, lc, 9);
  Rng rng(21);
  for (Param* p : a->params())
    if (p->name.find("lora_B") != std::string::npos)
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.05f * rng.normal();
  GgufWriter aw;
  add_lora_to_gguf(*a, mc, GgmlType::F32, "", aw);
  auto abytes = std::make_shared<std::string>(aw.to_bytes());
  auto bbytes = model_gguf(base);
  Model merged = Model::load_hf_dir(dir);
  a->merge_into(merged);
  auto mbytes = model_gguf(merged);
  GgufFile ad = parse(abytes), bg = parse(bbytes), mg = parse(mbytes);
  EXPECT_EQ(ad.get_string("general.architecture", ""), bg.get_string("general.architecture", "?"));
  const float alpha = float(ad.get_float("adapter.lora.alpha", 0));
  int checked = 0;
  for (auto& t : ad.tensors()) {
    if (t.name.size() < 7 || t.name.substr(t.name.size() - 7) != ".lora_a") continue;
    std::string w = t.name.substr(0, t.name.size() - 7);
    ASSERT_TRUE(bg.has_tensor(w)) << w << " is not a tensor of the base GGUF";
    Tensor A = ad.tensor_f32(w + ".lora_a"), B = ad.tensor_f32(w + ".lora_b");
    Tensor W = bg.tensor_f32(w), M = mg.tensor_f32(w);
    const int64_t r = B.shape[1], out = W.shape[0], in = W.shape[1];
    const float scale = alpha / float(r);
    float maxd = 0;
    for (int64_t o = 0; o < out; o++)
      for (int64_t i = 0; i < in; i++) {
        float v = W.f32()[o * in + i];
        for (int64_t j = 0; j < r; j++) v += scale * B.f32()[o * r + j] * A.f32()[j * in + i];
        maxd = std::max(maxd, std::fabs(v - M.f32()[o * in + i]));
      }
    EXPECT_LT(maxd, 1e-5f) << w;
    checked++;
  }
  EXPECT_EQ(checked, int(linear_ids(mc).size()) * mc.num_hidden_layers);
  if (mc.fused_qkv) {
    EXPECT_TRUE(ad.has_tensor("blk.0.attn_qkv.weight.lora_a"));
    EXPECT_TRUE(ad.has_tensor("blk.0.ffn_up.weight.lora_b"));
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, GgufAdapterFamily,
                         ::testing::Values("gemma2", "gemma3", "phi3", "smollm3", "exaone", "exaone4"));
