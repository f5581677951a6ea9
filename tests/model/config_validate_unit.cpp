// Regression tests for hostile model configs (security review items 1, 5, 6, 14): every bad value
// in config.json or GGUF metadata ends in a lathe::Error naming the file and the key, before any
// division or allocation; generation length is bounded by the model's context.
#include <cmath>
#include <fstream>
#include <limits>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/formats/gguf.h"
#include "lathe/formats/gguf_write.h"
#include "lathe/model/forward.h"
#include "lathe/model/generate.h"
#include "lathe/model/model.h"
#include "gguf_rewrite.h"
#include "test_util.h"

namespace lathe {
namespace {

constexpr const char* kGguf = "models/gguf/stories260K.gguf";
constexpr const char* kHf = "models/stories260K-hf";

using ::lathe::test::error_of;

// A valid config (the shape of stories260K), written as text so a test can splice in any literal,
// including numbers nlohmann would not produce itself.
std::string base_config(const std::string& key, const std::string& literal) {
  nlohmann::ordered_json j = {{"architectures", {"LlamaForCausalLM"}},
                              {"vocab_size", 512},
                              {"hidden_size", 64},
                              {"intermediate_size", 172},
                              {"num_hidden_layers", 5},
                              {"num_attention_heads", 8},
                              {"num_key_value_heads", 4},
                              {"head_dim", 8},
                              {"max_position_embeddings", 512},
                              {"rms_norm_eps", 1e-5},
                              {"rope_theta", 10000.0},
                              {"tie_word_embeddings", true},
                              {"bos_token_id", 1},
                              {"eos_token_id", 2}};
  if (key.empty()) return j.dump();
  j[key] = "@@";
  std::string s = j.dump();
  s.replace(s.find("\"@@\""), 4, literal);
  return s;
}

// Writes config.json into a fresh directory and loads it as a model: the config error must come
// before the (absent) weights are looked at.
std::string load_error(const std::string& config_text) {
  test::TempDir dir;
  std::ofstream(dir / "config.json") << config_text;
  return error_of([&] { Model::load(dir.path); });
}

TEST(ConfigValidate, BaseConfigParses) {
  ModelConfig c = config_from_hf_json(nlohmann::json::parse(base_config("", "")), "config.json");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.eos_token_id, 2);
}

// Item 5: integers are read as 64-bit and range-checked before narrowing.
TEST(ConfigValidate, IntegersAreNotTruncatedTo32Bits) {
  std::string e = load_error(base_config("hidden_size", "4294967360"));  // 2^32 + 64: was read as 64
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("hidden_size"), std::string::npos) << e;
  EXPECT_NE(e.find("4294967360"), std::string::npos) << e;
  e = load_error(base_config("vocab_size", "18446744073709551615"));  // above INT64_MAX
  EXPECT_NE(e.find("vocab_size"), std::string::npos) << e;
  EXPECT_NE(e.find("too large"), std::string::npos) << e;
  e = load_error(base_config("num_attention_heads", "-4294967288"));  // -2^32 + 8: low bits say 8
  EXPECT_NE(e.find("num_attention_heads must be positive, got -4294967288"), std::string::npos) << e;
}

TEST(ConfigValidate, FloatWhereIntegerIsNeededIsATypeErrorNamingTheKey) {
  for (auto [key, lit] : {std::pair{"hidden_size", "1e12"}, {"num_hidden_layers", "3.5"},
                          {"intermediate_size", "172.0"}, {"max_position_embeddings", "\"512\""},
                          {"head_dim", "true"}}) {
    std::string e = load_error(base_config(key, lit));
    EXPECT_NE(e.find(std::string(key) + " must be an integer"), std::string::npos) << key << ": " << e;
    EXPECT_EQ(e.find("-727379968"), std::string::npos) << e;  // what 1e12 used to be reported as
  }
}

