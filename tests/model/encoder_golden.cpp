// Encoder forward against the float64 PyTorch reference (tools/golden/gen_encoder_goldens.py): last
// hidden states and cls / mean pooled vectors of tiny random BERT ("bert." names, F32) and XLM-RoBERTa
// (no prefix, F16, positions from pad + 1) encoders, and a padded batch equal to each sequence alone.
// To regenerate after a deliberate change: /usr/bin/python3 tools/golden/gen_encoder_goldens.py
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lathe/core/file_io.h"
#include "lathe/model/encoder.h"
#include "test_util.h"

namespace {

using Ids = std::vector<int32_t>;

nlohmann::json golden_of(const std::string& family) {
  return nlohmann::json::parse(
      lathe::read_file(lathe::test::source_path("tests/data/golden/encoder/" + family + "/golden.json")));
}

lathe::Encoder load(const std::string& family) {
  return lathe::Encoder::load(lathe::test::source_path("tests/data/golden/encoder/" + family));
}

// Worst |got - want| over `want`'s values, relative to the largest |want| (at least 1).
float worst_rel(const float* got, const nlohmann::json& want_rows, int C) {
  float scale = 1.0f, worst = 0.0f;
  for (auto& row : want_rows)
    for (auto& v : row) scale = std::max(scale, std::fabs(v.get<float>()));
  size_t i = 0;
  for (auto& row : want_rows) {
    EXPECT_EQ(int(row.size()), C);
    for (auto& v : row) worst = std::max(worst, std::fabs(got[i++] - v.get<float>()));
  }
  return worst / scale;
}

class EncoderGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(EncoderGolden, HiddenStatesMatchPyTorch) {
  auto g = golden_of(GetParam());
  lathe::Encoder enc = load(GetParam());
  const int C = enc.config().hidden_size;
  ASSERT_EQ(g["input_ids"].size(), g["hidden"].size());
  for (size_t b = 0; b < g["input_ids"].size(); b++) {
    std::vector<Ids> one = {g["input_ids"][b].get<Ids>()};
    auto h = enc.forward_packed(one);
    ASSERT_EQ(h.size(), one[0].size() * C);
    EXPECT_LE(worst_rel(h.data(), g["hidden"][b], C), 1e-4f)
        << GetParam() << " sequence " << b << " (regenerate with /usr/bin/python3 tools/golden/gen_encoder_goldens.py)";
  }
}

TEST_P(EncoderGolden, PaddedBatchPoolsLikePyTorch) {
  auto g = golden_of(GetParam());
  lathe::Encoder enc = load(GetParam());
  const int C = enc.config().hidden_size, B = int(g["input_ids"].size());
  int T = 0;
  for (auto& s : g["input_ids"]) T = std::max(T, int(s.size()));
  std::vector<int32_t> ids(size_t(B) * T, 99999);  // padding ids are never read, even out-of-vocabulary ones
  std::vector<int> lengths(B);
  for (int b = 0; b < B; b++) {
    auto s = g["input_ids"][b].get<Ids>();
    lengths[b] = int(s.size());
    std::copy(s.begin(), s.end(), ids.begin() + size_t(b) * T);
  }
  auto h = enc.forward(ids.data(), lengths.data(), B, T);
  ASSERT_EQ(h.size(), size_t(B) * T * C);
  for (int b = 0; b < B; b++)
    for (size_t i = size_t(lengths[b]) * C; i < size_t(T) * C; i++) ASSERT_EQ(h[size_t(b) * T * C + i], 0.0f);

  std::vector<float> pooled(size_t(B) * C);
  for (auto [mode, key] : {std::pair{lathe::Pooling::Cls, "pooled_cls"}, {lathe::Pooling::Mean, "pooled_mean"}}) {
    lathe::encoder_pool(h.data(), lengths.data(), B, T, C, mode, false, pooled.data());
    EXPECT_LE(worst_rel(pooled.data(), g[key], C), 1e-4f) << GetParam() << " " << key;
  }
  // Normalized: unit length, same direction.
  lathe::encoder_pool(h.data(), lengths.data(), B, T, C, lathe::Pooling::Mean, true, pooled.data());
  for (int b = 0; b < B; b++) {
    double ss = 0, dot = 0, want_ss = 0;
    for (int i = 0; i < C; i++) {
      const double w = g["pooled_mean"][b][i].get<double>();
      ss += double(pooled[size_t(b) * C + i]) * pooled[size_t(b) * C + i];
      dot += pooled[size_t(b) * C + i] * w;
      want_ss += w * w;
    }
    EXPECT_NEAR(ss, 1.0, 1e-5);
    EXPECT_NEAR(dot / std::sqrt(want_ss), 1.0, 1e-5);
  }
}

TEST_P(EncoderGolden, BatchedWithPaddingEqualsUnbatched) {
  auto g = golden_of(GetParam());
  lathe::Encoder enc = load(GetParam());
  const int C = enc.config().hidden_size;
  std::vector<Ids> all;
  for (auto& s : g["input_ids"]) all.push_back(s.get<Ids>());
  auto packed = enc.forward_packed(all);
  size_t row = 0;
  for (size_t b = 0; b < all.size(); b++) {
    std::vector<Ids> one = {all[b]};
    auto alone = enc.forward_packed(one);
    for (size_t i = 0; i < alone.size(); i++)
      LATHE_ASSERT_CLOSE(packed[row * C + i], alone[i], 1e-5, 1e-5) << "sequence " << b << " value " << i;
    row += all[b].size();
  }
  EXPECT_EQ(row * C, packed.size());
}

INSTANTIATE_TEST_SUITE_P(Families, EncoderGolden, ::testing::Values("bert", "xlm-roberta"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(EncoderGoldenData, ConfigsParsedAsTheFamiliesNeed) {
  lathe::Encoder bert = load("bert"), xlmr = load("xlm-roberta");
  EXPECT_EQ(bert.config().family, lathe::EncoderFamily::Bert);
  EXPECT_EQ(bert.config().position_offset(), 0);
  EXPECT_EQ(bert.config().max_tokens(), bert.config().max_position_embeddings);
  EXPECT_EQ(xlmr.config().family, lathe::EncoderFamily::XlmRoberta);
  EXPECT_EQ(xlmr.config().position_offset(), 2);  // pad_token_id 1 + 1
  EXPECT_EQ(xlmr.config().max_tokens(), xlmr.config().max_position_embeddings - 2);
}

}  // namespace
