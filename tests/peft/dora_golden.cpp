// DoRA and LoRA+ against the PyTorch reference (tools/golden/gen_dora_goldens.py): loss, gradients
// and logits with a PEFT-layout DoRA adapter (magnitude vectors included) on tiny Llama and Qwen2
// models; the merged weights W' = m / ||W + s·B A|| · (W + s·B A); 5-step AdamW trajectories through
// `lathe train` for DoRA, LoRA+ and DoRA + LoRA+ (lora_B and the magnitudes at lr·ratio); the PEFT
// save/load round trip; the GGUF LoRA refusal and the merged GGUF; a DoRA run killed and resumed.
// Regenerate with: /usr/bin/python3 tools/golden/gen_dora_goldens.py
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/batched_decode.h"
#include "lathe/model/forward.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/lora.h"
#include "lathe/train/dataset.h"
#include "peft/peft_golden_util.h"
#include "test_util.h"

namespace {

using lathe::test::peft_golden::case_dir;
using lathe::test::peft_golden::golden;
using lathe::test::peft_golden::batch_of;
using lathe::test::peft_golden::expect_close;
using lathe::test::peft_golden::logits_of;





nlohmann::json flat_logits(const nlohmann::json& g, size_t s) {
  nlohmann::json flat = nlohmann::json::array();
  for (auto& row : g["logits"][s])
    for (auto& v : row) flat.push_back(v);
  return flat;
}

TEST(DoraGolden, GradientsLogitsAndMerge) {
  for (const char* c : {"dora_llama", "dora_qwen2"}) {
    auto g = golden(c);
    auto m = lathe::Model::load(case_dir(c) + "/base");
    auto lora = lathe::LoraAdapter::load_peft(case_dir(c) + "/adapter_init", m.config);
    ASSERT_TRUE(lora->config().use_dora) << c;
    ASSERT_EQ(lora->params().size(), g["grads"].size()) << c << ": A, B and a magnitude per module";
    for (auto* p : lora->params()) expect_close(p->value.f32(), g["init"][p->name], p->name + " (adapter file)", 0);
    auto b = batch_of(g);
    lathe::TrainGraph graph(m, &lora->adapters(), nullptr, false);
    int64_t n = 0;
    double nll = graph.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
    LATHE_EXPECT_CLOSE(nll / double(n), g["loss"].get<double>(), 1e-5, 1e-5) << c;
    for (auto* p : lora->params()) expect_close(p->grad.f32(), g["grads"][p->name], std::string(c) + " " + p->name);

    for (size_t s = 0; s < g["input_ids"].size(); s++) {
      auto ids = g["input_ids"][s].get<std::vector<int32_t>>();
      expect_close(logits_of(m, &lora->adapters(), ids).data(), flat_logits(g, s), std::string(c) + " logits", 1e-4f);
    }

    // Merge: every adapted weight equals the reference's m / ||W + sBA|| (W + sBA), and the merged
    // model's logits equal the adapter's.
    lathe::Model merged = lathe::Model::load(case_dir(c) + "/base");
    lora->merge_into(merged);
    size_t checked = 0;
    lathe::for_each_tensor(merged.config, merged.weights, [&](lathe::TensorSlot& t) {
      if (!g["merged_weights"].contains(t.hf_name)) return;
      expect_close(t.tensor->f32(), g["merged_weights"][t.hf_name], std::string(c) + " merged " + t.hf_name, 1e-5f);
      checked++;
    });
    EXPECT_EQ(checked, g["merged_weights"].size()) << c;
    for (size_t s = 0; s < g["input_ids"].size(); s++) {
      auto ids = g["input_ids"][s].get<std::vector<int32_t>>();
      expect_close(logits_of(merged, nullptr, ids).data(), flat_logits(g, s), std::string(c) + " merged logits", 1e-4f);
    }
  }
}

// Serving: batched decoding of a DoRA request beside a request without adapter (each its own rows
// through one base matmul, the DoRA delta on its rows only) gives PyTorch's logits for both.
TEST(DoraGolden, BatchedDecodePerRequestAdapters) {
  const std::string c = "dora_qwen2";  // q/v biases: the delta must leave them out
  auto g = golden(c);
  auto m = lathe::Model::load(case_dir(c) + "/base");
  auto lora = lathe::LoraAdapter::load_peft(case_dir(c) + "/adapter_init", m.config);
  auto a = g["input_ids"][0].get<std::vector<int32_t>>();
  auto b = g["input_ids"][1].get<std::vector<int32_t>>();
  const int T = int(a.size()), V = m.config.vocab_size;
  const auto plain_b = logits_of(m, nullptr, b);
  const auto want_a = flat_logits(g, 0);
  auto ca = lathe::KVCache::create_for(m.config, T, &lora->adapters());
  auto cb = lathe::KVCache::create_for(m.config, T, nullptr);
  lathe::BatchedDecoder dec(m, 2);
  std::vector<float> logits(2 * size_t(V));
  for (int t = 0; t < T; t++) {
    int32_t ids[2] = {a[t], b[t]};
    lathe::KVCache* caches[2] = {&ca, &cb};
    const lathe::AdapterSet* sets[2] = {&lora->adapters(), nullptr};
    dec.step(ids, caches, sets, 2, logits.data());
    for (int v = 0; v < V; v++) {
      LATHE_ASSERT_CLOSE(logits[v], want_a[size_t(t) * V + v].get<float>(), 1e-4, 1e-4) << "DoRA request, position " << t;
      LATHE_ASSERT_CLOSE(logits[V + v], plain_b[size_t(t) * V + v], 1e-5, 1e-4) << "plain request, position " << t;
    }
  }
}

// A fresh DoRA adapter (B = 0, m = ||W||) leaves the model unchanged, as PEFT's initialisation does.
TEST(DoraGolden, FreshAdapterIsTheBaseModel) {
  auto m = lathe::Model::load(case_dir("dora_llama") + "/base");
  lathe::LoraConfig lc;
  lc.r = 4;
  lc.use_dora = true;
  lc.target_modules = {"all-linear"};
  auto lora = lathe::LoraAdapter::create(m.config, lc, 7);
  lora->init_dora_magnitude(m);
  const std::vector<int32_t> ids = {3, 9, 27, 1, 50};
  auto plain = logits_of(m, nullptr, ids), adapted = logits_of(m, &lora->adapters(), ids);
  for (size_t i = 0; i < plain.size(); i++) ASSERT_NEAR(adapted[i], plain[i], 1e-5f * (1 + std::fabs(plain[i]))) << i;
}

TEST(DoraGolden, PeftSaveLoadRoundTrip) {
  auto m = lathe::Model::load(case_dir("dora_qwen2") + "/base");
  auto a = lathe::LoraAdapter::load_peft(case_dir("dora_qwen2") + "/adapter_init", m.config);
  lathe::test::TempDir d;
  a->save_peft(d / "out", "base");
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "out/adapter_config.json"));
  EXPECT_EQ(cfg["use_dora"], true);
  auto st = lathe::SafetensorsFile::open(d / "out/adapter_model.safetensors");
  EXPECT_TRUE(st.has("base_model.model.model.layers.1.self_attn.v_proj.lora_magnitude_vector"));
  auto b = lathe::LoraAdapter::load_peft(d / "out", m.config);
  ASSERT_EQ(a->params().size(), b->params().size());
  for (size_t i = 0; i < a->params().size(); i++)
    EXPECT_EQ(0, std::memcmp(a->params()[i]->value.data, b->params()[i]->value.data, a->params()[i]->value.nbytes()));

  // A magnitude vector without use_dora is an error that says so; so is use_dora without magnitudes.
  cfg["use_dora"] = false;
  lathe::write_file_atomic(d / "out/adapter_config.json", cfg.dump());
  try {
    lathe::LoraAdapter::load_peft(d / "out", m.config);
    ADD_FAILURE() << "loaded magnitudes without use_dora";
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not say use_dora"), std::string::npos) << e.what();
  }
  cfg["use_dora"] = true;
  lathe::write_file_atomic(d / "out/adapter_config.json", cfg.dump());
  std::filesystem::copy_file(case_dir("lora_qwen2") + "/adapter_init/adapter_model.safetensors",
                             d / "out/adapter_model.safetensors", std::filesystem::copy_options::overwrite_existing);
  try {
    lathe::LoraAdapter::load_peft(d / "out", m.config);
    ADD_FAILURE() << "loaded a DoRA config without magnitudes";
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora_magnitude_vector"), std::string::npos) << e.what();
  }
}

