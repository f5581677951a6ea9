// LoftQ initialisation (init_lora_weights "loftq" with method qlora) against PyTorch
// (tools/golden/gen_loftq_goldens.py: PEFT's loftq_init written out, bitsandbytes' NF4 in torch): the NF4
// base Q (codes and absmax), |A|, |B| and B A after loftq_iter 1 and 2; LoftQ's point, a smaller
// ||W − (Q + s·B A)|| than plain QLoRA's; a 5-step `lathe train` trajectory from that init; the saved
// adapter's config and the base lathe rebuilds when loading it; a killed run resuming to the same bits;
// and the option errors. Regenerate with: /usr/bin/python3 tools/golden/gen_loftq_goldens.py
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/kernels/quant/nf4.h"
#include "lathe/peft/adapter.h"
#include "lathe/peft/lora.h"
#include "peft/peft_golden_util.h"
#include "test_util.h"

namespace {

using lathe::test::peft_golden::case_dir;
using lathe::test::peft_golden::golden;
using lathe::test::peft_golden::expect_close;



lathe::LoraConfig config_of(const nlohmann::json& hp) {
  lathe::LoraConfig lc;
  lc.r = hp["r"];
  lc.alpha = hp["lora_alpha"];
  lc.target_modules = hp["target_modules"].get<std::vector<std::string>>();
  return lc;
}

const lathe::Nf4Tensor& nf4_of(const lathe::Tensor& w, const std::string& name) {
  EXPECT_EQ(w.dtype, lathe::DType::NF4) << name;
  return *static_cast<const lathe::Nf4Tensor*>(w.data);
}

// Every adapted projection of `m` holds exactly the golden's NF4 base: same codes, same f32 absmax, plain
// (not double-quantized) absmax as PEFT's compress_statistics=False.
void expect_golden_base(lathe::Model& m, const nlohmann::json& g, const std::string& what) {
  size_t checked = 0;
  lathe::for_each_tensor(m.config, m.weights, [&](lathe::TensorSlot& t) {
    if (!g["base_nf4"].contains(t.hf_name)) return;
    const auto& want = g["base_nf4"][t.hf_name];
    const lathe::Nf4Tensor& q = nf4_of(*t.tensor, t.hf_name);
    ASSERT_FALSE(q.double_quant) << t.hf_name;
    ASSERT_EQ(q.blocksize, 64);
    const std::string codes = want["codes"];
    ASSERT_EQ(int64_t(codes.size()), q.numel()) << t.hf_name;
    int64_t differ = 0;
    for (int64_t i = 0; i < q.numel(); i++) {
      const int got = i % 2 ? q.codes[size_t(i / 2)] & 15 : q.codes[size_t(i / 2)] >> 4;
      differ += got != std::stoi(codes.substr(size_t(i), 1), nullptr, 16);
    }
    EXPECT_EQ(differ, 0) << what << " " << t.hf_name << ": NF4 codes differ from PyTorch's";
    ASSERT_EQ(q.absmax.size(), want["absmax_bits"].size());
    // loftq_iter 1 quantizes W itself: the same f32 bits. Later alternations quantize W − L R, whose last
    // bits come from the SVD (LAPACK here, torch's there): absmax to 1e-5 relative, the codes still equal.
    int64_t absmax_differ = 0;
    double worst = 0;
    for (size_t b = 0; b < q.absmax.size(); b++) {
      const float want_b = std::bit_cast<float>(want["absmax_bits"][b].get<uint32_t>());
      absmax_differ += q.absmax[b] != want_b;
      worst = std::max(worst, std::fabs(double(q.absmax[b]) - want_b) / want_b);
    }
    if (g["hparams"]["loftq_iter"] == 1)
      EXPECT_EQ(absmax_differ, 0) << what << " " << t.hf_name << ": absmax differs from PyTorch's (f32 bits)";
    EXPECT_LE(worst, 1e-5) << what << " " << t.hf_name << ": absmax differs from PyTorch's";
    checked++;
  });
  EXPECT_EQ(checked, g["base_nf4"].size()) << what;
}

class LoftqGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(LoftqGolden, InitValuesAndBase) {
  const std::string c = GetParam();
  auto g = golden(c);
  const auto& hp = g["hparams"];
  auto m = lathe::Model::load(case_dir(c) + "/base");
  auto a = lathe::LoraAdapter::create(m.config, config_of(hp), 0);
  a->init_loftq(m, hp["loftq_iter"], /*set_factors=*/true);
  // |A| and |B| to 3e-4 of their scale: W − Q's singular vectors are float32 LAPACK (lathe) against
  // torch's; B A, a product of them, is pinned tighter below, and the base bit for bit above.
  EXPECT_EQ(a->loftq_iter(), hp["loftq_iter"].get<int>());
  expect_golden_base(m, g, c);
  for (auto* p : a->params()) {
    std::vector<float> absval(size_t(p->value.numel()));
    for (size_t i = 0; i < absval.size(); i++) absval[i] = std::fabs(p->value.f32()[i]);
    expect_close(absval.data(), g["init_abs"][p->name], c + " |" + p->name + "|", 3e-4f);
  }
  size_t products = 0;
  for (int k = 0; k < int(lathe::LinearId::kCount); k++) {
    auto* lin = static_cast<lathe::LoraLinear*>(a->adapters().linear(0, lathe::LinearId(k)));
    if (!lin) continue;
    const std::string path = lin->A.name.substr(17, lin->A.name.size() - 17 - 14);  // base_model.model.<path>.lora_A.weight
    ASSERT_TRUE(g["init_products"].contains(path)) << path;
    const int out = int(lin->B.value.dim(0)), in = int(lin->A.value.dim(1)), r = a->config().r;
    std::vector<float> prod(size_t(out) * in, 0.0f);  // B A: PEFT's L R, unscaled
    for (int o = 0; o < out; o++)
      for (int j = 0; j < r; j++)
        for (int i = 0; i < in; i++) prod[size_t(o) * in + i] += lin->B.value.f32()[o * r + j] * lin->A.value.f32()[j * in + i];
    expect_close(prod.data(), g["init_products"][path], c + " B A " + path, 1e-4f);
    products++;
  }
  EXPECT_EQ(products, g["init_products"].size());
}

// ||W − (Q + s·B A)||_F over every adapted projection, with Q the NF4 weight `m` now holds.
double loftq_error(const lathe::Model& orig, const lathe::Model& m, const lathe::LoraAdapter& a) {
  double err = 0;
  const float s = a.config().scaling();
  for (int l = 0; l < orig.config.num_hidden_layers; l++)
    for (int k = 0; k < int(lathe::LinearId::kCount); k++) {
      auto* lin = static_cast<lathe::LoraLinear*>(a.adapters().linear(l, lathe::LinearId(k)));
      if (!lin) continue;
      const lathe::Tensor& W = lathe::linear_weight(orig.weights.layers[l], lathe::LinearId(k));
      const lathe::Tensor& Qt = lathe::linear_weight(m.weights.layers[l], lathe::LinearId(k));
      const int out = int(W.dim(0)), in = int(W.dim(1)), r = a.config().r;
      std::vector<float> Q(size_t(out) * in);
      lathe::nf4_dequantize(*static_cast<const lathe::Nf4Tensor*>(Qt.data), Q.data());
      for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
          float v = Q[size_t(o) * in + i];
          for (int j = 0; j < r; j++) v += s * lin->B.value.f32()[o * r + j] * lin->A.value.f32()[j * in + i];
          const double d = double(W.f32()[size_t(o) * in + i]) - v;
          err += d * d;
        }
    }
  return std::sqrt(err);
}

