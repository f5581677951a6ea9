// PiSSA and OLoRA initialisation (init_lora_weights) against PyTorch (tools/golden/gen_dora_goldens.py,
// PEFT's pissa_init / olora_init with torch.linalg.svd / qr): the adapter's s·B A, |A|, |B| and the
// residual base W_res = W − s·B A at step 0, base + adapter = W; then `lathe train` from that init for
// 5 steps (losses vs PyTorch), and the saved adapter, converted to a rank-2r LoRA as PEFT's
// path_initial_model_for_weight_conversion does, applied to the untouched base gives the trained
// model's logits. Regenerate with: /usr/bin/python3 tools/golden/gen_dora_goldens.py pissa_llama olora_llama
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/model/forward.h"
#include "lathe/peft/lora.h"
#include "peft/peft_golden_util.h"
#include "test_util.h"

namespace {

using lathe::test::peft_golden::case_dir;
using lathe::test::peft_golden::golden;
using lathe::test::peft_golden::expect_close;
using lathe::test::peft_golden::logits_of;



lathe::LoraConfig config_of(const nlohmann::json& hp) {
  lathe::LoraConfig lc;
  lc.r = hp["r"];
  lc.alpha = hp["lora_alpha"];
  lc.use_rslora = hp["use_rslora"];
  lc.target_modules = hp["target_modules"].get<std::vector<std::string>>();
  return lc;
}

class LoraInitGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraInitGolden, InitValuesAndResidualBase) {
  const std::string c = GetParam();
  auto g = golden(c);
  const auto& hp = g["hparams"];
  auto m = lathe::Model::load(case_dir(c) + "/base");
  const auto orig = lathe::Model::load(case_dir(c) + "/base");
  auto a = lathe::LoraAdapter::create(m.config, config_of(hp), 0);
  a->init_from_base(m, hp["init_lora_weights"]);
  for (auto* p : a->params()) {
    std::vector<float> absval(size_t(p->value.numel()));
    for (size_t i = 0; i < absval.size(); i++) absval[i] = std::fabs(p->value.f32()[i]);
    expect_close(absval.data(), g["init_abs"][p->name], c + " |" + p->name + "|", 1e-4f);
  }
  size_t checked = 0;
  lathe::for_each_tensor(m.config, m.weights, [&](lathe::TensorSlot& t) {
    if (!g["residual_weights"].contains(t.hf_name)) return;
    expect_close(t.tensor->f32(), g["residual_weights"][t.hf_name], c + " W_res " + t.hf_name, 1e-4f);
    checked++;
  });
  EXPECT_EQ(checked, g["residual_weights"].size());
  // s·B A per module, and W_res + s·B A = W.
  const float s = a->config().scaling();
  for (int l = 0; l < m.config.num_hidden_layers; l++)
    for (int k = 0; k < int(lathe::LinearId::kCount); k++) {
      auto* lin = static_cast<lathe::LoraLinear*>(a->adapters().linear(l, lathe::LinearId(k)));
      if (!lin) continue;
      const lathe::Tensor& W = lathe::linear_weight(orig.weights.layers[l], lathe::LinearId(k));
      const lathe::Tensor& R = lathe::linear_weight(m.weights.layers[l], lathe::LinearId(k));
      const int out = int(W.dim(0)), in = int(W.dim(1)), r = a->config().r;
      std::vector<float> prod(size_t(out) * in, 0.0f);
      for (int o = 0; o < out; o++)
        for (int j = 0; j < r; j++)
          for (int i = 0; i < in; i++)
            prod[size_t(o) * in + i] += s * lin->B.value.f32()[o * r + j] * lin->A.value.f32()[j * in + i];
      const std::string path = lin->A.name.substr(17, lin->A.name.size() - 17 - 14);  // base_model.model.<path>.lora_A.weight
      ASSERT_TRUE(g["init_products"].contains(path)) << path;
      expect_close(prod.data(), g["init_products"][path], c + " s·B A " + path, 1e-4f);
      for (size_t i = 0; i < prod.size(); i++)
        ASSERT_NEAR(R.f32()[i] + prod[i], W.f32()[i], 1e-5f * (1 + std::fabs(W.f32()[i]))) << path << " " << i;
    }
}