// llama.cpp has no magnitude vectors: gguf-lora refuses with a hint. Merged (HF directory and GGUF),
// the adapter generates exactly what `generate --adapter` (the unmerged hook, as serve and eval run
// it) does, on a real model (stories260K, with its tokenizer).
std::string generate(const std::string& model, const std::string& adapter = "") {
  std::string out;
  EXPECT_EQ(0, lathe::test::run_lathe("generate --model " + model + (adapter.empty() ? "" : " --adapter " + adapter) +
                                          " --prompt 'Once upon a time' --max-new-tokens 24 --json", &out, true))
      << out;
  return out;
}

TEST(DoraExport, GgufLoraRefusedMergedGgufWorks) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/model.safetensors");
  const std::string base = lathe::test::fixture_path("models/stories260K-hf");
  lathe::test::TempDir d;
  {
    auto m = lathe::Model::load(base);
    lathe::LoraConfig lc;
    lc.r = 4;
    lc.alpha = 8;
    lc.use_dora = true;
    lc.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"};
    auto a = lathe::LoraAdapter::create(m.config, lc, 1);
    a->init_dora_magnitude(m);
    lathe::Rng rng(2);
    for (auto* p : a->params()) {
      const bool mag = p->name.ends_with("lora_magnitude_vector");
      if (mag || p->name.find("lora_B") != std::string::npos)
        for (int64_t i = 0; i < p->value.numel(); i++)
          p->value.f32()[i] = mag ? p->value.f32()[i] * (1.0f + 0.3f * rng.normal()) : 0.3f * rng.normal();
    }
    a->save_peft(d / "dora", base);
  }
  std::string out;
  EXPECT_NE(lathe::test::run_lathe("export --format gguf-lora --model " + base + " --adapter " + d / "dora" +
                                       " --output " + d / "a.gguf", &out, true), 0);
  EXPECT_NE(out.find("--format gguf --adapter"), std::string::npos) << out;
  EXPECT_FALSE(lathe::file_exists(d / "a.gguf"));
  ASSERT_EQ(lathe::test::run_lathe("export --model " + base + " --adapter " + d / "dora" + " --output " + d / "merged",
                                   &out, true), 0) << out;
  ASSERT_EQ(lathe::test::run_lathe("export --format gguf --gguf-type f32 --model " + base + " --adapter " + d / "dora" +
                                       " --output " + d / "m.gguf", &out, true), 0) << out;
  const std::string adapted = generate(base, d / "dora");
  EXPECT_EQ(adapted, generate(d / "merged"));
  EXPECT_EQ(adapted, generate(d / "m.gguf"));
  EXPECT_NE(adapted, generate(base));  // the adapter changes the output, so the comparisons mean something
}