// LoftQ's point: with s = 1 (lora_alpha = r) the quantized base plus the initial adapter is nearer to W
// than plain QLoRA's NF4 base (double-quantized, B = 0), and iterating does not lose ground here.
TEST(LoftqError, SmallerThanPlainQlora) {
  const std::string c = "loftq_llama_t1";
  auto g = golden(c);
  const auto orig = lathe::Model::load(case_dir(c) + "/base");
  auto plain = lathe::Model::load(case_dir(c) + "/base");
  lathe::quantize_model_nf4(plain);
  auto fresh = lathe::LoraAdapter::create(orig.config, config_of(g["hparams"]), 0);  // B = 0
  const double e_plain = loftq_error(orig, plain, *fresh);
  std::vector<double> e;
  for (int iters : {1, 2, 5}) {
    auto m = lathe::Model::load(case_dir(c) + "/base");
    auto a = lathe::LoraAdapter::create(m.config, config_of(g["hparams"]), 0);
    ASSERT_EQ(a->config().scaling(), 1.0f);
    a->init_loftq(m, iters, true);
    e.push_back(loftq_error(orig, m, *a));
  }
  EXPECT_NEAR(e[0], g["frobenius_error"]["loftq"].get<double>(), 1e-3 * e[0]);
  EXPECT_LT(e[0], 0.9 * e_plain) << "LoftQ (1 iteration) should approximate W better than plain NF4";
  EXPECT_LE(e[1], e[0] * 1.001) << "a second alternation should not be worse";
  EXPECT_LE(e[2], e[0] * 1.001);
  std::printf("||W - (Q + sBA)||: plain QLoRA %.4f, LoftQ iter 1 %.4f, iter 2 %.4f, iter 5 %.4f\n", e_plain, e[0], e[1],
              e[2]);
}

