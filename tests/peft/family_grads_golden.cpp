// Training gradients of every model family against PyTorch autograd (float64 reference,
// tools/golden/gen_family_goldens.py): the causal-LM loss of one sequence and its gradients with
// respect to a PEFT LoRA adapter on every projection (A and B both non-zero), and with respect to
// the base weights for full fine-tuning (layer 0 and the tensors outside the layers: every kind).
// The finite-difference checks in train_graph_gradcheck.cpp test the same graph independently.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lathe/core/file_io.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/lora.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> cases() {
  std::vector<std::string> out;
  fs::path dir = lathe::test::source_path("tests/data/golden");
  if (fs::exists(dir))
    for (auto& e : fs::directory_iterator(dir))
      if (fs::exists(e.path() / "grads.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// max |got - want| relative to max |want| over the whole tensor.
void expect_grad(const std::string& what, const float* got, const nlohmann::json& want) {
  double worst = 0, scale = 1e-6;
  for (size_t i = 0; i < want.size(); i++) {
    double w = want[i].get<double>();
    scale = std::max(scale, std::fabs(w));
    worst = std::max(worst, std::fabs(double(got[i]) - w));
  }
  EXPECT_LE(worst / scale, 2e-4) << what << ": max |diff| " << worst << " at gradient scale " << scale;
}

class FamilyGrads : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyGrads, LoraAndFullMatchPyTorch) {
  const std::string dir = lathe::test::source_path("tests/data/golden/" + GetParam());
  auto g = nlohmann::json::parse(lathe::read_file(dir + "/grads.json"));
  lathe::Model m = lathe::Model::load(dir);
  make_weights_owned(m);
  auto ids = g["ids"].get<std::vector<int32_t>>();
  lathe::PackedBatch b;
  b.add(ids, ids);  // labels = ids: every next token counts, as HF's causal-LM loss
  const float scale = 1.0f / float(b.num_targets());

  auto lora = lathe::LoraAdapter::load_peft(dir + "/lora", m.config);
  {
    lathe::TrainGraph tg(m, &lora->adapters(), nullptr, false);
    int64_t n = 0;
    double loss = tg.forward_backward(b, scale, &n, {.training = true}) / double(n);
    LATHE_EXPECT_CLOSE(loss, g["lora_loss"].get<double>(), 1e-6, 1e-5);
    size_t checked = 0;
    for (lathe::Param* p : lora->params()) {
      ASSERT_TRUE(g["lora"].contains(p->name)) << p->name;
      expect_grad(p->name, p->grad.f32(), g["lora"][p->name]);
      checked++;
    }
    EXPECT_EQ(checked, g["lora"].size());
  }
  lathe::ModelWeights grads;
  lathe::for_each_tensor(m.config, grads, [&](lathe::TensorSlot& s) {
    *s.tensor = lathe::Tensor::zeros(lathe::DType::F32, s.shape);
  });
  if (m.config.tie_word_embeddings) grads.lm_head = grads.embed;
  lathe::TrainGraph tg(m, nullptr, &grads, false);
  int64_t n = 0;
  double loss = tg.forward_backward(b, scale, &n, {.training = true}) / double(n);
  LATHE_EXPECT_CLOSE(loss, g["full_loss"].get<double>(), 1e-6, 1e-5);
  size_t checked = 0;
  lathe::for_each_tensor(m.config, grads, [&](lathe::TensorSlot& s) {
    if (!g["full"].contains(s.hf_name)) return;
    expect_grad(s.hf_name, s.tensor->f32(), g["full"][s.hf_name]);
    checked++;
  });
  EXPECT_EQ(checked, g["full"].size());
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyGrads, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FamilyGrads);

TEST(FamilyGradsData, Present) { EXPECT_GE(cases().size(), 6u) << "tests/data/golden/*/grads.json are missing"; }

}  // namespace
