// lathe export --format gguf | gguf-lora through the binary: the GGUF of a real model (stories260K)
// generates exactly what its HF directory does, with or without a LoRA merged in, and keeps the
// tokenizer; the GGUF adapter carries llama.cpp's keys; bad input fails with a message.
#include <gtest/gtest.h>

#include "lathe/core/rng.h"
#include "lathe/formats/gguf.h"
#include "lathe/peft/lora.h"
#include "test_util.h"

using namespace lathe;

namespace {

std::string generate(const std::string& model) {
  std::string out;
  EXPECT_EQ(0, test::run_lathe("generate --model " + model + " --prompt 'Once upon a time' --max-new-tokens 24 --json",
                               &out, true))
      << out;
  return out;
}

// A LoRA on q/k/v/o with non-zero B, saved in PEFT layout.
void make_adapter(const std::string& base, const std::string& dir) {
  Model m = Model::load(base);
  LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  lc.use_rslora = true;
  lc.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"};
  auto a = LoraAdapter::create(m.config, lc, 1);
  Rng rng(2);
  for (Param* p : a->params())
    if (p->name.find("lora_B") != std::string::npos)
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.3f * rng.normal();
  a->save_peft(dir, base);
}

}  // namespace

TEST(ExportGguf, ModelAndAdapterThroughTheCli) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/model.safetensors");
  const std::string base = test::fixture_path("models/stories260K-hf");
  test::TempDir tmp;
  std::string out;
  ASSERT_EQ(0, test::run_lathe("export --model " + base + " --format gguf --gguf-type f32 --output " + (tmp / "s.gguf"),
                               &out, true))
      << out;
  EXPECT_EQ(generate(base), generate(tmp / "s.gguf"));

  make_adapter(base, tmp / "lora");
  ASSERT_EQ(0, test::run_lathe("export --model " + base + " --adapter " + (tmp / "lora") + " --output " +
                                   (tmp / "merged"), &out, true)) << out;
  ASSERT_EQ(0, test::run_lathe("export --model " + base + " --adapter " + (tmp / "lora") +
                                   " --format gguf --gguf-type f32 --output " + (tmp / "m.gguf"), &out, true)) << out;
  std::string merged = generate(tmp / "merged");
  EXPECT_EQ(merged, generate(tmp / "m.gguf"));
  EXPECT_NE(merged, generate(base));  // the adapter changes the output, so the comparison means something

  // Merging into the GGUF base gives the same file contents as merging into the HF base.
  ASSERT_EQ(0, test::run_lathe("export --model " + (tmp / "s.gguf") + " --adapter " + (tmp / "lora") +
                                   " --format gguf --gguf-type f32 --output " + (tmp / "m2.gguf"), &out, true)) << out;
  EXPECT_EQ(merged, generate(tmp / "m2.gguf"));

  ASSERT_EQ(0, test::run_lathe("export --model " + base + " --adapter " + (tmp / "lora") +
                                   " --format gguf-lora --gguf-type f16 --output " + (tmp / "a.gguf"), &out, true)) << out;
  GgufFile a = GgufFile::open(tmp / "a.gguf");
  EXPECT_EQ(a.get_string("general.type", ""), "adapter");
  EXPECT_EQ(a.get_string("adapter.type", ""), "lora");
  EXPECT_FLOAT_EQ(float(a.get_float("adapter.lora.alpha", 0)), 16.0f);  // rsLoRA: 8·√4
  EXPECT_EQ(a.tensors().size(), size_t(5 * 4 * 2));
  EXPECT_EQ(a.tensor_info("blk.4.attn_output.weight.lora_b").ggml_type, 1u);  // F16
}

TEST(ExportGguf, BadInputFailsWithAMessage) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/model.safetensors");
  const std::string base = test::fixture_path("models/stories260K-hf");
  test::TempDir tmp;
  std::string out;
  EXPECT_NE(0, test::run_lathe("export --model " + base + " --format gguf-lora --output " + (tmp / "a.gguf"), &out, true));
  EXPECT_NE(out.find("needs --adapter"), std::string::npos) << out;
  EXPECT_NE(0, test::run_lathe("export --model " + base + " --format gguf --gguf-type q5_k --output " + (tmp / "a.gguf"),
                               &out, true));
  EXPECT_NE(out.find("q5_k"), std::string::npos) << out;
}

// llama.cpp's qwen2 loader expects attn_q/attn_output of hidden×hidden (it ignores
// attention.key_length), so a qwen2 model whose head_dim × heads differs from hidden_size is refused
// rather than written as a file llama.cpp fails to load ("wrong shape"). llama and qwen3 read
// key_length and export such models.
TEST(ExportGguf, Qwen2WithOtherHeadDimIsRefused) {
  test::TempDir tmp;
  std::string out;
  ASSERT_EQ(0, test::run_lathe("init-model --arch qwen2 --hidden-size 64 --num-attention-heads 4 --head-dim 8 "
                               "--num-hidden-layers 1 --output " + (tmp / "q2"), &out, true)) << out;
  EXPECT_NE(0, test::run_lathe("export --model " + (tmp / "q2") + " --format gguf --gguf-type f32 --output " +
                                   (tmp / "q2.gguf"), &out, true));
  EXPECT_NE(out.find("qwen2 model with head_dim 8 x 4 heads != hidden_size 64"), std::string::npos) << out;

  ASSERT_EQ(0, test::run_lathe("init-model --arch qwen3 --hidden-size 64 --num-attention-heads 4 --head-dim 8 "
                               "--num-hidden-layers 1 --output " + (tmp / "q3"), &out, true)) << out;
  test::run_lathe("export --model " + (tmp / "q3") + " --format gguf --gguf-type f32 --output " + (tmp / "q3.gguf"),
                  &out, true);
  EXPECT_EQ(out.find("head_dim"), std::string::npos) << out;  // (it may still stop at the missing tokenizer)
}
