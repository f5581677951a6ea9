// Shared by the PEFT golden and gradient tests: the golden cases under tests/data/train_golden (written
// by tools/golden/gen_*_goldens.py), their batches, the tolerance rule and the inference-path logits.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/model/forward.h"
#include "lathe/model/train_graph.h"
#include "test_util.h"

namespace lathe::test::peft_golden {

inline std::string case_dir(const std::string& c) { return source_path("tests/data/train_golden/" + c); }
inline nlohmann::json golden(const std::string& c) {
  return nlohmann::json::parse(read_file(case_dir(c) + "/golden.json"));
}

// The golden's sequences with their labels, as one packed batch.
inline PackedBatch batch_of(const nlohmann::json& g) {
  PackedBatch b;
  for (size_t i = 0; i < g["input_ids"].size(); i++)
    b.add(g["input_ids"][i].get<std::vector<int32_t>>(), g["labels"][i].get<std::vector<int32_t>>());
  return b;
}

// Max abs difference within rel x the largest magnitude (at least 1e-3): fp32 sums reorder across
// kernels, so elementwise relative checks would fail on small entries.
inline void expect_close(const float* got, const nlohmann::json& want, const std::string& what, float rel = 2e-4f) {
  float scale = 1e-3f, worst = 0;
  for (auto& v : want) scale = std::max(scale, std::fabs(v.get<float>()));
  for (size_t i = 0; i < want.size(); i++) worst = std::max(worst, std::fabs(got[i] - want[i].get<float>()));
  EXPECT_LE(worst, rel * scale) << what << ": max abs diff " << worst << " at scale " << scale;
}

// Logits of one sequence through the inference path (Forward + a KV cache sized for the adapters).
inline std::vector<float> logits_of(const Model& m, const AdapterSet* as, const std::vector<int32_t>& ids) {
  Forward fwd(m, int(ids.size()), as);
  auto cache = KVCache::create_for(m.config, int(ids.size()), as);
  const float* h = fwd.hidden(ids.data(), int(ids.size()), &cache);
  std::vector<float> logits(ids.size() * m.config.vocab_size);
  fwd.logits(h, int(ids.size()), logits.data());
  return logits;
}

}  // namespace lathe::test::peft_golden
