// GGUF model export: a model written by add_model_to_gguf and read back by Model::load_gguf has the
// same weights (f32 bit-exact, f16/q8_0 within their rounding) and the same logits; the HF->GGUF
// q/k row order matches llama.cpp's own converter on a real file (stories260K).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/rng.h"
#include "lathe/formats/gguf.h"
#include "lathe/model/forward.h"
#include "lathe/model/gguf_export.h"
#include "test_util.h"
#include "model/model_logits.h"

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
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.max_position_embeddings = 128;
  c.attention_bias = arch == Arch::Qwen2;
  c.qk_norm = arch == Arch::Qwen3;
  c.tie_word_embeddings = arch == Arch::Qwen3;
  return c;
}

using lathe::test::logits_of;

Model export_and_reload(const Model& m, GgmlType type, const test::TempDir& dir) {
  GgufWriter w;
  add_model_to_gguf(m, type, "tiny", w);
  w.write(dir / "m.gguf");
  return Model::load_gguf(dir / "m.gguf");
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); i++) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

const std::vector<int32_t> kIds = {1, 5, 9, 33, 2, 60, 17, 42};

}  // namespace

class GgufExportArch : public ::testing::TestWithParam<Arch> {};

TEST_P(GgufExportArch, F32RoundTripIsExact) {
  Model m = Model::init_random(tiny(GetParam()), 7);
  if (m.config.attention_bias) {  // random biases, so their permutation (or not) is visible
    Rng rng(3);
    for (auto& l : m.weights.layers)
      for (Tensor* b : {&l.bq, &l.bk, &l.bv})
        for (int64_t i = 0; i < b->numel(); i++) b->f32()[i] = 0.1f * rng.normal();
  }
  test::TempDir dir;
  Model g = export_and_reload(m, GgmlType::F32, dir);
  EXPECT_EQ(g.config.tie_word_embeddings, m.config.tie_word_embeddings);
  EXPECT_EQ(g.config.num_key_value_heads, 2);
  ModelWeights a = m.weights, b = g.weights;
  std::vector<Tensor*> ta, tb;
  for_each_tensor(m.config, a, [&](TensorSlot& s) { ta.push_back(s.tensor); });
  for_each_tensor(g.config, b, [&](TensorSlot& s) { tb.push_back(s.tensor); });
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); i++) {
    ASSERT_EQ(ta[i]->shape, tb[i]->shape);
    EXPECT_EQ(0, std::memcmp(ta[i]->data, tb[i]->data, ta[i]->nbytes())) << "tensor " << i;
  }
  EXPECT_EQ(logits_of(m, kIds), logits_of(g, kIds));
}

TEST_P(GgufExportArch, F16AndQ8WithinTolerance) {
  Model m = Model::init_random(tiny(GetParam()), 11);
  std::vector<float> ref = logits_of(m, kIds);
  float scale = 0;
  for (float v : ref) scale = std::max(scale, std::fabs(v));
  test::TempDir dir;
  Model h = export_and_reload(m, GgmlType::F16, dir);
  EXPECT_LT(max_abs_diff(ref, logits_of(h, kIds)), 2e-3f * scale + 1e-5f);
  Model q = export_and_reload(m, GgmlType::Q8_0, dir);
  EXPECT_LT(max_abs_diff(ref, logits_of(q, kIds)), 3e-2f * scale + 1e-4f);
  EXPECT_GT(max_abs_diff(ref, logits_of(q, kIds)), 0.0f);  // q8_0 really was quantized
}

INSTANTIATE_TEST_SUITE_P(Archs, GgufExportArch, ::testing::Values(Arch::Llama, Arch::Qwen2, Arch::Qwen3));

TEST(GgufExport, MatrixTypesAndMetadata) {
  Model m = Model::init_random(tiny(Arch::Llama), 5);
  GgufWriter w;
  add_model_to_gguf(m, GgmlType::Q8_0, "tiny", w);
  std::string bytes = w.to_bytes();
  GgufFile g = GgufFile::parse("mem", nullptr, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(g.get_string("general.architecture", ""), "llama");
  EXPECT_EQ(g.get_int("general.file_type", -1), 7);
  EXPECT_EQ(g.get_int("general.quantization_version", -1), 2);
  EXPECT_EQ(g.get_int("llama.attention.head_count_kv", -1), 2);
  EXPECT_EQ(g.get_int("llama.rope.dimension_count", -1), 8);
  EXPECT_EQ(g.tensor_info("blk.0.attn_q.weight").ggml_type, uint32_t(GgmlType::Q8_0));
  EXPECT_EQ(g.tensor_info("blk.0.attn_norm.weight").ggml_type, uint32_t(GgmlType::F32));
  EXPECT_EQ(g.tensor_info("output.weight").dims, (std::vector<int64_t>{32, 64}));  // ggml order
  EXPECT_THROW(parse_gguf_type("q5_k"), Error);
}

// llama.cpp's converter made stories260K.gguf from the same weights as stories260K-hf: our export
// of the HF directory must reproduce its tensors byte for byte (names, ggml dims, q/k row order).
TEST(GgufExport, MatchesLlamaCppConverterOnStories) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/model.safetensors");
  LATHE_REQUIRE_FIXTURE("models/gguf/stories260K.gguf");
  Model m = Model::load_hf_dir(test::fixture_path("models/stories260K-hf"));
  GgufWriter w;
  add_model_to_gguf(m, GgmlType::F32, "", w);
  std::string bytes = w.to_bytes();
  GgufFile ours = GgufFile::parse("ours", nullptr, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  GgufFile ref = GgufFile::open(test::fixture_path("models/gguf/stories260K.gguf"));
  // The reference stores the tied output matrix a second time as output.weight; the HF directory
  // (tie_word_embeddings) and our export do not.
  ASSERT_EQ(ours.tensors().size() + 1, ref.tensors().size());
  ASSERT_TRUE(ref.has_tensor("output.weight"));
  EXPECT_EQ(0, std::memcmp(ref.tensor_data("output.weight"), ref.tensor_data("token_embd.weight"),
                           ref.tensor_info("token_embd.weight").nbytes));
  for (auto& t : ref.tensors()) {
    if (t.name == "output.weight") continue;
    ASSERT_TRUE(ours.has_tensor(t.name)) << t.name;
    const GgufTensorInfo& o = ours.tensor_info(t.name);
    EXPECT_EQ(o.dims, t.dims) << t.name;
    ASSERT_EQ(o.nbytes, t.nbytes) << t.name;
    EXPECT_EQ(0, std::memcmp(ours.tensor_data(t.name), ref.tensor_data(t.name), t.nbytes)) << t.name;
  }
  for (const char* k : {"llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                        "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.dimension_count"})
    EXPECT_EQ(ours.get_int(k, -1), ref.get_int(k, -2)) << k;
  EXPECT_FLOAT_EQ(float(ours.get_float("llama.attention.layer_norm_rms_epsilon", 0)),
                  float(ref.get_float("llama.attention.layer_norm_rms_epsilon", 1)));
}
