// Training against the PyTorch reference (tools/golden/gen_train_goldens.py): for tiny Llama and
// Qwen2 models, the loss and every gradient at the initial parameters (LoRA with A and B both
// non-zero, rsLoRA, prefix tuning with and without projection, full fine-tuning), logits with a
// PEFT-layout adapter the reference wrote, and a 5-step AdamW trajectory (linear warmup schedule,
// clipping, weight decay rules) run through the real `lathe train` command.
// Regenerate with: /usr/bin/python3 tools/golden/gen_train_goldens.py
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/forward.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"
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

// Loss and gradients at the initial parameters, through the library.
TEST(TrainGolden, LoraGradients) {
  for (const char* c : {"lora_llama", "lora_qwen2"}) {
    auto g = golden(c);
    auto m = lathe::Model::load(case_dir(c) + "/base");
    auto lora = lathe::LoraAdapter::load_peft(case_dir(c) + "/adapter_init", m.config);
    EXPECT_NEAR(lora->config().scaling(), g["hparams"]["scaling"].get<float>(), 1e-6) << c;
    for (auto* p : lora->params()) expect_close(p->value.f32(), g["init"][p->name], p->name + " (adapter file)", 0);
    auto b = batch_of(g);
    lathe::TrainGraph graph(m, &lora->adapters(), nullptr, false);
    int64_t n = 0;
    double nll = graph.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
    EXPECT_EQ(n, g["hparams"]["counted_label_tokens"].get<int64_t>());
    LATHE_EXPECT_CLOSE(nll / double(n), g["loss"].get<double>(), 1e-5, 1e-5) << c;
    ASSERT_EQ(lora->params().size(), g["grads"].size());
    for (auto* p : lora->params()) expect_close(p->grad.f32(), g["grads"][p->name], std::string(c) + " " + p->name);

    // Logits with the adapter applied without merging (inference path).
    const int V = m.config.vocab_size;
    for (size_t s = 0; s < g["input_ids"].size(); s++) {
      auto ids = g["input_ids"][s].get<std::vector<int32_t>>();
      lathe::Forward fwd(m, int(ids.size()), &lora->adapters());
      auto cache = lathe::KVCache::create_for(m.config, int(ids.size()), &lora->adapters());
      const float* h = fwd.hidden(ids.data(), int(ids.size()), &cache);
      std::vector<float> logits(ids.size() * V);
      fwd.logits(h, int(ids.size()), logits.data());
      nlohmann::json flat = nlohmann::json::array();
      for (auto& row : g["logits"][s])
        for (auto& v : row) flat.push_back(v);
      expect_close(logits.data(), flat, std::string(c) + " logits", 1e-4f);
    }
  }
}

TEST(TrainGolden, PrefixGradients) {
  for (const char* c : {"prefix_llama", "prefix_llama_proj"}) {
    auto g = golden(c);
    auto m = lathe::Model::load(case_dir(c) + "/base");
    lathe::PrefixConfig pc;
    pc.num_virtual_tokens = g["hparams"]["num_virtual_tokens"];
    pc.prefix_projection = g["hparams"]["prefix_projection"];
    pc.encoder_hidden_size = g["hparams"]["encoder_hidden_size"];
    auto pre = lathe::PrefixAdapter::create(m.config, pc, 0);
    for (auto* p : pre->params()) {
      ASSERT_TRUE(g["init"].contains(p->name)) << p->name;
      set_from(p, g["init"][p->name]);
    }
    pre->refresh();
    auto b = batch_of(g);
    lathe::TrainGraph graph(m, &pre->adapters(), nullptr, false);
    pre->zero_prefix_grads();
    int64_t n = 0;
    double nll = graph.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
    pre->backward();
    LATHE_EXPECT_CLOSE(nll / double(n), g["loss"].get<double>(), 1e-5, 1e-5) << c;
    for (auto* p : pre->params()) expect_close(p->grad.f32(), g["grads"][p->name], std::string(c) + " " + p->name);
  }
}

