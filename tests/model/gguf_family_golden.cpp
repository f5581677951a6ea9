// GGUF export and import of every family (Gemma 2/3, Phi-3, SmolLM3, EXAONE 3/4, Llama 3 RoPE,
// Llama with attention biases): the golden HF directories written as GGUF and read back give the
// same logits (f32 bit for bit; f16 within its rounding), the family keys and tensors are llama.cpp's,
// and odd or missing keys fail naming the key.
#include <gtest/gtest.h>

#include <cmath>

#include "lathe/core/error.h"
#include "lathe/core/rng.h"
#include "lathe/formats/gguf.h"
#include "lathe/model/forward.h"
#include "lathe/model/gguf_export.h"
#include "test_util.h"
#include "model/model_logits.h"

using namespace lathe;

namespace {

using lathe::test::logits_of;

Model golden(const std::string& family) {
  Model m = Model::load_hf_dir(test::source_path("tests/data/golden/" + family));
  // A GGUF has no torch_dtype: llama.cpp scales Gemma's embeddings by sqrt(hidden) in f32, and so
  // does lathe on a GGUF. The HF side is compared with the same f32 scale.
  m.config.torch_dtype = "float32";
  return m;
}

std::string gguf_bytes(const Model& m, GgmlType type) {
  GgufWriter w;
  add_model_to_gguf(m, type, "golden", w);
  return w.to_bytes();
}

// The file keeps its own copy of the bytes (tensors are views into them).
GgufFile parse(const std::string& bytes) {
  auto owned = std::make_shared<std::string>(bytes);
  return GgufFile::parse("mem", owned, reinterpret_cast<const uint8_t*>(owned->data()), owned->size());
}

// A copy of a GGUF image with `key` replaced by `v` (when v is null: every key starting with `key`
// dropped) and the tensor `drop_tensor` left out, written to DIR/odd.gguf.
std::string rewrite(const test::TempDir& dir, const std::string& bytes, const std::string& key, const GgufValue* v,
                    const std::string& drop_tensor = "") {
  GgufFile src = parse(bytes);
  GgufWriter w;
  for (const auto& [k, val] : src.metadata())
    if (k != "general.alignment" && (v || key.empty() || k.rfind(key, 0) != 0)) w.set_value(k, v && k == key ? *v : val);
  if (v && !src.has(key)) w.set_value(key, *v);
  for (const auto& t : src.tensors()) {
    if (t.name == drop_tensor) continue;
    const uint8_t* p = src.tensor_data(t.name);
    w.add_tensor_raw(t.name, t.shape(), t.ggml_type, std::vector<uint8_t>(p, p + t.nbytes));
  }
  std::string out = dir / "odd.gguf";
  w.write(out);
  return out;
}

Model reload(const test::TempDir& dir, const std::string& bytes) {
  std::string path = dir / "m.gguf";
  write_file_atomic(path, bytes);
  return Model::load_gguf(path);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); i++) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

// Longer than every golden's sliding window, so the windows and per-layer patterns matter.
const std::vector<int32_t> kIds = {1, 5, 9, 33, 2, 60, 17, 42, 7, 11, 3, 25};

}  // namespace

class GgufFamily : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufFamily, F32RoundTripGivesIdenticalLogits) {
  Model hf = golden(GetParam());
  test::TempDir dir;
  Model g = reload(dir, gguf_bytes(hf, GgmlType::F32));
  const ModelConfig &a = hf.config, &b = g.config;
  EXPECT_EQ(b.arch == Arch::Mistral ? Arch::Llama : b.arch, a.arch);
  EXPECT_EQ(b.tie_word_embeddings, a.tie_word_embeddings);
  EXPECT_EQ(b.attention_scale(), a.attention_scale());
  EXPECT_EQ(b.rotary_dim(), a.rotary_dim());
  EXPECT_EQ(b.attn_logit_softcapping, a.attn_logit_softcapping);
  EXPECT_EQ(b.final_logit_softcapping, a.final_logit_softcapping);
  EXPECT_EQ(b.rope_scaling.type, a.rope_scaling.type);
  for (int l = 0; l < a.num_hidden_layers; l++) {
    EXPECT_EQ(b.layer_is_sliding(l), a.layer_is_sliding(l)) << "layer " << l;
    EXPECT_EQ(b.layer_uses_rope(l), a.layer_uses_rope(l)) << "layer " << l;
    EXPECT_EQ(b.layer_uses_local_rope(l), a.layer_uses_local_rope(l)) << "layer " << l;
  }
  EXPECT_EQ(logits_of(g, kIds), logits_of(hf, kIds));
}