// The 5-step trajectory through `lathe train` (as train_golden.cpp's check_trajectory).
void check_trajectory(const std::string& c, const std::string& extra) {
  auto g = golden(c);
  lathe::test::TempDir d;
  const auto& hp = g["hparams"];
  std::string args = "train --model " + case_dir(c) + "/base --data " + case_dir(c) + "/data.jsonl --output " +
                     d / "out" + " --method lora --init-adapter " + case_dir(c) + "/adapter_init" +
                     " --learning-rate " + std::to_string(hp["lr"].get<double>()) + " --weight-decay " +
                     std::to_string(hp["weight_decay"].get<double>()) +
                     " --lr-scheduler-type linear --warmup-steps 2 --max-steps 5 --max-grad-norm 1.0" +
                     " --per-device-train-batch-size 2 --no-shuffle --save-steps 0 --threads 1 " + extra;
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe(args, &out, true), 0) << out;
  std::ifstream f(d / "out/metrics.jsonl");
  std::string line;
  size_t i = 0;
  while (std::getline(f, line)) {
    auto row = nlohmann::json::parse(line);
    if (!row.contains("loss")) continue;
    ASSERT_LT(i, 5u);
    LATHE_EXPECT_CLOSE(row["loss"].get<double>(), g["trajectory"]["losses"][i].get<double>(), 1e-5, 2e-5) << c << " step " << i + 1;
    EXPECT_NEAR(row["lr"].get<double>(), g["trajectory"]["lrs"][i].get<double>(), 1e-9) << c << " step " << i + 1;
    EXPECT_NEAR(row["grad_norm"].get<double>(), g["trajectory"]["grad_norms"][i].get<double>(),
                1e-4 * g["trajectory"]["grad_norms"][i].get<double>()) << c << " step " << i + 1;
    i++;
  }
  EXPECT_EQ(i, 5u);
  auto st = lathe::SafetensorsFile::open(d / "out/adapter_model.safetensors");
  for (auto& [name, want] : g["trajectory"]["final"].items()) {
    if (!st.has(name)) {
      ADD_FAILURE() << c << ": " << name << " missing from the saved adapter";
      continue;
    }
    lathe::Tensor t = lathe::to_f32(st.tensor(name));
    expect_close(t.f32(), want, c + " final " + name, 1e-4f);
  }
}