TEST(ConfigValidate, DimensionsBeyondTheCapsAreRefusedBeforeAllocating) {
  // 1e9 layers used to end in a bare std::bad_alloc.
  std::string e = load_error(base_config("num_hidden_layers", "1000000000"));
  EXPECT_NE(e.find("num_hidden_layers = 1000000000 is outside the supported range [1, 1024]"), std::string::npos) << e;
  e = load_error(base_config("num_hidden_layers", "1e9"));
  EXPECT_NE(e.find("num_hidden_layers must be an integer"), std::string::npos) << e;
  e = load_error(base_config("vocab_size", std::to_string(kMaxVocabSize + 1)));
  EXPECT_NE(e.find("vocab_size"), std::string::npos) << e;
  e = load_error(base_config("max_position_embeddings", std::to_string(kMaxContextLength + 1)));
  EXPECT_NE(e.find("max_position_embeddings"), std::string::npos) << e;
}

// Item 14: context, eps, rope_theta, and token ids.
TEST(ConfigValidate, ContextMustBePositive) {
  for (const char* lit : {"0", "-5"}) {
    std::string e = load_error(base_config("max_position_embeddings", lit));
    EXPECT_NE(e.find("max_position_embeddings must be positive"), std::string::npos) << e;
  }
}

TEST(ConfigValidate, EpsAndRopeThetaMustBeFinitePositive) {
  for (const char* lit : {"-1e-5", "0", "0.0", "1e300", "2"}) {
    std::string e = load_error(base_config("rms_norm_eps", lit));
    EXPECT_NE(e.find("rms_norm_eps must be a finite number in (0, 1)"), std::string::npos) << lit << ": " << e;
  }
  for (const char* lit : {"0", "-10000", "1e300"}) {
    std::string e = load_error(base_config("rope_theta", lit));
    EXPECT_NE(e.find("rope_theta must be a finite positive number"), std::string::npos) << lit << ": " << e;
  }
  // NaN cannot be written in JSON; it arrives through GGUF f32 values or code-built configs.
  ModelConfig c = config_from_hf_json(nlohmann::json::parse(base_config("", "")), "config.json");
  c.rms_norm_eps = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { config_validate(c, "x"); }).find("rms_norm_eps"), std::string::npos);
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { config_validate(c, "x"); }).find("rope_theta"), std::string::npos);
}

TEST(ConfigValidate, TokenIdsMustBeInsideTheVocabulary) {
  std::string e = load_error(base_config("eos_token_id", "512"));
  EXPECT_NE(e.find("eos_token_id = 512 is outside the vocabulary [0, 512)"), std::string::npos) << e;
  e = load_error(base_config("bos_token_id", "5000000000"));
  EXPECT_NE(e.find("bos_token_id = 5000000000"), std::string::npos) << e;
  e = load_error(base_config("eos_token_id", "[2, 70000]"));
  EXPECT_NE(e.find("eos_token_id[1] = 70000"), std::string::npos) << e;
  e = load_error(base_config("eos_token_id", "-7"));
  EXPECT_NE(e.find("eos_token_id = -7"), std::string::npos) << e;
  // A list keeps its first entry, as before.
  ModelConfig c = config_from_hf_json(nlohmann::json::parse(base_config("eos_token_id", "[2, 3]")), "c");
  EXPECT_EQ(c.eos_token_id, 2);
}

TEST(ConfigValidate, HeadsAreCheckedBeforeAnyDivision) {
  std::string e = load_error(base_config("num_attention_heads", "0"));
  EXPECT_NE(e.find("num_attention_heads must be positive"), std::string::npos) << e;
  e = load_error(base_config("num_key_value_heads", "3"));
  EXPECT_NE(e.find("must be a multiple of num_key_value_heads (3)"), std::string::npos) << e;
  nlohmann::json j = nlohmann::json::parse(base_config("", ""));
  j["num_attention_heads"] = 1024;
  j["num_key_value_heads"] = 1024;
  j["head_dim"] = 1024;
  e = load_error(j.dump());
  EXPECT_NE(e.find("is larger than the supported"), std::string::npos) << e;
}

