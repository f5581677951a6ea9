// Text → vector end to end on the golden encoders (tools/golden/gen_encoder_goldens.py): the ids of each
// text (prefix, specials, truncation), the pooled and normalized vector against the PyTorch reference,
// the sentence-transformers settings and the options that override them, and broken directories.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lathe/core/file_io.h"
#include "lathe/retrieval/embedder.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using lathe::retrieval::Embedder;
using lathe::retrieval::EmbedderOptions;
using lathe::test::error_of;
using Ids = std::vector<int32_t>;

std::string golden_dir(const std::string& family) {
  return lathe::test::source_path("tests/data/golden/encoder/" + family);
}

nlohmann::json golden_of(const std::string& family) {
  return nlohmann::json::parse(lathe::read_file(golden_dir(family) + "/golden.json"));
}

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

void expect_has(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
}

class EmbedderGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(EmbedderGolden, TextsGiveTheReferenceIdsAndVectors) {
  auto g = golden_of(GetParam());
  auto e = Embedder::load(golden_dir(GetParam()));
  EXPECT_EQ(e->pooling(), lathe::pooling_from_name(g["pooling"].get<std::string>(), "golden"));
  for (bool is_query : {true, false}) {
    std::vector<std::string> texts;
    std::vector<size_t> at;
    for (size_t i = 0; i < g["texts"].size(); i++)
      if (g["texts"][i]["is_query"].get<bool>() == is_query) {
        texts.push_back(g["texts"][i]["text"].get<std::string>());
        at.push_back(i);
      }
    auto ids = e->token_ids(texts, is_query);
    auto vecs = e->embed(texts, is_query);
    ASSERT_EQ(vecs.size(), texts.size());
    for (size_t k = 0; k < texts.size(); k++) {
      const auto& want = g["texts"][at[k]];
      EXPECT_EQ(ids[k], want["ids"].get<Ids>()) << "text '" << texts[k] << "'";
      ASSERT_EQ(int(vecs[k].size()), e->dim());
      for (int c = 0; c < e->dim(); c++)
        LATHE_ASSERT_CLOSE(vecs[k][c], want["vector"][c].get<float>(), 1e-4, 1e-5) << "text '" << texts[k] << "' [" << c << "]";
      EXPECT_NEAR(norm(vecs[k]), 1.0, 1e-5);
    }
  }
}

