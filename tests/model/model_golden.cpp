// Model forward against the PyTorch reference (tools/golden/gen_model_goldens.py): logits for
// fixed ids on tiny random Llama / Mistral / Qwen2 / Qwen3 models (tied and untied, rope scaling
// linear and llama3, sharded and BF16 storage), plus greedy continuations and KV-cache decoding.
// To regenerate after a deliberate change: /usr/bin/python3 tools/golden/gen_model_goldens.py
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lathe/core/file_io.h"
#include "lathe/model/batched_decode.h"
#include "lathe/model/forward.h"
#include "lathe/model/generate.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> golden_cases() {
  std::vector<std::string> out;
  fs::path dir = lathe::test::source_path("tests/data/golden");
  if (fs::exists(dir))
    for (auto& e : fs::directory_iterator(dir))
      if (fs::exists(e.path() / "golden.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// All logits [T, V] of one sequence, computed as one chunk into an empty cache.
std::vector<float> full_logits(const lathe::Model& m, const std::vector<int32_t>& ids) {
  const int T = int(ids.size()), V = m.config.vocab_size;
  lathe::Forward fwd(m, T);
  lathe::KVCache cache = lathe::KVCache::create(m.config, T);
  const float* h = fwd.hidden(ids.data(), T, &cache);
  std::vector<float> logits(size_t(T) * V);
  fwd.logits(h, T, logits.data());
  return logits;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, LogitsMatchPyTorch) {
  std::string dir = lathe::test::source_path("tests/data/golden/" + GetParam());
  auto g = nlohmann::json::parse(lathe::read_file(dir + "/golden.json"));
  lathe::Model m = lathe::Model::load(dir);
  const int V = m.config.vocab_size;
  for (auto [ids_key, logits_key] : {std::pair{"input_ids", "logits"}, {"input_ids_ragged", "logits_ragged"}}) {
  if (!g.contains(ids_key)) continue;
  ASSERT_EQ(g[ids_key].size(), g[logits_key].size());
  for (size_t b = 0; b < g[ids_key].size(); b++) {
    auto ids = g[ids_key][b].get<std::vector<int32_t>>();
    auto got = full_logits(m, ids);
    float scale = 1.0f, worst = 0.0f;
    for (auto& row : g[logits_key][b])
      for (auto& v : row) scale = std::max(scale, std::fabs(v.get<float>()));
    for (size_t t = 0; t < ids.size(); t++) {
      ASSERT_EQ(int(g[logits_key][b][t].size()), V);
      for (int v = 0; v < V; v++)
        worst = std::max(worst, std::fabs(got[t * V + v] - g[logits_key][b][t][v].get<float>()));
    }
    EXPECT_LE(worst / scale, 1e-4f) << GetParam() << " sequence " << b << ": max |logit diff| " << worst
                                    << " at logit scale " << scale
                                    << " (regenerate with /usr/bin/python3 tools/golden/gen_model_goldens.py)";
  }
  }
}

TEST_P(Golden, IncrementalDecodingMatchesFullForward) {
  std::string dir = lathe::test::source_path("tests/data/golden/" + GetParam());
  auto g = nlohmann::json::parse(lathe::read_file(dir + "/golden.json"));
  lathe::Model m = lathe::Model::load(dir);
  auto ids = g["input_ids"][0].get<std::vector<int32_t>>();
  const int T = int(ids.size()), V = m.config.vocab_size;
  auto full = full_logits(m, ids);
  // Two chunks (prefix of 3, then the rest), then one token at a time.
  lathe::Forward fwd(m, T);
  lathe::KVCache cache = lathe::KVCache::create(m.config, T);
  std::vector<float> step(V);
  int first = std::min(3, T);
  const float* h = fwd.hidden(ids.data(), first, &cache);
  fwd.logits(h + size_t(first - 1) * m.config.hidden_size, 1, step.data());
  for (int v = 0; v < V; v++) LATHE_EXPECT_CLOSE(step[v], full[size_t(first - 1) * V + v], 1e-5, 1e-4);
  for (int t = first; t < T; t++) {
    h = fwd.hidden(&ids[t], 1, &cache);
    fwd.logits(h, 1, step.data());
    for (int v = 0; v < V; v++) LATHE_ASSERT_CLOSE(step[v], full[size_t(t) * V + v], 1e-5, 1e-4) << "position " << t;
  }
}

TEST_P(Golden, BatchedDecodingMatchesFullForward) {
  // Serving's decode step: two sequences of different lengths advance together, each in its own
  // cache at its own position (sliding windows, longrope and no-RoPE layers see per-row positions).
  std::string dir = lathe::test::source_path("tests/data/golden/" + GetParam());
  auto g = nlohmann::json::parse(lathe::read_file(dir + "/golden.json"));
  lathe::Model m = lathe::Model::load(dir);
  auto a = g["input_ids"][0].get<std::vector<int32_t>>();
  auto b = g["input_ids"][1].get<std::vector<int32_t>>();
  const int T = int(a.size()), V = m.config.vocab_size, lag = 2;
  auto fa = full_logits(m, a), fb = full_logits(m, b);
  lathe::KVCache ca = lathe::KVCache::create(m.config, T), cb = lathe::KVCache::create(m.config, T);
  lathe::Forward fwd(m, T);
  fwd.hidden(b.data(), lag, &cb);  // b starts `lag` tokens ahead
  lathe::BatchedDecoder dec(m, 2);
  std::vector<float> logits(2 * size_t(V));
  for (int t = 0; t + lag < T; t++) {
    int32_t ids[2] = {a[t], b[t + lag]};
    lathe::KVCache* caches[2] = {&ca, &cb};
    const lathe::AdapterSet* none[2] = {nullptr, nullptr};
    dec.step(ids, caches, none, 2, logits.data());
    for (int v = 0; v < V; v++) {
      LATHE_ASSERT_CLOSE(logits[v], fa[size_t(t) * V + v], 1e-5, 1e-4) << "sequence a, position " << t;
      LATHE_ASSERT_CLOSE(logits[V + v], fb[size_t(t + lag) * V + v], 1e-5, 1e-4) << "sequence b, position " << t + lag;
    }
  }
}

TEST_P(Golden, GreedyMatchesPyTorch) {
  std::string dir = lathe::test::source_path("tests/data/golden/" + GetParam());
  auto g = nlohmann::json::parse(lathe::read_file(dir + "/golden.json"));
  if (!g.contains("greedy")) GTEST_SKIP() << "no greedy reference";
  lathe::Model m = lathe::Model::load(dir);
  auto prompt = g["greedy"]["prompt"].get<std::vector<int32_t>>();
  auto want = g["greedy"]["ids"].get<std::vector<int32_t>>();
  lathe::GenerateParams p;
  p.max_new_tokens = int(want.size());
  auto r = lathe::generate(m, prompt, p);
  EXPECT_EQ(r.ids, want);
}

INSTANTIATE_TEST_SUITE_P(Models, Golden, ::testing::ValuesIn(golden_cases()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Golden);

TEST(GoldenData, Present) {
  // The goldens are committed; their absence means a broken checkout, not a skip.
  EXPECT_GE(golden_cases().size(), 6u) << "tests/data/golden is missing cases";
}

}  // namespace
