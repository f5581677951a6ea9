// Encoder loading and pooling configuration: every broken directory fails with the file and the key or
// tensor named; sentence-transformers pooling files are read as the library reads them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "lathe/core/file_io.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/encoder.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using lathe::test::error_of;
using json = nlohmann::json;

// A copy of the golden BERT encoder in a temp dir, to break.
struct BertCopy {
  lathe::test::TempDir tmp;
  std::string dir = tmp / "bert";
  BertCopy() {
    fs::copy(lathe::test::source_path("tests/data/golden/encoder/bert"), dir, fs::copy_options::recursive);
  }
  json config() const { return json::parse(lathe::read_file(dir + "/config.json")); }
  void set_config(const json& j) const { lathe::write_file_atomic(dir + "/config.json", j.dump()); }
  // Rewrites model.safetensors through `edit` (name -> tensor).
  void edit_weights(const std::function<void(std::map<std::string, lathe::Tensor>&)>& edit) const {
    std::map<std::string, lathe::Tensor> ts;
    {
      auto f = lathe::SafetensorsFile::open(dir + "/model.safetensors");
      for (auto& e : f.entries()) {
        lathe::Tensor v = f.tensor(e.name), copy = lathe::Tensor::empty(v.dtype, v.shape);
        std::memcpy(copy.data, v.data, v.nbytes());
        ts[e.name] = copy;
      }
    }
    edit(ts);
    std::vector<std::pair<std::string, lathe::Tensor>> out(ts.begin(), ts.end());
    lathe::safetensors_write(dir + "/model.safetensors", out);
  }
};

void expect_has(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
}

TEST(EncoderLoad, MissingFilesNameThem) {
  BertCopy c;
  fs::remove(c.dir + "/model.safetensors");
  expect_has(error_of([&] { lathe::Encoder::load(c.dir); }), "model.safetensors");
  fs::remove(c.dir + "/config.json");
  std::string e = error_of([&] { lathe::Encoder::load(c.dir); });
  expect_has(e, c.dir + "/config.json");
  expect_has(e, "[encoder]");
  expect_has(error_of([&] { lathe::Encoder::load(c.dir + "/nope"); }), "not a directory");
}

TEST(EncoderLoad, ConfigErrorsNameTheKey) {
  BertCopy c;
  const json good = c.config();
  auto err = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    c.set_config(j);
    std::string e = error_of([&] { lathe::Encoder::load(c.dir); });
    expect_has(e, c.dir + "/config.json");
    return e;
  };
  expect_has(err([](json& j) { j["model_type"] = "llama"; }), "model_type 'llama'");
  expect_has(err([](json& j) { j.erase("hidden_size"); }), "missing key 'hidden_size'");
  expect_has(err([](json& j) { j["num_attention_heads"] = 5; }), "not divisible by num_attention_heads 5");
  expect_has(err([](json& j) { j["hidden_act"] = "gelu_new"; }), "hidden_act 'gelu_new'");
  expect_has(err([](json& j) { j["position_embedding_type"] = "relative_key"; }), "position_embedding_type");
  expect_has(err([](json& j) { j["intermediate_size"] = 3.5; }), "intermediate_size is 3.5 (a float");
  expect_has(err([](json& j) { j["layer_norm_eps"] = -1; }), "layer_norm_eps must be a positive number");
  expect_has(err([](json& j) { j["pad_token_id"] = 100000; }), "pad_token_id = 100000 is outside");
}

TEST(EncoderLoad, TensorErrorsNameFileAndTensor) {
  BertCopy c;
  c.edit_weights([](auto& ts) { ts.erase("bert.encoder.layer.1.output.dense.bias"); });
  std::string e = error_of([&] { lathe::Encoder::load(c.dir); });
  expect_has(e, c.dir + "/model.safetensors");
  expect_has(e, "missing tensor 'bert.encoder.layer.1.output.dense.bias'");

  BertCopy d;
  d.edit_weights([](auto& ts) {
    lathe::Tensor& t = ts["bert.encoder.layer.0.intermediate.dense.weight"];
    t.shape = {t.shape[1], t.shape[0]};  // transposed shape, same bytes
    t.strides = lathe::contiguous_strides(t.shape);
  });
  e = error_of([&] { lathe::Encoder::load(d.dir); });
  expect_has(e, "tensor 'bert.encoder.layer.0.intermediate.dense.weight' has shape [32, 48], expected [48, 32]");

  BertCopy f;
  f.edit_weights([](auto& ts) {
    std::map<std::string, lathe::Tensor> renamed;
    for (auto& [k, v] : ts) renamed[k.starts_with("bert.") ? "encoder_model." + k.substr(5) : k] = v;
    ts = renamed;
  });
  expect_has(error_of([&] { lathe::Encoder::load(f.dir); }),
             "missing tensor 'embeddings.word_embeddings.weight' (also looked for 'bert.");
}

TEST(EncoderLoad, UnprefixedNamesAndLayerNormGammaBetaLoad) {
  // BertModel checkpoints have no prefix; TF-converted ones spell LayerNorm weight/bias gamma/beta.
  BertCopy c;
  c.edit_weights([](auto& ts) {
    std::map<std::string, lathe::Tensor> renamed;
    for (auto& [k, v] : ts) {
      std::string n = k.starts_with("bert.") ? k.substr(5) : k;
      if (n.ends_with("LayerNorm.weight")) n = n.substr(0, n.size() - 6) + "gamma";
      if (n.ends_with("LayerNorm.bias")) n = n.substr(0, n.size() - 4) + "beta";
      renamed[n] = v;
    }
    ts = renamed;
  });
  lathe::Encoder a = lathe::Encoder::load(c.dir);
  lathe::Encoder b = lathe::Encoder::load(lathe::test::source_path("tests/data/golden/encoder/bert"));
  std::vector<std::vector<int32_t>> seq = {{2, 10, 11, 3}};
  EXPECT_EQ(a.forward_packed(seq), b.forward_packed(seq));
}