TEST(DoraGolden, TrajectoryDoraLlama) { check_trajectory("dora_llama", ""); }
TEST(DoraGolden, TrajectoryDoraQwen2) { check_trajectory("dora_qwen2", ""); }
TEST(LoraPlusGolden, Trajectory) { check_trajectory("loraplus_llama", "--loraplus-lr-ratio 16"); }
TEST(LoraPlusGolden, TrajectoryWithDora) { check_trajectory("dora_loraplus_llama", "--loraplus-lr-ratio 4"); }

std::vector<double> losses(const std::string& path) {
  std::vector<double> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (auto r = nlohmann::json::parse(line); r.contains("loss")) out.push_back(r["loss"]);
  return out;
}

// A fresh DoRA + LoRA+ run (dropout on) killed after a checkpoint resumes to the same bits; resuming
// with another LoRA+ ratio is refused.
TEST(DoraGolden, SigkillThenResumeIsBitwiseIdentical) {
  const std::string c = "dora_llama";
  lathe::test::TempDir d;
  std::string data = d / "data.jsonl";
  {
    std::string rows = lathe::read_file(case_dir(c) + "/data.jsonl");
    std::ofstream f(data);
    for (int k = 0; k < 20; k++) f << rows;  // 40 sequences
  }
  const std::string args = " --model " + case_dir(c) + "/base --data " + data +
                           " --method lora --use-dora --lora-target-modules all-linear --lora-dropout 0.1"
                           " --loraplus-lr-ratio 4 --learning-rate 1e-2 --max-steps 400 --per-device-train-batch-size 2"
                           " --save-steps 20 --threads 1";
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe("train --output " + d / "straight" + args, &out, true), 0) << out;
  std::string killed = d / "killed";
  ASSERT_TRUE(lathe::test::run_lathe_killed_when("train --output " + killed + args, killed + "/checkpoint-40"))
      << "the run finished before it could be killed; make it longer";
  EXPECT_NE(lathe::test::run_lathe("train --output " + killed + " --model " + case_dir(c) + "/base --data " + data +
                                       " --method lora --use-dora --lora-target-modules all-linear --lora-dropout 0.1"
                                       " --max-steps 400 --per-device-train-batch-size 2 --save-steps 20 --threads 1"
                                       " --learning-rate 1e-2 --resume-from-checkpoint latest", &out, true), 0);
  EXPECT_NE(out.find("--loraplus-lr-ratio 4"), std::string::npos) << out;
  ASSERT_EQ(lathe::test::run_lathe("train --output " + killed + args + " --resume-from-checkpoint latest", &out, true), 0)
      << out;
  EXPECT_EQ(losses(killed + "/metrics.jsonl"), losses(d / "straight/metrics.jsonl"));
  EXPECT_EQ(lathe::read_file(killed + "/adapter_model.safetensors"),
            lathe::read_file(d / "straight/adapter_model.safetensors"));
}

}  // namespace

namespace {

// PEFT's init_lora_weights="gaussian": A ~ N(0, 1/r²), B = 0; recorded in adapter_config.json.
TEST(LoraInit, Gaussian) {
  auto m = lathe::Model::load(case_dir("lora_llama") + "/base");
  lathe::LoraConfig lc;
  lc.r = 4;
  lc.init_gaussian = true;
  lc.target_modules = {"all-linear"};
  auto a = lathe::LoraAdapter::create(m.config, lc, 3);
  double ss = 0, n = 0;
  for (auto* p : a->params()) {
    const bool is_a = p->name.find("lora_A") != std::string::npos;
    for (int64_t i = 0; i < p->value.numel(); i++) {
      if (is_a) ss += double(p->value.f32()[i]) * p->value.f32()[i], n++;
      else ASSERT_EQ(p->value.f32()[i], 0.0f) << p->name;
    }
  }
  EXPECT_NEAR(std::sqrt(ss / n), 1.0 / lc.r, 0.1 / lc.r);  // ~2000 samples: within 10%
  lathe::test::TempDir d;
  a->save_peft(d / "a", "base");
  EXPECT_EQ(nlohmann::json::parse(lathe::read_file(d / "a/adapter_config.json"))["init_lora_weights"], "gaussian");
}

}  // namespace
