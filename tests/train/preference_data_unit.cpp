// PreferenceData's reading of paired records for KTO: TRL unpairs them with a batched map, so each
// batch of records yields its chosen completions (desirable) and then its rejected ones.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/train/preference_data.h"
#include "test_util.h"

namespace {

TEST(PreferenceData, KtoUnpairsEachBatchChosenFirst) {
  lathe::test::TempDir dir;
  const std::string path = dir / "pairs.jsonl";
  std::ofstream f(path);
  for (int i = 0; i < 3; i++)
    f << nlohmann::json{{"prompt_input_ids", {1, 2}}, {"chosen_input_ids", {10 + i}}, {"rejected_input_ids", {20 + i}}}
             .dump()
      << "\n";
  f.close();
  lathe::RecordEncoderFactory no_encoder = []() -> const lathe::RecordEncoder& {
    throw lathe::Error("pre-tokenized records need no encoder");
  };
  auto d = lathe::PreferenceData::load(path, "kto", 0, 1, /*shuffle=*/false, no_encoder);
  ASSERT_EQ(d.examples().size(), 6u);
  EXPECT_EQ(d.desirable(), 3);
  EXPECT_EQ(d.undesirable(), 3);
  auto b = d.batch({0, 1, 2, 3, 4, 5});
  const std::vector<int32_t> completions = {10, 11, 12, 20, 21, 22};
  for (size_t i = 0; i < 6; i++) {
    EXPECT_EQ(b.ids[i].back(), completions[i]) << i;
    EXPECT_EQ(b.desirable[i], i < 3) << i;
  }
  // DPO keeps the pairs as they are.
  auto p = lathe::PreferenceData::load(path, "dpo", 0, 1, false, no_encoder);
  EXPECT_EQ(p.examples().size(), 3u);
  EXPECT_FALSE(p.unpaired());
}

}  // namespace