TEST(ConfigValidate, RopeScalingFactorsAreChecked) {
  std::string e = load_error(base_config("rope_scaling", R"({"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":4})"));
  EXPECT_NE(e.find("rope_scaling.high_freq_factor"), std::string::npos) << e;
  e = load_error(base_config("rope_scaling", R"({"rope_type":"linear","factor":-2})"));
  EXPECT_NE(e.find("rope_scaling.factor"), std::string::npos) << e;
  e = load_error(base_config("rope_scaling", R"({"rope_type":"llama3","factor":8,"original_max_position_embeddings":1e40})"));
  EXPECT_NE(e.find("original_max_position_embeddings must be an integer"), std::string::npos) << e;
}

// The model's size is computed in 64-bit and checked against available memory before allocating.
TEST(ConfigValidate, ModelLargerThanMemoryIsRefusedNamingTheSizes) {
  nlohmann::json j = nlohmann::json::parse(base_config("", ""));
  j["vocab_size"] = kMaxVocabSize;
  j["hidden_size"] = kMaxHiddenSize;
  j["intermediate_size"] = kMaxIntermediateSize;
  j["num_hidden_layers"] = kMaxLayers;
  j["num_attention_heads"] = 64;
  j["num_key_value_heads"] = 64;
  j["head_dim"] = 1024;
  std::string e = load_error(j.dump());
  EXPECT_NE(e.find("memory is available"), std::string::npos) << e;
  EXPECT_NE(e.find("num_hidden_layers 1024"), std::string::npos) << e;
  // The same config through init_random (init-model) is refused the same way, before any tensor.
  ModelConfig c = config_from_hf_json(nlohmann::json::parse(base_config("", "")), "c");
  c.num_hidden_layers = int(kMaxLayers);
  c.hidden_size = int(kMaxHiddenSize);
  c.intermediate_size = int(kMaxIntermediateSize);
  c.vocab_size = int(kMaxVocabSize);
  EXPECT_NE(error_of([&] { Model::init_random(c, 0); }).find("memory is available"), std::string::npos);
}

TEST(ConfigValidate, WeightBytesMatchTheLoadedTensors) {
  LATHE_REQUIRE_FIXTURE(kHf);
  Model m = Model::load(test::fixture_path(kHf));
  // Independent: the loader sums the real tensors; config_weight_bytes_f32 multiplies the config.
  EXPECT_EQ(config_weight_bytes_f32(m.config, "x"), m.weight_bytes_f32);
  ModelConfig big = m.config;
  big.num_hidden_layers = std::numeric_limits<int>::max();  // built in code, never validated
  big.hidden_size = std::numeric_limits<int>::max();
  big.vocab_size = std::numeric_limits<int>::max();
  big.intermediate_size = std::numeric_limits<int>::max();
  EXPECT_NE(error_of([&] { config_weight_bytes_f32(big, "x"); }).find("overflows"), std::string::npos);
}

// ---- GGUF metadata -----------------------------------------------------------------------------

using test::gguf_f32;
using test::gguf_u32;
using test::gguf_u64;
using test::gguf_with;

