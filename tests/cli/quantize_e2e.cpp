// lathe quantize and --weights through the binary, on a real model (stories260K): the GGUF that
// `lathe quantize` writes (Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16) generates exactly what `generate
// --weights TYPE` generates from the HF directory, keeps the tokenizer, and is smaller; bad input
// fails with a message. stories260K's rows (64, 172) are not multiples of 256: its K-quant files hold
// the fallbacks (Q8_0, F16), which is what llama.cpp does with such a model too.
#include <gtest/gtest.h>

#include <filesystem>

#include "lathe/formats/gguf.h"
#include "test_util.h"

using namespace lathe;

namespace {

std::string generate(const std::string& args) {
  std::string out;
  EXPECT_EQ(0, test::run_lathe("generate " + args + " --prompt 'Once upon a time' --max-new-tokens 40 --json", &out,
                               true))
      << out;
  return out;
}

}  // namespace

TEST(Quantize, GgufGeneratesWhatWeightsGenerates) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/model.safetensors");
  const std::string base = test::fixture_path("models/stories260K-hf");
  test::TempDir tmp;
  const std::string f32 = generate("--model " + base);
  for (const char* type : {"q8_0", "q4_0", "q4_k", "q6_k", "f16", "bf16"}) {
    SCOPED_TRACE(type);
    const std::string file = tmp / (std::string(type) + ".gguf");
    std::string out;
    ASSERT_EQ(0, test::run_lathe(std::string("quantize --model ") + base + " --type " + type + " --output " + file, &out,
                                 true))
        << out;
    GgufFile g = GgufFile::open(file);
    const std::string t = type;
    const GgmlType want = t == "q4_0" ? GgmlType::Q4_0 : t == "f16" ? GgmlType::F16 : t == "bf16" ? GgmlType::BF16
                                                                                                   : GgmlType::Q8_0;
    EXPECT_EQ(g.tensor_info("blk.0.attn_q.weight").ggml_type, uint32_t(want));
    EXPECT_EQ(g.tensor_info("blk.0.ffn_down.weight").ggml_type, uint32_t(t == "bf16" ? GgmlType::BF16 : GgmlType::F16));
    EXPECT_TRUE(g.has("tokenizer.ggml.tokens"));
    const std::string from_file = generate("--model " + file);
    EXPECT_EQ(from_file, generate("--model " + base + " --weights " + type));
    EXPECT_EQ(from_file, generate("--model " + file + " --weights " + type));  // kept as stored: the same
    if (std::string(type) == "q4_0") EXPECT_NE(from_file, f32);  // 4 bits change the text: the comparison means something
    // --weights f32 on the quantized file dequantizes: the same values, f32 kernels, close text.
    EXPECT_EQ(0, test::run_lathe("generate --model " + file + " --weights f32 --prompt-ids 1,2 --max-new-tokens 2", &out,
                                 true))
        << out;
  }
  EXPECT_LT(std::filesystem::file_size(tmp / "q4_0.gguf"), std::filesystem::file_size(tmp / "q8_0.gguf"));
}

TEST(Quantize, BadInputFailsWithAMessage) {
  test::TempDir tmp;
  std::string out;
  EXPECT_NE(0, test::run_lathe("quantize --model " + tmp.path + " --type q5_k --output " + (tmp / "x.gguf"), &out, true));
  EXPECT_NE(out.find("--type: 'q5_k' is not one of: q8_0, q4_0, q4_k, q6_k, f16, bf16"), std::string::npos) << out;
  EXPECT_NE(0, test::run_lathe("quantize --model " + (tmp / "missing") + " --type q8_0 --output " + (tmp / "x.gguf"),
                               &out, true));
  EXPECT_NE(out.find("no such file or directory"), std::string::npos) << out;
  EXPECT_NE(0, test::run_lathe("generate --model " + (tmp / "missing") + " --weights q3 --prompt-ids 1", &out, true));
  EXPECT_NE(out.find("--weights: 'q3' is not one of: auto, f32, q8_0, q4_0, q4_k, q6_k, f16, bf16"), std::string::npos)
      << out;
}
