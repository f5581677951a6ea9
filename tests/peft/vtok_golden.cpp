// IA3, prompt tuning and P-tuning against the PyTorch reference (tools/golden/gen_vtok_goldens.py):
// the loss and every gradient at the initial parameters, logits with the PEFT-layout adapter the
// reference wrote (IA3 applied in the projection hook and merged into the weights; prompt tuning
// baked into its key/value prefix), and the 5-step AdamW trajectory through `lathe train`.
// Regenerate with: /usr/bin/python3 tools/golden/gen_vtok_goldens.py
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/forward.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/adapter.h"
#include "lathe/train/adamw.h"
#include "lathe/train/checkpoint.h"
#include "lathe/train/dataset.h"
#include "peft/peft_golden_util.h"
#include "test_util.h"

namespace {

using lathe::test::peft_golden::case_dir;
using lathe::test::peft_golden::golden;
using lathe::test::peft_golden::batch_of;
using lathe::test::peft_golden::expect_close;




void set_from(lathe::Param* p, const nlohmann::json& values) {
  ASSERT_EQ(int64_t(values.size()), p->value.numel()) << p->name;
  for (size_t i = 0; i < values.size(); i++) p->value.f32()[i] = values[i].get<float>();
}

// Logits of each golden sequence through the inference path (Forward + KV cache) with `set`.
void expect_logits(const lathe::Model& m, const lathe::AdapterSet* set, const nlohmann::json& g, const std::string& what) {
  const int V = m.config.vocab_size;
  for (size_t s = 0; s < g["input_ids"].size(); s++) {
    auto ids = g["input_ids"][s].get<std::vector<int32_t>>();
    lathe::Forward fwd(m, int(ids.size()), set);
    auto cache = lathe::KVCache::create_for(m.config, int(ids.size()), set);
    const float* h = fwd.hidden(ids.data(), int(ids.size()), &cache);
    std::vector<float> logits(ids.size() * V);
    fwd.logits(h, int(ids.size()), logits.data());
    nlohmann::json flat = nlohmann::json::array();
    for (auto& row : g["logits"][s])
      for (auto& v : row) flat.push_back(v);
    expect_close(logits.data(), flat, what + " logits", 1e-4f);
  }
}

// Loss and gradients of a batch through TrainGraph with `set`; `after` turns the accumulated
// embedding-hook gradients into parameter gradients (prompt methods).
void expect_loss_grads(const lathe::Model& m, const lathe::AdapterSet& set, lathe::ParamList params,
                       const nlohmann::json& g, const std::string& c, const std::function<void()>& after = {}) {
  auto b = batch_of(g);
  lathe::TrainGraph graph(m, &set, nullptr, false);
  int64_t n = 0;
  const double nll = graph.forward_backward(b, 1.0f / float(g["hparams"]["counted_label_tokens"].get<int>()), &n,
                                            {.training = true});
  if (after) after();
  EXPECT_EQ(n, g["hparams"]["counted_label_tokens"].get<int64_t>()) << c;
  LATHE_EXPECT_CLOSE(nll / double(n), g["loss"].get<double>(), 1e-5, 1e-5) << c;
  ASSERT_EQ(params.size(), g["grads"].size()) << c;
  for (auto* p : params) {
    ASSERT_TRUE(g["grads"].contains(p->name)) << c << " " << p->name;
    expect_close(p->grad.f32(), g["grads"][p->name], c + " " + p->name);
  }
}

TEST(VtokGolden, IA3GradientsLogitsMerge) {
  for (const char* c : {"ia3_llama", "ia3_qwen2"}) {
    auto g = golden(c);
    auto m = lathe::Model::load(case_dir(c) + "/base");
    auto a = lathe::load_peft_adapter(case_dir(c) + "/adapter_init", m);
    ASSERT_TRUE(a.ia3) << c;
    for (auto* p : a.ia3->params()) {
      ASSERT_TRUE(g["init"].contains(p->name)) << p->name;
      EXPECT_EQ(p->value.shape, g["shapes"][p->name].get<std::vector<int64_t>>()) << p->name;
      expect_close(p->value.f32(), g["init"][p->name], p->name + " (adapter file)", 0);
    }
    expect_loss_grads(m, a.ia3->adapters(), a.ia3->params(), g, c);
    expect_logits(m, a.set(), g, std::string(c) + " adapter");
    // Merged: W rows / columns (and the q/v biases of Qwen2) scaled; the plain model gives the same logits.
    lathe::merge_adapter_into(a, m);
    expect_logits(m, nullptr, g, std::string(c) + " merged");
  }
}

TEST(VtokGolden, PromptTuningGradientsLogits) {
  const std::string c = "prompt_llama";
  auto g = golden(c);
  auto m = lathe::Model::load(case_dir(c) + "/base");
  auto a = lathe::load_peft_adapter(case_dir(c) + "/adapter_init", m);  // baked for inference
  ASSERT_TRUE(a.prompt);
  expect_close(a.prompt->params()[0]->value.f32(), g["init"]["prompt_embeddings"], "prompt_embeddings (file)", 0);
  expect_loss_grads(m, a.prompt->train_adapters(), a.prompt->params(), g, c, [&] { a.prompt->backward(); });
  // Inference sees the virtual tokens only as their keys/values: same logits as PEFT's full sequence.
  expect_logits(m, a.set(), g, c + " baked prefix");
}

// The P-tuning encoder of a golden case (MLP, or LSTM with its layer count).
lathe::PromptConfig ptuning_config(const nlohmann::json& g) {
  lathe::PromptConfig pc;
  pc.peft_type = "P_TUNING";
  pc.num_virtual_tokens = g["hparams"]["num_virtual_tokens"];
  pc.encoder_hidden_size = g["hparams"]["encoder_hidden_size"];
  pc.encoder_reparameterization_type = g["hparams"].value("encoder", "MLP");
  pc.encoder_num_layers = g["hparams"].value("encoder_num_layers", 2);
  return pc;
}

class PTuningGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PTuningGolden, GradientsLogits) {
  const std::string c = GetParam();
  auto g = golden(c);
  auto m = lathe::Model::load(case_dir(c) + "/base");
  auto pt = lathe::PromptAdapter::create(m, ptuning_config(g), 0);
  ASSERT_EQ(pt->params().size(), g["init"].size());
  for (auto* p : pt->params()) {
    ASSERT_TRUE(g["init"].contains(p->name)) << p->name;
    set_from(p, g["init"][p->name]);
  }
  pt->refresh();
  expect_close(pt->virtual_embeddings().data(), g["aux"]["init_prompt_embeddings"], "encoder output");
  pt->zero_prompt_grads();
  expect_loss_grads(m, pt->train_adapters(), pt->params(), g, c, [&] { pt->backward(); });
  // PEFT's saved file (the encoder output) loads as a plain table with the same logits.
  auto a = lathe::load_peft_adapter(case_dir(c) + "/adapter_init", m);
  ASSERT_TRUE(a.prompt);
  EXPECT_EQ(a.prompt->config().peft_type, "P_TUNING");
  expect_logits(m, a.set(), g, c + " saved table");
}