TEST(ConfigValidateGguf, HeadCountZeroIsAnErrorNotSigfpe) {  // item 1
  LATHE_REQUIRE_FIXTURE(kGguf);
  test::TempDir dir;
  std::string p = gguf_with(dir, "llama.attention.head_count", gguf_u32(0));
  std::string e = error_of([&] { Model::load(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("llama.attention.head_count must be positive, got 0"), std::string::npos) << e;
}

TEST(ConfigValidateGguf, EveryKeyIsRangeCheckedByName) {
  LATHE_REQUIRE_FIXTURE(kGguf);
  test::TempDir dir;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    const char* key;
    GgufValue v;
    const char* want;
  } cases[] = {
      {"llama.context_length", gguf_u32(0), "llama.context_length must be positive"},
      {"llama.block_count", gguf_u64(uint64_t(1) << 40), "llama.block_count = 1099511627776 is outside"},
      {"llama.embedding_length", gguf_u64(4294967360ull), "llama.embedding_length = 4294967360"},
      {"llama.attention.head_count_kv", gguf_u32(3), "must be a multiple of llama.attention.head_count_kv (3)"},
      {"llama.attention.layer_norm_rms_epsilon", gguf_f32(nan), "llama.attention.layer_norm_rms_epsilon must be"},
      {"llama.attention.layer_norm_rms_epsilon", gguf_f32(-1e-5), "llama.attention.layer_norm_rms_epsilon must be"},
      {"llama.rope.freq_base", gguf_f32(0), "llama.rope.freq_base must be a finite positive number"},
      {"tokenizer.ggml.eos_token_id", gguf_u32(512), "tokenizer.ggml.eos_token_id = 512 is outside the vocabulary"},
      {"llama.attention.head_count", gguf_f32(8), "llama.attention.head_count"},
      {"llama.feed_forward_length", gguf_u64(~0ull), "llama.feed_forward_length"},
      // A valid but wrong size: the tensor shape is checked against the config before dequantizing.
      {"llama.embedding_length", gguf_u32(32), "the config expects [512, 32]"},
  };
  for (auto& c : cases) {
    std::string p = gguf_with(dir, c.key, c.v);
    std::string e = error_of([&] { Model::load(p); });
    EXPECT_NE(e.find(c.want), std::string::npos) << c.key << ": " << e;
  }
}

TEST(ConfigValidateGguf, UnchangedCopyStillLoads) {  // the rewrite itself is not what fails above
  LATHE_REQUIRE_FIXTURE(kGguf);
  test::TempDir dir;
  std::string p = gguf_with(dir, "general.name", [] {
    GgufValue v;
    v.type = GgufType::STRING;
    v.scalar = std::string("copy");
    return v;
  }());
  Model m = Model::load(p);
  EXPECT_EQ(m.config.num_attention_heads, 8);
}

// ---- generation length (item 6) -----------------------------------------------------------------

TEST(GenerationLength, ClampedToTheContext) {
  ModelConfig c = config_from_hf_json(nlohmann::json::parse(base_config("", "")), "c");  // context 512
  GenerationBudget b = bounded_generation_length(c, 10, 1'000'000'000);
  EXPECT_TRUE(b.clamped);
  EXPECT_EQ(b.max_new_tokens, 502);
  EXPECT_NE(b.message.find("1000000000"), std::string::npos) << b.message;
  b = bounded_generation_length(c, 10, 100);
  EXPECT_FALSE(b.clamped);
  EXPECT_EQ(b.max_new_tokens, 100);
  b = bounded_generation_length(c, 10, 502);
  EXPECT_FALSE(b.clamped);
  b = bounded_generation_length(c, 10, 1000, 12);  // prefix-tuning rows take context too
  EXPECT_EQ(b.max_new_tokens, 490);
  EXPECT_NE(error_of([&] { bounded_generation_length(c, 513, 1); }).find("context of 512"), std::string::npos);
  EXPECT_NE(error_of([&] { bounded_generation_length(c, 512, 1); }).find("no room"), std::string::npos);
  EXPECT_NE(error_of([&] { bounded_generation_length(c, 1, -1); }).find("max_new_tokens"), std::string::npos);
}

TEST(GenerationLength, GenerateNeverSizesTheCacheFromTheRawRequest) {
  LATHE_REQUIRE_FIXTURE(kHf);
  Model m = Model::load(test::fixture_path(kHf));
  GenerateParams p;
  p.max_new_tokens = 1'000'000'000;  // used to abort allocating a 128 GB KV cache
  GenerateResult r = generate(m, {1, 2, 3}, p);
  EXPECT_EQ(int(r.ids.size()), m.config.max_position_embeddings - 3);
  EXPECT_EQ(r.finish_reason, "length");
}

TEST(GenerationLength, KvCacheBeyondMemoryIsAnError) {
  ModelConfig c = config_from_hf_json(nlohmann::json::parse(base_config("", "")), "c");
  c.num_hidden_layers = 1024;
  c.num_key_value_heads = 128;
  c.num_attention_heads = 128;
  c.head_dim = 1024;
  std::string e = error_of([&] { KVCache::create(c, int(kMaxContextLength)); });
  EXPECT_NE(e.find("memory is available"), std::string::npos) << e;
}

}  // namespace
}  // namespace lathe