TEST(TrainGolden, FullFineTuningGradients) {
  auto g = golden("full_llama");
  auto m = lathe::Model::load(case_dir("full_llama") + "/base");
  lathe::ModelWeights grads;
  lathe::for_each_tensor(m.config, grads, [](lathe::TensorSlot& s) { *s.tensor = lathe::Tensor::zeros(lathe::DType::F32, s.shape); });
  auto b = batch_of(g);
  lathe::TrainGraph graph(m, nullptr, &grads, false);
  int64_t n = 0;
  double nll = graph.forward_backward(b, 1.0f / float(b.num_targets()), &n, {.training = true});
  LATHE_EXPECT_CLOSE(nll / double(n), g["loss"].get<double>(), 1e-5, 1e-5);
  size_t checked = 0;
  lathe::for_each_tensor(m.config, grads, [&](lathe::TensorSlot& s) {
    ASSERT_TRUE(g["grads"].contains(s.hf_name)) << s.hf_name;
    expect_close(s.tensor->f32(), g["grads"][s.hf_name], s.hf_name);
    checked++;
  });
  EXPECT_EQ(checked, g["grads"].size());
}

// The 5-step trajectory through `lathe train` itself.
// saved_name/aux_key: instead of trajectory.final, compare the saved tensor saved_name with
// aux[aux_key] (prefix projection saves the post-MLP matrix, as PEFT does).
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
  // Final parameters, read back from the saved adapter / model.
  std::string file = d / (lathe::file_exists(d / "out/adapter_model.safetensors") ? "out/adapter_model.safetensors"
                                                                                   : "out/model.safetensors");
  auto st = lathe::SafetensorsFile::open(file);
  nlohmann::json finals = g["trajectory"]["final"];
  if (!saved_name.empty()) finals = nlohmann::json{{saved_name, g["aux"][aux_key]}};
  for (auto& [name, want] : finals.items()) {
    std::string key = name;
    if (!st.has(key)) {
      ADD_FAILURE() << c << ": " << key << " missing from " << file;
      continue;
    }
    lathe::Tensor t = lathe::to_f32(st.tensor(key));
    expect_close(t.f32(), want, c + " final " + key, 1e-4f);
  }
}

TEST(TrainGolden, TrajectoryLoraLlama) { check_trajectory("lora_llama", "--method lora --init-adapter " + case_dir("lora_llama") + "/adapter_init"); }
TEST(TrainGolden, TrajectoryLoraQwen2) { check_trajectory("lora_qwen2", "--method lora --init-adapter " + case_dir("lora_qwen2") + "/adapter_init"); }
TEST(TrainGolden, TrajectoryPrefix) { check_trajectory("prefix_llama", "--method prefix --init-adapter " + case_dir("prefix_llama") + "/adapter_init"); }
TEST(TrainGolden, TrajectoryFull) { check_trajectory("full_llama", "--method full"); }

// Prefix tuning with projection: PEFT's adapter file holds only the post-MLP prefix matrix, so the
// reference's initial MLP parameters reach `lathe train` as a step-0 checkpoint (fresh AdamW
// moments) that the run resumes from; the 5 steps, the final MLP parameters and the saved
// post-MLP matrix are then compared with the reference.
TEST(TrainGolden, TrajectoryPrefixProjection) {
  const std::string c = "prefix_llama_proj";
  auto g = golden(c);
  auto m = lathe::Model::load(case_dir(c) + "/base");
  lathe::PrefixConfig pc;
  pc.num_virtual_tokens = g["hparams"]["num_virtual_tokens"];
  pc.prefix_projection = true;
  pc.encoder_hidden_size = g["hparams"]["encoder_hidden_size"];
  auto pre = lathe::PrefixAdapter::create(m.config, pc, 0);
  for (auto* p : pre->params()) {
    ASSERT_TRUE(g["init"].contains(p->name)) << p->name;
    set_from(p, g["init"][p->name]);
  }
  lathe::test::TempDir init;
  lathe::AdamW opt(pre->params(), lathe::AdamWConfig{0.9, 0.999, 1e-8, g["hparams"]["weight_decay"].get<double>()});
  lathe::TrainerState st;
  st.data_cursor = lathe::DataCursor{}.to_json();
  std::string ckpt = lathe::checkpoint_save(init.path, pre->params(), opt, st);
  check_trajectory(c, "--method prefix --num-virtual-tokens " + std::to_string(pc.num_virtual_tokens) +
                          " --prefix-projection --encoder-hidden-size " + std::to_string(pc.encoder_hidden_size) +
                          " --resume-from-checkpoint " + ckpt,
                   "prompt_embeddings", "final_prompt_embeddings");
}

}  // namespace