std::vector<double> losses(const std::string& path) {
  std::vector<double> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (auto r = nlohmann::json::parse(line); r.contains("loss")) out.push_back(r["loss"]);
  return out;
}

std::string train_args(const std::string& c, const nlohmann::json& hp) {
  return " --model " + case_dir(c) + "/base --method qlora --init-lora-weights loftq --loftq-iter " +
         std::to_string(hp["loftq_iter"].get<int>()) + " --lora-r " + std::to_string(hp["r"].get<int>()) +
         " --lora-alpha " + std::to_string(hp["lora_alpha"].get<int>()) + " --lora-target-modules all-linear";
}

TEST_P(LoftqGolden, TrajectoryAndSavedAdapter) {
  const std::string c = GetParam();
  auto g = golden(c);
  const auto& hp = g["hparams"];
  lathe::test::TempDir d;
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe(
                "train" + train_args(c, hp) + " --data " + case_dir(c) + "/data.jsonl --output " + d / "out" +
                    " --learning-rate " + std::to_string(hp["lr"].get<double>()) + " --weight-decay " +
                    std::to_string(hp["weight_decay"].get<double>()) +
                    " --lr-scheduler-type linear --warmup-steps 2 --max-steps 5 --max-grad-norm 1.0"
                    " --per-device-train-batch-size 2 --no-shuffle --save-steps 0 --threads 1",
                &out, true), 0) << out;
  const auto got = losses(d / "out/metrics.jsonl");
  ASSERT_EQ(got.size(), 5u) << out;
  for (size_t i = 0; i < got.size(); i++)
    LATHE_EXPECT_CLOSE(got[i], g["trajectory"]["losses"][i].get<double>(), 1e-5, 2e-5) << c << " step " << i + 1;
  // PEFT's keys: the adapter belongs to LoftQ's base of the original model.
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "out/adapter_config.json"));
  EXPECT_EQ(cfg["init_lora_weights"], "loftq");
  EXPECT_EQ(cfg["loftq_config"]["loftq_bits"], 4);
  EXPECT_EQ(cfg["loftq_config"]["loftq_iter"], hp["loftq_iter"]);
  EXPECT_EQ(cfg["r"], hp["r"]);
  EXPECT_EQ(cfg["lathe_base_quantization"], "nf4");
  // Loading it for inference rebuilds that base from the original weights (generate, perplexity, eval and
  // export go through load_adapter_for / quantize_base_for).
  auto m = lathe::Model::load(case_dir(c) + "/base");
  lathe::LoadedAdapter a = lathe::load_adapter_for(d / "out", m);
  EXPECT_TRUE(a.base_nf4);
  ASSERT_TRUE(a.lora);
  EXPECT_EQ(a.lora->loftq_iter(), hp["loftq_iter"].get<int>());
  expect_golden_base(m, g, c + " (rebuilt on load)");
}

INSTANTIATE_TEST_SUITE_P(Iterations, LoftqGolden, ::testing::Values("loftq_llama_t1", "loftq_llama_t2"));