TEST_P(GgufFamily, F16WithinTolerance) {
  Model hf = golden(GetParam());
  test::TempDir dir;
  Model h = reload(dir, gguf_bytes(hf, GgmlType::F16));
  std::vector<float> ref = logits_of(hf, kIds);
  float scale = 0;
  for (float v : ref) scale = std::max(scale, std::fabs(v));
  const float d = max_abs_diff(ref, logits_of(h, kIds));
  EXPECT_LT(d, 5e-3f * scale + 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(Goldens, GgufFamily,
                         ::testing::Values("gemma2", "gemma3", "phi3", "smollm3", "exaone", "exaone4",
                                           "llama_tied_llama3rope", "llama_linear_rope", "qwen3"));

TEST(GgufFamilyKeys, LlamaCppNamesAndConventions) {
  {  // Gemma 2: soft-caps, window and period, norms stored as 1 + w, HF q/k order, no output.weight.
    Model m = golden("gemma2");
    GgufFile g = parse(gguf_bytes(m, GgmlType::F32));
    EXPECT_EQ(g.get_string("general.architecture", ""), "gemma2");
    EXPECT_FLOAT_EQ(float(g.get_float("gemma2.attn_logit_softcapping", 0)), 1.5f);
    EXPECT_FLOAT_EQ(float(g.get_float("gemma2.final_logit_softcapping", 0)), 4.0f);
    EXPECT_EQ(g.get_int("gemma2.attention.sliding_window", 0), 3);
    EXPECT_EQ(g.get_int("gemma2.attention.sliding_window_pattern", 0), 2);
    EXPECT_FLOAT_EQ(float(g.get_float("lathe.query_pre_attn_scalar", 0)), 24.0f);  // llama.cpp would use 16
    EXPECT_FALSE(g.has_tensor("output.weight"));
    Tensor n = g.tensor_f32("blk.1.post_ffw_norm.weight");
    EXPECT_EQ(n.f32()[3], 1.0f + m.weights.layers[1].post_ffn_norm.f32()[3]);
    Tensor q = g.tensor_f32("blk.0.attn_q.weight");
    EXPECT_EQ(0, std::memcmp(q.data, m.weights.layers[0].wq.data, q.nbytes()));
  }
  {  // Gemma 3: q/k norms shifted too; sliding period 3, local RoPE base, linear scaling of the global layers.
    Model m = golden("gemma3");
    GgufFile g = parse(gguf_bytes(m, GgmlType::F32));
    EXPECT_EQ(g.get_int("gemma3.attention.sliding_window_pattern", 0), 3);
    EXPECT_FLOAT_EQ(float(g.get_float("gemma3.rope.freq_base_swa", 0)), 10000.0f);
    EXPECT_EQ(g.get_string("gemma3.rope.scaling.type", ""), "linear");
    EXPECT_FALSE(g.has("gemma3.attn_logit_softcapping"));
    EXPECT_EQ(g.tensor_f32("blk.0.attn_q_norm.weight").f32()[1], 1.0f + m.weights.layers[0].q_norm.f32()[1]);
  }
  {  // Phi-3: fused tensors, partial rotary as rope.dimension_count, longrope keys and factor tensors.
    Model m = golden("phi3");
    GgufFile g = parse(gguf_bytes(m, GgmlType::F32));
    EXPECT_EQ(g.get_int("phi3.rope.dimension_count", 0), 6);
    EXPECT_EQ(g.get_string("phi3.rope.scaling.type", ""), "longrope");
    EXPECT_EQ(g.get_int("phi3.rope.scaling.original_context_length", 0), 5);
    EXPECT_FLOAT_EQ(float(g.get_float("phi3.rope.scaling.attn_factor", 0)), m.config.rope_scaling.attention_factor);
    EXPECT_EQ(g.tensor_f32("rope_factors_long.weight").f32()[2], 7.0f);
    EXPECT_EQ(g.tensor_info("blk.0.attn_qkv.weight").shape(), (std::vector<int64_t>{48 + 2 * 24, 48}));
    EXPECT_EQ(g.tensor_info("blk.0.ffn_up.weight").shape(), (std::vector<int64_t>{2 * 64, 48}));
    EXPECT_FALSE(g.has_tensor("blk.0.ffn_gate.weight"));
  }
  {  // Llama 3 scaling: llama.cpp's rope_freqs (1 for short wavelengths, factor for long ones).
    Model m = golden("llama_tied_llama3rope");
    GgufFile g = parse(gguf_bytes(m, GgmlType::F32));
    Tensor f = g.tensor_f32("rope_freqs.weight");
    ASSERT_EQ(f.shape, (std::vector<int64_t>{8}));
    EXPECT_EQ(f.f32()[0], 1.0f);
    EXPECT_EQ(f.f32()[7], 8.0f);
    EXPECT_FALSE(g.has("llama.rope.scaling.type"));  // llama.cpp must not scale a second time
  }
  {  // EXAONE 4: the converter's window and per-layer flags; EXAONE 3: its names mapped to llama.cpp's.
    GgufFile g = parse(gguf_bytes(golden("exaone4"), GgmlType::F32));
    EXPECT_EQ(g.get_int_array("exaone4.attention.sliding_window_pattern"), (std::vector<int64_t>{1, 1, 1, 0}));
    EXPECT_TRUE(g.has_tensor("blk.0.post_ffw_norm.weight"));
    EXPECT_FALSE(g.has_tensor("blk.0.attn_norm.weight"));
    GgufFile e = parse(gguf_bytes(golden("exaone"), GgmlType::F32));
    EXPECT_TRUE(e.has_tensor("rope_freqs.weight"));
    for (const char* t : {"blk.1.attn_norm.weight", "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight",
                          "blk.1.ffn_down.weight", "blk.1.attn_output.weight", "output_norm.weight"})
      EXPECT_TRUE(e.has_tensor(t)) << t;
  }
}

TEST(GgufFamilyKeys, SmolLM3PermutesAndNotesItsRopeLayers) {
  Model m = golden("smollm3");
  GgufFile g = parse(gguf_bytes(m, GgmlType::F32));
  EXPECT_EQ(g.get_string("general.architecture", ""), "smollm3");
  EXPECT_TRUE(gguf_rope_permuted(m.config));  // llama.cpp: LLAMA_ROPE_TYPE_NORM
  Tensor q = g.tensor_f32("blk.0.attn_q.weight");
  EXPECT_NE(0, std::memcmp(q.data, m.weights.layers[0].wq.data, q.nbytes()));
  EXPECT_EQ(g.get_int_array("lathe.no_rope_layers"), (std::vector<int64_t>{1, 0, 1, 1}));
  // The notes say what llama.cpp will compute differently.
  std::vector<std::string> notes = gguf_llamacpp_notes(m.config);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("every 4th"), std::string::npos);
  // With llama.cpp's own rule, there is nothing to note and no lathe key.
  m.config.layer_rope = {1, 1, 1, 0};
  EXPECT_TRUE(gguf_llamacpp_notes(m.config).empty());
  EXPECT_FALSE(parse(gguf_bytes(m, GgmlType::F32)).has("lathe.no_rope_layers"));
}

TEST(GgufFamilyKeys, LlamaCppConvertedFilesReadAsLlamaCppReadsThem) {
  test::TempDir dir;
  {  // Gemma 2 without lathe's scalar: llama.cpp's 1/sqrt(head_dim).
    std::string bytes = gguf_bytes(golden("gemma2"), GgmlType::F32);
    Model g = Model::load_gguf(rewrite(dir, bytes, "lathe.query_pre_attn_scalar", nullptr));
    EXPECT_EQ(g.config.attention_scale(), 1.0f / std::sqrt(16.0f));
  }
  {  // SmolLM3 without lathe's flags: every 4th layer skips RoPE.
    std::string bytes = gguf_bytes(golden("smollm3"), GgmlType::F32);
    Model g = Model::load_gguf(rewrite(dir, bytes, "lathe.no_rope_layers", nullptr));
    EXPECT_EQ(g.config.layer_rope, (std::vector<uint8_t>{1, 1, 1, 0}));
  }
  {  // Llama 3 rope_freqs alone (as llama.cpp's converter writes it): each frequency divided by its
     // factor, which is the HF rule up to rounding.
    Model hf = golden("llama_tied_llama3rope");
    Model g = Model::load_gguf(rewrite(dir, gguf_bytes(hf, GgmlType::F32), "lathe.rope.llama3.", nullptr));
        EXPECT_EQ(g.config.rope_scaling.type, RopeScaling::LongRope);
    EXPECT_EQ(g.config.rope_scaling.attention_factor, 1.0f);
    std::vector<float> ref = logits_of(hf, kIds), got = logits_of(g, kIds);
    float scale = 0;
    for (float v : ref) scale = std::max(scale, std::fabs(v));
    EXPECT_LT(max_abs_diff(ref, got), 1e-5f * scale + 1e-6f);
    // Written again, the factors are rope_freqs once more.
    EXPECT_EQ(parse(gguf_bytes(g, GgmlType::F32)).tensor_f32("rope_freqs.weight").f32()[7], 8.0f);
  }
}

TEST(GgufFamilyKeys, AttentionBiasesOfLlamaRoundTrip) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.attention_bias = true;
  Model m = Model::init_random(c, 3);
  Rng rng(5);
  for (auto& l : m.weights.layers)
    for (Tensor* b : {&l.bq, &l.bk, &l.bv})
      for (int64_t i = 0; i < b->numel(); i++) b->f32()[i] = 0.2f * rng.normal();
  std::string bytes = gguf_bytes(m, GgmlType::F32);
  GgufFile g = parse(bytes);
  ASSERT_TRUE(g.has_tensor("blk.0.attn_q.bias"));
  EXPECT_NE(0, std::memcmp(g.tensor_data("blk.0.attn_q.bias"), m.weights.layers[0].bq.data, 32 * 4));  // permuted
  test::TempDir dir;
  Model r = reload(dir, bytes);
  EXPECT_TRUE(r.config.attention_bias);
  EXPECT_EQ(logits_of(r, kIds), logits_of(m, kIds));
}