TEST_P(LoraInitGolden, TrajectoryAndConvertedAdapter) {
  const std::string c = GetParam();
  auto g = golden(c);
  const auto& hp = g["hparams"];
  std::string targets;
  for (auto& t : hp["target_modules"]) targets += (targets.empty() ? "" : ",") + t.get<std::string>();
  lathe::test::TempDir d;
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe(
                "train --model " + case_dir(c) + "/base --data " + case_dir(c) + "/data.jsonl --output " + d / "out" +
                    " --method lora --init-lora-weights " + hp["init_lora_weights"].get<std::string>() + " --lora-r " +
                    std::to_string(hp["r"].get<int>()) + " --lora-alpha " + std::to_string(hp["lora_alpha"].get<int>()) +
                    (hp["use_rslora"].get<bool>() ? " --use-rslora" : "") + " --lora-target-modules " + targets +
                    " --learning-rate " + std::to_string(hp["lr"].get<double>()) + " --weight-decay " +
                    std::to_string(hp["weight_decay"].get<double>()) +
                    " --lr-scheduler-type linear --warmup-steps 2 --max-steps 5 --max-grad-norm 1.0"
                    " --per-device-train-batch-size 2 --no-shuffle --save-steps 0 --threads 1",
                &out, true), 0) << out;
  std::ifstream f(d / "out/metrics.jsonl");
  std::string line;
  size_t i = 0;
  while (std::getline(f, line)) {
    auto row = nlohmann::json::parse(line);
    if (!row.contains("loss")) continue;
    ASSERT_LT(i, 5u);
    LATHE_EXPECT_CLOSE(row["loss"].get<double>(), g["trajectory"]["losses"][i].get<double>(), 1e-5, 2e-5) << c << " step " << i + 1;
    i++;
  }
  EXPECT_EQ(i, 5u);
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "out/adapter_config.json"));
  EXPECT_EQ(cfg["r"], 2 * hp["r"].get<int>());
  EXPECT_EQ(cfg["init_lora_weights"], true);
  EXPECT_EQ(cfg["lathe_converted_from"], hp["init_lora_weights"]);
  // The converted adapter on the original base = the trained adapter on W_res (PyTorch's final logits).
  auto m = lathe::Model::load(case_dir(c) + "/base");
  auto a = lathe::LoraAdapter::load_peft(d / "out", m.config);
  EXPECT_NEAR(a->config().scaling(), hp["scaling"].get<float>(), 1e-6);
  for (size_t sq = 0; sq < g["input_ids"].size(); sq++) {
    auto ids = g["input_ids"][sq].get<std::vector<int32_t>>();
    nlohmann::json flat = nlohmann::json::array();
    for (auto& row : g["final_logits"][sq])
      for (auto& v : row) flat.push_back(v);
    expect_close(logits_of(m, &a->adapters(), ids).data(), flat, c + " converted adapter logits", 2e-4f);
  }
}

