// data.max_memory: sizes with units, the key and flag reaching DataConfig, errors that name the key,
// and that the setting is not part of the dataset's identity (manifest config).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "lathe/core/error.h"
#include "lathe/data/data_config.h"
#include "lathe/data/pipeline.h"

namespace {

using lathe::data::parse_data_config;
using lathe::data::parse_memory_size;

std::string error_of(const std::string& text) {
  try {
    parse_memory_size(text, "project.yaml:data");
  } catch (const lathe::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DataConfig, MemorySizesCountIn1024s) {
  EXPECT_EQ(parse_memory_size("1073741824", "x"), 1073741824u);
  EXPECT_EQ(parse_memory_size("512MB", "x"), 512ull << 20);
  EXPECT_EQ(parse_memory_size("512 mib", "x"), 512ull << 20);
  EXPECT_EQ(parse_memory_size("2GB", "x"), 2ull << 30);
  EXPECT_EQ(parse_memory_size("1.5G", "x"), 3ull << 29);
  EXPECT_EQ(parse_memory_size("65536k", "x"), 64ull << 20);
  EXPECT_EQ(parse_memory_size("1TiB", "x"), 1ull << 40);
}

TEST(DataConfig, BadMemorySizesNameTheKey) {
  for (const char* bad : {"lots", "2 parsecs", "1KB", "-5GB", ""}) {
    const std::string e = error_of(bad);
    EXPECT_NE(e.find("max_memory"), std::string::npos) << bad << ": " << e;
    EXPECT_NE(e.find("project.yaml:data"), std::string::npos) << bad << ": " << e;
  }
}

TEST(DataConfig, MaxMemoryIsReadButNotPartOfTheDatasetIdentity) {
  auto c = parse_data_config(YAML::Load("max_memory: 768MB\ninputs: [a.jsonl]\noutput: out"), "d");
  EXPECT_EQ(c.max_memory_bytes, 768ull << 20);
  EXPECT_FALSE(c.to_json().contains("max_memory"));
  EXPECT_EQ(parse_data_config(YAML::Load("inputs: [a.jsonl]\noutput: out"), "d").max_memory_bytes, 0u);
  try {
    parse_data_config(YAML::Load("max_memory: 3 bananas\ninputs: [a.jsonl]\noutput: out"), "project.yaml:data");
    ADD_FAILURE() << "no error";
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_memory"), std::string::npos) << e.what();
  }
}

// A ratio that is not a finite number >= 0 (YAML's .nan and .inf included) is named, not used: with
// it the split's cuts would fall nowhere.
TEST(DataConfig, SplitRatiosMustBeFiniteAndNotNegative) {
  for (const char* bad : {"[1, .nan, 0]", "[.inf, 0, 0]", "[0.9, -0.1, 0.2]"}) {
    try {
      parse_data_config(YAML::Load(std::string("inputs: [a.jsonl]\noutput: out\nsplit: {ratios: ") + bad + "}"),
                        "project.yaml:data");
      ADD_FAILURE() << bad << ": no error";
    } catch (const lathe::Error& e) {
      EXPECT_NE(std::string(e.what()).find("split.ratios"), std::string::npos) << bad << ": " << e.what();
    }
  }
  EXPECT_NO_THROW(parse_data_config(YAML::Load("inputs: [a.jsonl]\noutput: out\nsplit: {ratios: [0, 1]}"), "d"));
}