TEST(GgufFamilyKeys, OddOrMissingKeysNameTheKey) {
  test::TempDir dir;
  auto err = [&](const std::string& family, const std::string& key, const GgufValue* v, const std::string& drop = "") {
    std::string bytes = gguf_bytes(golden(family), GgmlType::F32);
    return test::error_of([&] { Model::load_gguf(rewrite(dir, bytes, key, v, drop)); });
  };
  GgufValue yarn;
  yarn.type = GgufType::STRING;
  yarn.scalar = std::string("yarn");
  EXPECT_NE(err("phi3", "phi3.rope.scaling.type", &yarn).find("phi3.rope.scaling.type"), std::string::npos);
  EXPECT_NE(err("phi3", "", nullptr, "rope_factors_long.weight").find("rope_factors_long.weight"), std::string::npos);
  GgufValue odd;
  odd.type = GgufType::U32;
  odd.scalar = uint64_t(5);
  EXPECT_NE(err("phi3", "phi3.rope.dimension_count", &odd).find("phi3.rope.dimension_count"), std::string::npos);
  GgufValue half;
  half.type = GgufType::U32;
  half.scalar = uint64_t(4);
  EXPECT_NE(err("smollm3", "smollm3.rope.dimension_count", &half).find("smollm3.rope.dimension_count = 4 differs"),
            std::string::npos);
  GgufValue flags;
  flags.type = GgufType::ARRAY;
  flags.elem_type = GgufType::BOOL;
  flags.array.assign(3, GgufValue{GgufType::BOOL, GgufType::U8, int64_t(1), {}});
  EXPECT_NE(err("exaone4", "exaone4.attention.sliding_window_pattern", &flags).find("sliding_window_pattern"),
            std::string::npos);
  GgufValue neg;
  neg.type = GgufType::F32;
  neg.scalar = -1.0;
  EXPECT_NE(err("gemma2", "gemma2.final_logit_softcapping", &neg).find("gemma2.final_logit_softcapping"),
            std::string::npos);
  EXPECT_NE(err("llama_tied_llama3rope", "", nullptr, "rope_freqs.weight").find("rope_freqs"), std::string::npos);
}

TEST(GgufFamilyKeys, RefusesWhatLlamaCppCannotLoad) {
  ModelConfig c = golden("phi3").config;
  c.head_dim = 8;  // 4 x 8 != 48
  EXPECT_NE(test::error_of([&] { gguf_arch_name(c); }).find("head_dim"), std::string::npos);
  ModelConfig q = golden("qwen3").config;
  q.rope_scaling = golden("llama_tied_llama3rope").config.rope_scaling;
  EXPECT_NE(test::error_of([&] { gguf_arch_name(q); }).find("rope_freqs"), std::string::npos);
}