TEST(EncoderForward, BadSequencesAreErrors) {
  lathe::Encoder enc = lathe::Encoder::load(lathe::test::source_path("tests/data/golden/encoder/xlm-roberta"));
  std::vector<std::vector<int32_t>> empty = {{0, 2}, {}};
  expect_has(error_of([&] { enc.forward_packed(empty); }), "sequence 1 has 0 tokens; the encoder takes 1..40");
  std::vector<std::vector<int32_t>> too_long = {std::vector<int32_t>(41, 5)};
  expect_has(error_of([&] { enc.forward_packed(too_long); }), "sequence 0 has 41 tokens");
  std::vector<std::vector<int32_t>> bad_id = {{0, 74, 2}};
  expect_has(error_of([&] { enc.forward_packed(bad_id); }), "sequence 0 token 1 has id 74 outside [0, 74)");
  std::vector<std::vector<int32_t>> longest = {std::vector<int32_t>(40, 5)};
  EXPECT_EQ(enc.forward_packed(longest).size(), 40u * 32u);
}

TEST(EncoderPooling, ReadsSentenceTransformersFiles) {
  lathe::test::TempDir t;
  lathe::PoolingConfig fallback;  // mean, no normalize
  auto p = lathe::encoder_pooling_from_dir(t.path, fallback);
  EXPECT_EQ(p.mode, lathe::Pooling::Mean);
  EXPECT_FALSE(p.normalize);
  EXPECT_EQ(p.source, "default");

  // 1_Pooling alone (no modules.json): its mode, no Normalize.
  fs::create_directories(t / "1_Pooling");
  lathe::write_file_atomic(t / "1_Pooling/config.json",
                           R"({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})");
  p = lathe::encoder_pooling_from_dir(t.path, fallback);
  EXPECT_EQ(p.mode, lathe::Pooling::Cls);
  EXPECT_EQ(p.source, t / "1_Pooling/config.json");

  // modules.json points elsewhere and adds Normalize.
  fs::create_directories(t / "pool");
  lathe::write_file_atomic(t / "pool/config.json", R"({"pooling_mode": "mean"})");
  lathe::write_file_atomic(t / "modules.json", R"([{"path": "", "type": "sentence_transformers.models.Transformer"},
    {"path": "pool", "type": "sentence_transformers.models.Pooling"},
    {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])");
  p = lathe::encoder_pooling_from_dir(t.path, fallback);
  EXPECT_EQ(p.mode, lathe::Pooling::Mean);
  EXPECT_TRUE(p.normalize);

  lathe::write_file_atomic(t / "pool/config.json", R"({"pooling_mode_max_tokens": true})");
  std::string e = error_of([&] { lathe::encoder_pooling_from_dir(t.path, fallback); });
  expect_has(e, t / "pool/config.json");
  expect_has(e, "pooling_mode_max_tokens is not supported");
  lathe::write_file_atomic(t / "pool/config.json",
                           R"({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true})");
  expect_has(error_of([&] { lathe::encoder_pooling_from_dir(t.path, fallback); }), "are both set");
  lathe::write_file_atomic(t / "pool/config.json", R"({"pooling_mode_cls_token": "yes"})");
  expect_has(error_of([&] { lathe::encoder_pooling_from_dir(t.path, fallback); }),
             "pooling_mode_cls_token must be true or false");
  lathe::write_file_atomic(t / "modules.json", R"({"not": "a list"})");
  expect_has(error_of([&] { lathe::encoder_pooling_from_dir(t.path, fallback); }), "modules.json: must be a list");
  expect_has(error_of([] { lathe::pooling_from_name("max", "--pooling"); }), "--pooling: unknown pooling 'max'");
}

TEST(EncoderPooling, MeanCoversOnlyRealTokens) {
  // hidden [2, 3, 2]: sequence 0 has 3 tokens, sequence 1 has 1 (its padding rows hold junk).
  std::vector<float> h = {1, 2, 3, 4, 5, 6, 10, 20, 99, 99, 99, 99};
  std::vector<int> len = {3, 1};
  std::vector<float> out(4);
  lathe::encoder_pool(h.data(), len.data(), 2, 3, 2, lathe::Pooling::Mean, false, out.data());
  EXPECT_EQ(out, (std::vector<float>{3, 4, 10, 20}));
  lathe::encoder_pool(h.data(), len.data(), 2, 3, 2, lathe::Pooling::Cls, true, out.data());
  EXPECT_FLOAT_EQ(out[0], 1 / std::sqrt(5.0f));
  EXPECT_FLOAT_EQ(out[1], 2 / std::sqrt(5.0f));
  std::vector<float> zero(4, 0.0f);
  std::vector<int> two = {2};
  lathe::encoder_pool(zero.data(), two.data(), 1, 2, 2, lathe::Pooling::Mean, true, out.data());
  EXPECT_EQ(out[0], 0.0f);  // a zero vector stays zero (no division by 0)
}

}  // namespace