// A LoftQ run killed after a checkpoint rebuilds the same NF4 base (deterministic from W) and resumes to
// the same bits.
TEST(LoftqResume, SigkillThenResumeIsBitwiseIdentical) {
  const std::string c = "loftq_llama_t2";
  auto g = golden(c);
  lathe::test::TempDir d;
  std::string data = d / "data.jsonl";
  {
    std::string rows = lathe::read_file(case_dir(c) + "/data.jsonl");
    std::ofstream f(data);
    for (int k = 0; k < 20; k++) f << rows;
  }
  const std::string args = train_args(c, g["hparams"]) + " --data " + data +
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

// The adapter over its rebuilt NF4 base (perplexity --adapter) = the merge onto that base, dequantized
// (export --format merged), and differs from the adapter over plain QLoRA's base; gguf-lora is refused.
TEST(LoftqExport, AdapterEqualsMergedModel) {
  const std::string c = "loftq_llama_t2";
  auto g = golden(c);
  lathe::test::TempDir d;
  const std::string base = case_dir(c) + "/base", data = case_dir(c) + "/data.jsonl";
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe("train" + train_args(c, g["hparams"]) + " --data " + data + " --output " + d / "a" +
                                       " --max-steps 5 --save-steps 0 --threads 1", &out, true), 0) << out;
  ASSERT_EQ(lathe::test::run_lathe("export --model " + base + " --adapter " + d / "a" + " --format merged --output " +
                                       d / "merged", &out, true), 0) << out;
  auto nll = [&](const std::string& args) {
    std::string o;
    EXPECT_EQ(lathe::test::run_lathe("perplexity " + args + " --ids-file " + data + " --json --threads 1", &o), 0) << o;
    return nlohmann::json::parse(o)["nll"].get<double>();
  };
  const double adapter = nll("--model " + base + " --adapter " + d / "a");
  LATHE_EXPECT_CLOSE(adapter, nll("--model " + d / "merged"), 1e-5, 1e-4);
  // The same A, B marked as a plain QLoRA adapter land on NF4(W), double-quantized: another model.
  std::filesystem::copy(d / "a", d / "plain");
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "plain/adapter_config.json"));
  cfg["init_lora_weights"] = true;
  cfg.erase("loftq_config");
  lathe::write_file_atomic(d / "plain/adapter_config.json", cfg.dump(2));
  EXPECT_GT(std::fabs(adapter - nll("--model " + base + " --adapter " + d / "plain")), 1e-3);
  EXPECT_NE(lathe::test::run_lathe("export --model " + base + " --adapter " + d / "a" + " --format gguf-lora --output " +
                                       d / "a.gguf", &out, true), 0);
  EXPECT_NE(out.find("LoftQ adapter"), std::string::npos) << out;
}

// --init-adapter with a LoftQ adapter continues over its rebuilt base: the first loss of the continued run is
// the 6th loss of one run of 6 steps (constant lr: the same parameters after 5 updates, on the same base).
TEST(LoftqInitAdapter, ContinuesOverTheRebuiltBase) {
  const std::string c = "loftq_llama_t2";
  auto g = golden(c);
  lathe::test::TempDir d;
  const std::string common = " --model " + case_dir(c) + "/base --data " + case_dir(c) + "/data.jsonl --method qlora"
                             " --lora-target-modules all-linear --lr-scheduler-type constant --learning-rate 1e-2"
                             " --per-device-train-batch-size 2 --no-shuffle --save-steps 0 --threads 1";
  const std::string loftq = " --init-lora-weights loftq --loftq-iter 2 --lora-r 4 --lora-alpha 8";
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe("train" + common + loftq + " --max-steps 6 --output " + d / "six", &out, true), 0) << out;
  ASSERT_EQ(lathe::test::run_lathe("train" + common + loftq + " --max-steps 5 --output " + d / "five", &out, true), 0) << out;
  ASSERT_EQ(lathe::test::run_lathe("train" + common + " --init-adapter " + d / "five" + " --max-steps 1 --output " +
                                       d / "cont", &out, true), 0) << out;
  const auto six = losses(d / "six/metrics.jsonl"), cont = losses(d / "cont/metrics.jsonl");
  ASSERT_EQ(six.size(), 6u);
  ASSERT_EQ(cont.size(), 1u);
  LATHE_EXPECT_CLOSE(cont[0], six[5], 1e-6, 1e-6);
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "cont/adapter_config.json"));
  EXPECT_EQ(cfg["loftq_config"]["loftq_iter"], 2);
}

// The option errors name the field and say what is allowed.
TEST(LoftqOptions, ClearErrors) {
  const std::string c = "loftq_llama_t1";
  lathe::test::TempDir d;
  const std::string base = "train --model " + case_dir(c) + "/base --data " + case_dir(c) + "/data.jsonl --output " +
                           d / "out" + " --max-steps 1";
  auto error_for = [&](const std::string& extra) {
    std::string out;
    EXPECT_NE(lathe::test::run_lathe(base + extra, &out, true), 0) << extra;
    return out;
  };
  // From the command line the field is named by its flag (YAML: by its key).
  std::string e = error_for(" --method lora --init-lora-weights loftq");
  EXPECT_NE(e.find("--init-lora-weights"), std::string::npos) << e;
  EXPECT_NE(e.find("method qlora only"), std::string::npos) << e;
  e = error_for(" --method qlora --init-lora-weights loftq --use-dora");
  EXPECT_NE(e.find("'loftq' with use_dora is not supported"), std::string::npos) << e;
  e = error_for(" --method qlora --loftq-iter 2");
  EXPECT_NE(e.find("--loftq-iter"), std::string::npos) << e;
  EXPECT_NE(e.find("applies to init_lora_weights loftq"), std::string::npos) << e;
  e = error_for(" --method qlora --init-lora-weights loftq --loftq-iter 0");
  EXPECT_NE(e.find("--loftq-iter: must be >= 1"), std::string::npos) << e;
}

}  // namespace