TEST_P(EmbedderGolden, BatchesOfAnySizeGiveTheSameVectors) {
  auto g = golden_of(GetParam());
  std::vector<std::string> texts;
  for (auto& t : g["texts"]) texts.push_back(t["text"].get<std::string>());
  auto whole = Embedder::load(golden_dir(GetParam()))->embed(texts, false);
  EmbedderOptions o;
  o.batch_tokens = 1;  // one text per forward
  auto one_by_one = Embedder::load(golden_dir(GetParam()), o)->embed(texts, false);
  for (size_t i = 0; i < texts.size(); i++)
    for (size_t c = 0; c < whole[i].size(); c++) LATHE_ASSERT_CLOSE(one_by_one[i][c], whole[i][c], 1e-5, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Families, EmbedderGolden, ::testing::Values("bert", "xlm-roberta"), [](const auto& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
});

TEST(Embedder, PrefixesFromSentenceTransformersOrOptions) {
  auto x = Embedder::load(golden_dir("xlm-roberta"));
  EXPECT_EQ(x->query_prefix(), "query: ");  // config_sentence_transformers.json prompts
  EXPECT_EQ(x->passage_prefix(), "passage: ");
  auto b = Embedder::load(golden_dir("bert"));
  EXPECT_EQ(b->query_prefix(), "");  // no sentence-transformers files
  EXPECT_EQ(b->pooling(), lathe::Pooling::Mean);

  EmbedderOptions o;
  o.query_prefix = "";
  o.passage_prefix = "query: ";
  auto y = Embedder::load(golden_dir("xlm-roberta"), o);
  // The passage side now reads exactly like the default's query side, and the query side has no prefix.
  EXPECT_EQ(y->token_ids({"a"}, false), x->token_ids({"a"}, true));
  EXPECT_EQ(y->embed({"a"}, false), x->embed({"a"}, true));
  EXPECT_EQ(y->token_ids({"a"}, true)[0], (Ids{0, 5, 2}));  // <s> ▁a </s>
  EXPECT_NE(y->identity(), x->identity());
}

TEST(Embedder, PoolingAndNormalizeOptions) {
  EmbedderOptions o;
  o.pooling = "cls";
  o.normalize = false;
  auto e = Embedder::load(golden_dir("bert"), o);
  EXPECT_EQ(e->pooling(), lathe::Pooling::Cls);
  // Unnormalized CLS pooling is the encoder's first hidden row.
  auto ids = e->token_ids({"how do i get my money back?"}, true);
  lathe::Encoder enc = lathe::Encoder::load(golden_dir("bert"));
  auto h = enc.forward_packed(ids);
  auto v = e->embed({"how do i get my money back?"}, true)[0];
  for (int c = 0; c < e->dim(); c++) EXPECT_EQ(v[c], h[c]);
  EXPECT_GT(std::fabs(norm(v) - 1.0), 0.1);
  o.pooling = "max";
  expect_has(error_of([&] { Embedder::load(golden_dir("bert"), o); }), "unknown pooling 'max'");
}

TEST(Embedder, TruncatesTheTextKeepingSpecials) {
  std::string long_text;
  for (int i = 0; i < 60; i++) long_text += "money ";
  auto e = Embedder::load(golden_dir("bert"));
  EXPECT_EQ(e->max_tokens(), 40);  // max_position_embeddings
  auto ids = e->token_ids({long_text}, false)[0];
  ASSERT_EQ(ids.size(), 40u);
  EXPECT_EQ(ids.front(), 2);  // [CLS]
  EXPECT_EQ(ids.back(), 3);   // [SEP]
  EXPECT_EQ(e->embed({long_text}, false)[0].size(), 32u);

  auto x = Embedder::load(golden_dir("xlm-roberta"));
  EXPECT_EQ(x->max_tokens(), 40);  // 42 positions - (pad 1 + 1)
  EXPECT_EQ(x->token_ids({long_text}, true)[0].size(), 40u);

  EmbedderOptions o;
  o.max_tokens = 5;
  auto s = Embedder::load(golden_dir("bert"), o);
  EXPECT_EQ(s->token_ids({long_text}, false)[0], (Ids{2, 15, 15, 15, 3}));
  o.max_tokens = 2;
  expect_has(error_of([&] { Embedder::load(golden_dir("bert"), o); }), "leaves no room for text after 2 special tokens");
}

TEST(Embedder, SentenceBertConfigCapsTheLength) {
  lathe::test::TempDir t;
  const std::string dir = t / "enc";
  fs::copy(golden_dir("bert"), dir, fs::copy_options::recursive);
  lathe::write_file_atomic(dir + "/sentence_bert_config.json", R"({"max_seq_length": 8, "do_lower_case": false})");
  EXPECT_EQ(Embedder::load(dir)->max_tokens(), 8);
  lathe::write_file_atomic(dir + "/sentence_bert_config.json", R"({"max_seq_length": "eight"})");
  expect_has(error_of([&] { Embedder::load(dir); }), dir + "/sentence_bert_config.json: max_seq_length");
}

TEST(Embedder, BrokenDirectoriesNameTheFile) {
  lathe::test::TempDir t;
  const std::string dir = t / "enc";
  expect_has(error_of([&] { Embedder::load(dir); }), dir + ": not a directory");
  fs::copy(golden_dir("xlm-roberta"), dir, fs::copy_options::recursive);
  lathe::write_file_atomic(dir + "/config_sentence_transformers.json", R"({"prompts": {"query": 7}})");
  expect_has(error_of([&] { Embedder::load(dir); }), dir + "/config_sentence_transformers.json: prompts.query");
  fs::remove(dir + "/config_sentence_transformers.json");
  lathe::write_file_atomic(dir + "/1_Pooling/config.json", R"({"pooling_mode_lasttoken": true})");
  expect_has(error_of([&] { Embedder::load(dir); }), dir + "/1_Pooling/config.json: pooling_mode_lasttoken");
  fs::remove_all(dir + "/1_Pooling");
  fs::remove(dir + "/tokenizer.json");
  expect_has(error_of([&] { Embedder::load(dir); }), dir + "/tokenizer.json: missing");
  fs::copy(golden_dir("xlm-roberta") + "/tokenizer.json", dir + "/tokenizer.json");
  fs::remove(dir + "/config.json");
  expect_has(error_of([&] { Embedder::load(dir); }), dir + "/config.json");
  fs::copy(golden_dir("bert") + "/config.json", dir + "/config.json");  // the wrong model for these weights
  expect_has(error_of([&] { Embedder::load(dir); }),
             dir + "/model.safetensors: tensor 'embeddings.word_embeddings.weight' has shape [74, 32], expected [103, 32]");
}

TEST(Embedder, IdentityTellsCheckpointsApart) {
  lathe::test::TempDir t;
  const std::string dir = t / "xlm-roberta";
  fs::copy(golden_dir("xlm-roberta"), dir, fs::copy_options::recursive);
  auto a = Embedder::load(dir)->identity();
  EXPECT_EQ(a["name"], "xlm-roberta");
  EXPECT_EQ(a["dim"], 32);
  EXPECT_EQ(a["pooling"], "cls");
  EXPECT_EQ(a, Embedder::load(golden_dir("xlm-roberta"))->identity());
  // Same shapes, one weight byte changed: another checkpoint.
  std::string w = lathe::read_file(dir + "/model.safetensors");
  w[w.size() - 1] ^= 0x40;
  lathe::write_file_atomic(dir + "/model.safetensors", w);
  EXPECT_NE(a["fingerprint"], Embedder::load(dir)->identity()["fingerprint"]);
}

}  // namespace