// pissa_niter_N (torch.svd_lowrank with q = r, as PEFT): N subspace iterations take the sketch to the
// top-r subspace, so s·B A approaches the exact PiSSA's (error ~ (σ_{r+1}/σ_r)^(2N+1)); with none it is
// far off; W_res + s·B A = W whatever N.
TEST(LoraInitRandomized, PissaNiterApproachesExactSvd) {
  const std::string c = "pissa_llama";
  auto g = golden(c);
  auto error_for = [&](int niter) {
    auto m = lathe::Model::load(case_dir(c) + "/base");
    const auto orig = lathe::Model::load(case_dir(c) + "/base");
    auto a = lathe::LoraAdapter::create(m.config, config_of(g["hparams"]), 0);
    a->init_from_base(m, "pissa_niter_" + std::to_string(niter), 9);
    double err = 0, ref = 0;
    for (int l = 0; l < m.config.num_hidden_layers; l++)
      for (int k = 0; k < int(lathe::LinearId::kCount); k++) {
        auto* lin = static_cast<lathe::LoraLinear*>(a->adapters().linear(l, lathe::LinearId(k)));
        if (!lin) continue;
        const lathe::Tensor& W = lathe::linear_weight(orig.weights.layers[l], lathe::LinearId(k));
        const lathe::Tensor& R = lathe::linear_weight(m.weights.layers[l], lathe::LinearId(k));
        const std::string path = lin->A.name.substr(17, lin->A.name.size() - 17 - 14);
        const auto& want = g["init_products"][path];
        for (int64_t i = 0; i < W.numel(); i++) {
          const float prod = W.f32()[i] - R.f32()[i];  // s·B A, by W_res's definition ...
          const float w = want[size_t(i)].get<float>();
          err += double(prod - w) * (prod - w), ref += double(w) * w;
        }
        // ... checked here against the factors themselves.
        const int out = int(W.dim(0)), in = int(W.dim(1)), r = a->config().r;
        for (int o = 0; o < out; o += 7)
          for (int i = 0; i < in; i += 5) {
            float p = 0;
            for (int j = 0; j < r; j++) p += lin->scaling * lin->B.value.f32()[o * r + j] * lin->A.value.f32()[j * in + i];
            EXPECT_NEAR(R.f32()[size_t(o) * in + i] + p, W.f32()[size_t(o) * in + i], 1e-5f) << path;
          }
      }
    return std::sqrt(err / ref);
  };
  // This random base has σ5/σ4 up to 0.983 (a small gap): 400 iterations leave ~0.983^801 ≈ 1e-6.
  const double e0 = error_for(0), e4 = error_for(4), e400 = error_for(400);
  EXPECT_LT(e400, 1e-3) << "400 subspace iterations should reach the top-r subspace";
  EXPECT_LT(e4, e0) << "iterations should improve the sketch";
  EXPECT_GT(e0, 100 * e400) << "without iterations the sketch should be visibly off";
}

std::vector<double> losses(const std::string& path) {
  std::vector<double> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (auto r = nlohmann::json::parse(line); r.contains("loss")) out.push_back(r["loss"]);
  return out;
}

// A PiSSA run killed after a checkpoint rebuilds the same residual base (the SVD is deterministic) and
// resumes to the same bits; the converted adapter is the same file.
TEST(LoraInitResume, PissaSigkillThenResumeIsBitwiseIdentical) {
  const std::string c = "pissa_llama";
  lathe::test::TempDir d;
  std::string data = d / "data.jsonl";
  {
    std::string rows = lathe::read_file(case_dir(c) + "/data.jsonl");
    std::ofstream f(data);
    for (int k = 0; k < 20; k++) f << rows;
  }
  const std::string args = " --model " + case_dir(c) + "/base --data " + data +
                           " --method lora --init-lora-weights pissa_niter_2 --lora-target-modules all-linear"
                           " --learning-rate 1e-3 --max-steps 400 --per-device-train-batch-size 2 --save-steps 20"
                           " --threads 1";
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe("train --output " + d / "straight" + args, &out, true), 0) << out;
  std::string killed = d / "killed";
  ASSERT_TRUE(lathe::test::run_lathe_killed_when("train --output " + killed + args, killed + "/checkpoint-40"))
      << "the run finished before it could be killed; make it longer";
  ASSERT_EQ(lathe::test::run_lathe("train --output " + killed + args + " --resume-from-checkpoint latest", &out, true), 0)
      << out;
  EXPECT_EQ(losses(killed + "/metrics.jsonl"), losses(d / "straight/metrics.jsonl"));
  EXPECT_EQ(lathe::read_file(killed + "/adapter_model.safetensors"),
            lathe::read_file(d / "straight/adapter_model.safetensors"));
}

INSTANTIATE_TEST_SUITE_P(Methods, LoraInitGolden, ::testing::Values("pissa_llama", "olora_llama"));

}  // namespace