// The 5-step trajectory through `lathe train`; the final parameters from the saved adapter (or,
// `saved_name`/`aux_key`, a saved tensor against an aux entry).
void check_trajectory(const std::string& c, const std::string& method_args, const std::string& saved_name = "",
                      const std::string& aux_key = "") {
  auto g = golden(c);
  lathe::test::TempDir d;
  const auto& hp = g["hparams"];
  std::string args = "train --model " + case_dir(c) + "/base --data " + case_dir(c) + "/data.jsonl --output " +
                     d / "out" + " " + method_args + " --learning-rate " + std::to_string(hp["lr"].get<double>()) +
                     " --weight-decay " + std::to_string(hp["weight_decay"].get<double>()) +
                     " --lr-scheduler-type linear --warmup-steps 2 --max-steps 5 --max-grad-norm 1.0" +
                     " --per-device-train-batch-size 2 --no-shuffle --save-steps 0 --threads 1";
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
  nlohmann::json finals = g["trajectory"]["final"];
  if (!saved_name.empty()) finals = nlohmann::json{{saved_name, g["aux"][aux_key]}};
  for (auto& [name, want] : finals.items()) {
    if (!st.has(name)) {
      ADD_FAILURE() << c << ": " << name << " missing from the saved adapter";
      continue;
    }
    lathe::Tensor t = lathe::to_f32(st.tensor(name));
    expect_close(t.f32(), want, c + " final " + name, 1e-4f);
  }
}

TEST(VtokGolden, TrajectoryIA3Llama) { check_trajectory("ia3_llama", "--method ia3 --init-adapter " + case_dir("ia3_llama") + "/adapter_init"); }
TEST(VtokGolden, TrajectoryIA3Qwen2) { check_trajectory("ia3_qwen2", "--method ia3 --init-adapter " + case_dir("ia3_qwen2") + "/adapter_init"); }
TEST(VtokGolden, TrajectoryPromptTuning) {
  check_trajectory("prompt_llama", "--method prompt_tuning --init-adapter " + case_dir("prompt_llama") + "/adapter_init");
}

// P-tuning: PEFT's file holds only the encoder output, so the reference's initial encoder reaches
// `lathe train` as a step-0 checkpoint (fresh AdamW moments) that the run resumes from; the saved
// prompt_embeddings must be the reference encoder's output after the 5 steps.
TEST_P(PTuningGolden, Trajectory) {
  const std::string c = GetParam();
  auto g = golden(c);
  auto m = lathe::Model::load(case_dir(c) + "/base");
  const lathe::PromptConfig pc = ptuning_config(g);
  auto pt = lathe::PromptAdapter::create(m, pc, 0);
  for (auto* p : pt->params()) set_from(p, g["init"][p->name]);
  lathe::test::TempDir init;
  lathe::AdamW opt(pt->params(), lathe::AdamWConfig{0.9, 0.999, 1e-8, g["hparams"]["weight_decay"].get<double>()});
  lathe::TrainerState st;
  st.data_cursor = lathe::DataCursor{}.to_json();
  std::string ckpt = lathe::checkpoint_save(init.path, pt->params(), opt, st);
  check_trajectory(c, "--method p_tuning --num-virtual-tokens " + std::to_string(pc.num_virtual_tokens) +
                          " --encoder-hidden-size " + std::to_string(pc.encoder_hidden_size) +
                          " --encoder-reparameterization-type " + pc.encoder_reparameterization_type +
                          " --encoder-num-layers " + std::to_string(pc.encoder_num_layers) +
                          " --resume-from-checkpoint " + ckpt,
                   "prompt_embeddings", "final_prompt_embeddings");
}

INSTANTIATE_TEST_SUITE_P(Encoders, PTuningGolden, ::testing::Values("ptuning_llama", "ptuning_lstm_llama"));

}  // namespace
