// Preference training against the PyTorch reference (tools/golden/gen_pref_goldens.py): DPO with
// the sigmoid loss (plain and conservative), IPO, KTO and ORPO on a tiny Llama with a LoRA adapter
// whose A and B are both non-zero. Three levels:
//   * preference_loss on the reference's per-sequence log-probabilities (loss, dL/ds, metrics);
//   * preference_micro_step through the model: loss, metrics and every LoRA gradient of one
//     micro-batch, the reference policy being the base with the adapter switched off;
//   * `lathe train --method M --init-adapter adapter_init`: 5 AdamW steps (losses, lr, grad norms,
//     TRL's metrics per step) and the saved adapter, the reference being the frozen initial adapter.
// Regenerate with: /usr/bin/python3 tools/golden/gen_pref_goldens.py
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/lora.h"
#include "lathe/train/preference.h"
#include "peft/peft_golden_util.h"
#include "test_util.h"

namespace {

using lathe::test::peft_golden::expect_close;

const char* const kCases[] = {"dpo_sigmoid", "dpo_sigmoid_ls", "dpo_ipo", "kto", "orpo"};

std::string root(const std::string& rel = "") { return lathe::test::source_path("tests/data/pref_golden/" + rel); }
nlohmann::json golden(const std::string& c) { return nlohmann::json::parse(lathe::read_file(root(c) + "/golden.json")); }

lathe::PreferenceOptions options_of(const nlohmann::json& hp) {
  lathe::PreferenceOptions o;
  o.method = hp["method"];
  o.loss_type = hp.value("loss_type", "sigmoid");
  o.beta = hp["beta"];
  o.label_smoothing = hp.value("label_smoothing", 0.0);
  o.desirable_weight = hp.value("desirable_weight", 1.0);
  o.undesirable_weight = hp.value("undesirable_weight", 1.0);
  return o;
}

lathe::PreferenceBatch batch_of(const nlohmann::json& mb) {
  lathe::PreferenceBatch b;
  b.ids = mb["ids"].get<std::vector<std::vector<int32_t>>>();
  b.labels = mb["labels"].get<std::vector<std::vector<int32_t>>>();
  if (mb.contains("prompt_len")) b.prompt_len = mb["prompt_len"].get<std::vector<int>>();
  if (mb.contains("desirable"))
    for (auto& d : mb["desirable"]) b.desirable.push_back(d.get<bool>());
  return b;
}

lathe::SequenceLogps logps_of(const nlohmann::json& g, const char* key) {
  lathe::SequenceLogps s;
  if (!g["logps"].contains(key)) return s;
  s.sum = g["logps"][key]["sum"].get<std::vector<double>>();
  s.count = g["logps"][key]["count"].get<std::vector<int64_t>>();
  return s;
}


// Every metric of the reference is reported, with its value. rewards/accuracies counts strict
// wins, so where the reference's rewards tie (policy == reference) it is not compared.
void expect_metrics(const std::map<std::string, double>& got, const nlohmann::json& want, const std::string& what,
                    double rtol, double atol) {
  for (auto& [k, v] : want.items()) {
    auto it = got.find(k);
    if (it == got.end()) {
      ADD_FAILURE() << what << ": metric " << k << " missing";
      continue;
    }
    if (k == "rewards/accuracies" && std::fabs(want.value("rewards/margins", 1.0)) < 1e-6) continue;
    EXPECT_TRUE(lathe::test::all_close(it->second, v.get<double>(), rtol, atol)) << what << " " << k;
  }
}

// KTO's micro-batch metrics carry no margins (the trainer derives them from a step's means).
std::map<std::string, double> with_margins(std::map<std::string, double> m) {
  if (!m.count("rewards/margins") && m.count("rewards/chosen") && m.count("rewards/rejected"))
    m["rewards/margins"] = m["rewards/chosen"] - m["rewards/rejected"];
  return m;
}

TEST(PrefGolden, LossFromLogps) {
  for (const char* c : kCases) {
    SCOPED_TRACE(c);
    auto g = golden(c);
    const auto o = options_of(g["hparams"]);
    EXPECT_EQ(o.average_logps(), g["hparams"]["average_logps"].get<bool>());
    const auto b = batch_of(g["micro_batch"]);
    auto r = lathe::preference_loss(o, b, logps_of(g, "policy"), logps_of(g, "reference"), logps_of(g, "kl_policy"),
                                    logps_of(g, "kl_reference"));
    const auto& want = g["from_logps"];
    EXPECT_TRUE(lathe::test::all_close(r.loss, want["loss"].get<double>(), 1e-10, 1e-12)) << "loss";
    ASSERT_EQ(r.dloss_dsum.size(), want["dloss_dsum"].size());
    for (size_t i = 0; i < r.dloss_dsum.size(); i++)
      EXPECT_TRUE(lathe::test::all_close(r.dloss_dsum[i], want["dloss_dsum"][i].get<double>(), 1e-9, 1e-12))
          << "dloss_dsum[" << i << "]";
    expect_metrics(with_margins(r.metrics), want["metrics"], "from logps", 1e-10, 1e-12);
  }
}

TEST(PrefGolden, MicroStepGradients) {
  auto m = lathe::Model::load(root("base"));
  for (const char* c : kCases) {
    SCOPED_TRACE(c);
    auto g = golden(c);
    const auto o = options_of(g["hparams"]);
    auto lora = lathe::LoraAdapter::load_peft(root("adapter_init"), m.config);
    lathe::TrainGraph graph(m, &lora->adapters(), nullptr, false);
    // DPO / KTO: the reference is the base, i.e. this graph with the adapter switched off.
    lathe::ReferencePolicy ref;
    if (o.method != "orpo") ref = {&graph, nullptr};
    lathe::AdapterContext ctx;
    ctx.training = true;
    auto r = lathe::preference_micro_step(graph, &lora->adapters(), ref, batch_of(g["micro_batch"]), o, 1.0f, ctx);
    EXPECT_TRUE(lathe::test::all_close(r.loss, g["loss"].get<double>(), 2e-5, 1e-6)) << "loss";
    expect_metrics(with_margins(r.metrics), g["metrics"], "micro step", 2e-5, 2e-5);
    ASSERT_EQ(lora->params().size(), g["grads"].size());
    for (auto* p : lora->params()) {
      ASSERT_TRUE(g["grads"].contains(p->name)) << p->name;
      expect_close(p->grad.f32(), g["grads"][p->name], std::string(c) + " grad " + p->name);
    }
  }
}

// `lathe train` from the golden's adapter, in file order; its reference is that adapter, frozen.
void check_trajectory(const std::string& c) {
  auto g = golden(c);
  const auto& hp = g["hparams"];
  const auto& tr = g["trajectory"];
  lathe::test::TempDir d;
  std::string args = "train --model " + root("base") + " --data " + root(c) + "/data.jsonl --output " + d / "out" +
                     " --method " + hp["method"].get<std::string>() + " --init-adapter " + root("adapter_init") +
                     " --beta " + std::to_string(hp["beta"].get<double>());
  if (hp.contains("loss_type")) args += " --loss-type " + hp["loss_type"].get<std::string>();
  if (hp.contains("label_smoothing")) args += " --label-smoothing " + std::to_string(hp["label_smoothing"].get<double>());
  if (hp.contains("desirable_weight"))
    args += " --desirable-weight " + std::to_string(hp["desirable_weight"].get<double>()) + " --undesirable-weight " +
            std::to_string(hp["undesirable_weight"].get<double>());
  args += " --learning-rate " + std::to_string(hp["lr"].get<double>()) + " --weight-decay " +
          std::to_string(hp["weight_decay"].get<double>()) + " --lr-scheduler-type linear --warmup-steps " +
          std::to_string(hp["warmup_steps"].get<int>()) + " --max-steps " + std::to_string(hp["max_steps"].get<int>()) +
          " --max-grad-norm " + std::to_string(hp["max_grad_norm"].get<double>()) +
          " --per-device-train-batch-size " + std::to_string(hp["per_device_train_batch_size"].get<int>()) +
          " --gradient-accumulation-steps " + std::to_string(hp["gradient_accumulation_steps"].get<int>()) +
          " --no-shuffle --save-steps 0 --threads 1";
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe(args, &out, true), 0) << out;
  std::ifstream f(d / "out/metrics.jsonl");
  std::string line;
  size_t i = 0;
  while (std::getline(f, line)) {
    auto row = nlohmann::json::parse(line);
    if (!row.contains("loss")) continue;
    ASSERT_LT(i, tr["losses"].size());
    const std::string step = c + " step " + std::to_string(i + 1);
    EXPECT_TRUE(lathe::test::all_close(row["loss"].get<double>(), tr["losses"][i].get<double>(), 1e-4, 1e-6)) << step;
    EXPECT_NEAR(row["lr"].get<double>(), tr["lrs"][i].get<double>(), 1e-9) << step;
    EXPECT_TRUE(lathe::test::all_close(row["grad_norm"].get<double>(), tr["grad_norms"][i].get<double>(), 2e-4, 1e-6))
        << step << " grad_norm";
    std::map<std::string, double> got;
    for (auto& [k, v] : row.items())
      if (v.is_number()) got[k] = v.get<double>();
    expect_metrics(got, tr["metrics"][i], step, 2e-4, 1e-5);
    i++;
  }
  EXPECT_EQ(i, tr["losses"].size());
  auto st = lathe::SafetensorsFile::open(d / "out/adapter_model.safetensors");
  for (auto& [name, want] : tr["final"].items()) {
    if (!st.has(name)) {
      ADD_FAILURE() << c << ": " << name << " missing from the saved adapter";
      continue;
    }
    lathe::Tensor t = lathe::to_f32(st.tensor(name));
    expect_close(t.f32(), want, c + " final " + name, 1e-4f);
  }
}

TEST(PrefGolden, TrajectoryDpoSigmoid) { check_trajectory("dpo_sigmoid"); }
TEST(PrefGolden, TrajectoryDpoLabelSmoothingAccumulation) { check_trajectory("dpo_sigmoid_ls"); }
TEST(PrefGolden, TrajectoryIpo) { check_trajectory("dpo_ipo"); }
TEST(PrefGolden, TrajectoryKto) { check_trajectory("kto"); }
TEST(PrefGolden, TrajectoryOrpo) { check_trajectory("orpo"); }

}  // namespace
