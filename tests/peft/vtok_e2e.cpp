// IA3, prompt tuning and P-tuning through the commands and the server: resume (a run killed after
// a checkpoint and resumed gives the same losses and adapter bit for bit), --init-adapter, export
// (PEFT round trip, merged IA3, the GGUF and merge refusals) and per-request serving (the
// scheduler's interleaved jobs equal generate() alone with each adapter).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/safetensors.h"
#include "lathe/model/generate.h"
#include "lathe/peft/adapter.h"
#include "lathe/serve/adapter_registry.h"
#include "lathe/serve/scheduler.h"
#include "lathe/tokenizer/tokenizer.h"
#include "peft/peft_golden_util.h"
#include "test_util.h"

namespace {

using lathe::test::peft_golden::case_dir;

const std::string kBase = case_dir("ia3_llama") + "/base";
const std::string kData = case_dir("ia3_llama") + "/data.jsonl";

std::vector<double> losses(const std::string& metrics) {
  std::ifstream f(metrics);
  std::vector<double> out;
  for (std::string line; std::getline(f, line);) {
    auto row = nlohmann::json::parse(line);
    if (row.contains("loss")) out.push_back(row["loss"].get<double>());
  }
  return out;
}

std::string train_args(const std::string& out, const std::string& method_args) {
  return "train --model " + kBase + " --data " + kData + " --output " + out + " " + method_args +
         " --learning-rate 0.05 --max-steps 4 --per-device-train-batch-size 1 --no-shuffle --threads 1";
}

// The run with a checkpoint at step 2, then the same run resumed from that checkpoint.
void check_resume(const std::string& method_args) {
  lathe::test::TempDir d;
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe(train_args(d / "a", method_args + " --save-steps 2"), &out, true), 0) << out;
  ASSERT_TRUE(std::filesystem::exists(d / "a/checkpoint-2")) << out;
  ASSERT_EQ(lathe::test::run_lathe(train_args(d / "b", method_args + " --save-steps 0 --resume-from-checkpoint " +
                                                           d / "a/checkpoint-2"), &out, true), 0) << out;
  auto la = losses(d / "a/metrics.jsonl"), lb = losses(d / "b/metrics.jsonl");
  ASSERT_EQ(la.size(), 4u);
  ASSERT_EQ(lb.size(), 2u);
  EXPECT_EQ(la[2], lb[0]) << method_args;
  EXPECT_EQ(la[3], lb[1]) << method_args;
  EXPECT_LT(la[3], la[0]) << method_args << ": training does not reduce the loss";
  EXPECT_EQ(lathe::read_file(d / "a/adapter_model.safetensors"), lathe::read_file(d / "b/adapter_model.safetensors"))
      << method_args;
}

TEST(VtokE2e, ResumeIA3) { check_resume("--method ia3"); }

// Targets without down_proj: the default feed-forward module drops out (PEFT fills it per model and
// matches it only where targeted); an explicit one that is not a target is refused.
TEST(VtokE2e, IA3FeedforwardModules) {
  lathe::test::TempDir d;
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe(train_args(d / "a", "--method ia3 --ia3-target-modules k_proj,up_proj --save-steps 0"),
                                   &out, true), 0) << out;
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "a/adapter_config.json"));
  EXPECT_EQ(cfg["target_modules"], (nlohmann::json{"k_proj", "up_proj"}));
  EXPECT_EQ(cfg["feedforward_modules"], nlohmann::json::array());
  EXPECT_NE(lathe::test::run_lathe(train_args(d / "b", "--method ia3 --ia3-target-modules k_proj --ia3-feedforward-modules "
                                                       "up_proj --save-steps 0"), &out, true), 0);
  EXPECT_NE(out.find("feedforward module 'up_proj' is not among the target modules"), std::string::npos) << out;
}
TEST(VtokE2e, ResumePromptTuning) { check_resume("--method prompt_tuning --num-virtual-tokens 3"); }
TEST(VtokE2e, ResumePTuning) { check_resume("--method p_tuning --num-virtual-tokens 2 --encoder-hidden-size 8"); }
TEST(VtokE2e, ResumePTuningLstm) {
  check_resume("--method p_tuning --num-virtual-tokens 2 --encoder-hidden-size 4 --encoder-reparameterization-type LSTM");
}

// --init-adapter continues training an adapter of each type; export writes it back in PEFT's layout.
TEST(VtokE2e, InitAdapterAndExport) {
  lathe::test::TempDir d;
  std::string out;
  for (const char* c : {"ia3_llama", "prompt_llama", "ptuning_llama"}) {
    const std::string method = std::string(c) == "ia3_llama" ? "ia3" : std::string(c) == "prompt_llama" ? "prompt_tuning" : "p_tuning";
    const std::string init = case_dir(c) + "/adapter_init", o = d / c;
    ASSERT_EQ(lathe::test::run_lathe(train_args(o, "--method " + method + " --init-adapter " + init + " --save-steps 0"),
                                     &out, true), 0) << out;
    auto cfg_in = nlohmann::json::parse(lathe::read_file(init + "/adapter_config.json"));
    auto cfg_out = nlohmann::json::parse(lathe::read_file(o + "/adapter_config.json"));
    EXPECT_EQ(cfg_out["peft_type"], cfg_in["peft_type"]) << c;
    auto a = lathe::SafetensorsFile::open(init + "/adapter_model.safetensors");
    auto b = lathe::SafetensorsFile::open(o + "/adapter_model.safetensors");
    ASSERT_EQ(a.entries().size(), b.entries().size()) << c;
    for (auto& e : a.entries()) {
      ASSERT_TRUE(b.has(e.name)) << c << " " << e.name;
      EXPECT_EQ(b.tensor(e.name).shape, a.tensor(e.name).shape) << e.name;
    }
    // PEFT export of what was trained: the same tensors.
    ASSERT_EQ(lathe::test::run_lathe("export --format peft --model " + kBase + " --adapter " + o + " --output " + o + "-peft",
                                     &out, true), 0) << out;
    EXPECT_EQ(lathe::read_file(o + "/adapter_model.safetensors"), lathe::read_file(o + "-peft/adapter_model.safetensors")) << c;
  }
  // Merged export of IA3 works; llama.cpp GGUF adapters and merged prompt tuning are refused with a way out.
  ASSERT_EQ(lathe::test::run_lathe("export --format merged --model " + kBase + " --adapter " + d / "ia3_llama" +
                                       " --output " + d / "merged", &out, true), 0) << out;
  EXPECT_TRUE(lathe::file_exists(d / "merged/model.safetensors"));
  EXPECT_NE(lathe::test::run_lathe("export --format gguf-lora --model " + kBase + " --adapter " + d / "ia3_llama" +
                                       " --output " + d / "x.gguf", &out, true), 0);
  EXPECT_NE(out.find("--format gguf --adapter"), std::string::npos) << out;
  EXPECT_NE(lathe::test::run_lathe("export --format merged --model " + kBase + " --adapter " + d / "prompt_llama" +
                                       " --output " + d / "m2", &out, true), 0);
  EXPECT_NE(out.find("cannot be merged"), std::string::npos) << out;
}

// TEXT init: the virtual tokens start as the embeddings of the init text's tokens (special tokens
// included, as PEFT's tokenizer(text)), repeated to N. One step at learning rate 0 (warmup) keeps them.
TEST(VtokE2e, PromptTuningTextInit) {
  lathe::test::TempDir d;
  const std::string tok_dir = lathe::test::source_path("tests/data/tokenizer/tiny_spm");
  auto tok = lathe::Tokenizer::load(tok_dir);
  lathe::ModelConfig c;
  c.vocab_size = tok->vocab_size();
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  lathe::Model m = lathe::Model::init_random(c, 3, 0.3f);
  m.save_hf_dir(d / "base");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(tok_dir + "/" + f, d / ("base/" + std::string(f)));
  std::ofstream(d / "data.jsonl") << R"({"input_ids":[5,6,7,8],"labels":[5,6,7,8]})" << "\n";
  const std::string text = "hello world";
  const int kN = 23;
  std::string out;
  ASSERT_EQ(lathe::test::run_lathe("train --model " + d / "base" + " --data " + d / "data.jsonl" + " --output " +
                                       d / "out" + " --method prompt_tuning --num-virtual-tokens " + std::to_string(kN) + " " +
                                       "--prompt-tuning-init-text '" + text + "' --max-steps 1 --warmup-steps 1 " +
                                       "--save-steps 0 --threads 1", &out, true), 0) << out;
  auto cfg = nlohmann::json::parse(lathe::read_file(d / "out/adapter_config.json"));
  EXPECT_EQ(cfg["prompt_tuning_init"], "TEXT");
  EXPECT_EQ(cfg["prompt_tuning_init_text"], text);
  std::vector<int32_t> ids = tok->encode(text, true);
  ASSERT_FALSE(ids.empty());
  ASSERT_LT(ids.size(), size_t(kN));  // so the ids repeat, and are cut
  auto st = lathe::SafetensorsFile::open(d / "out/adapter_model.safetensors");
  lathe::Tensor v = lathe::to_f32(st.tensor("prompt_embeddings"));
  ASSERT_EQ(v.shape, (std::vector<int64_t>{kN, 16}));
  lathe::Model back = lathe::Model::load(d / "base");
  lathe::Tensor table = lathe::to_f32(back.weights.embed);
  for (int p = 0; p < kN; p++)
    for (int i = 0; i < 16; i++)
      ASSERT_EQ(v.f32()[p * 16 + i], table.f32()[size_t(ids[size_t(p) % ids.size()]) * 16 + i]) << "row " << p;
}

// Per-request adapters in the server: IA3 (scales inside the batched projections, row group by row
// group) and a baked prompt next to requests without an adapter give what generate() gives alone.
TEST(VtokE2e, ServedPerRequest) {
  using namespace lathe;
  using namespace lathe::serve;
  Model m = Model::load(kBase);
  AdapterRegistry reg(m);
  auto ia3 = reg.load("ia3", case_dir("ia3_llama") + "/adapter_init");
  auto prompt = reg.load("prompt", case_dir("prompt_llama") + "/adapter_init");
  auto ptuning = reg.load("ptuning", case_dir("ptuning_llama") + "/adapter_init");
  std::vector<std::shared_ptr<const ServedAdapter>> adapters = {nullptr, ia3, prompt, ptuning};
  for (bool batch : {true, false}) {
    SCOPED_TRACE(batch ? "batched decode" : "one decode step per request");
    SchedulerOptions so{3, 8, 2};
    so.batch_decode = batch;
    Scheduler sched(m, so);
    std::vector<std::shared_ptr<GenJob>> jobs;
    for (int i = 0; i < 6; i++) {
      auto j = std::make_shared<GenJob>();
      for (int t = 0; t < 3 + i; t++) j->prompt.push_back(int32_t((7 * i + 3 * t + 1) % 64));
      j->max_tokens = 5 + i;
      j->sampling.temperature = 0.0f;
      j->adapter = adapters[size_t(i % 4)];
      ASSERT_TRUE(sched.submit(j));
      jobs.push_back(j);
    }
    for (auto& j : jobs) {
      std::unique_lock<std::mutex> lock(j->mu);
      ASSERT_TRUE(j->cv.wait_for(lock, std::chrono::seconds(20), [&] { return j->done; }));
    }
    for (size_t i = 0; i < jobs.size(); i++) {
      GenerateParams gp;
      gp.sampling = jobs[i]->sampling;
      gp.max_new_tokens = jobs[i]->max_tokens;
      GenerateResult ref = generate(m, jobs[i]->prompt, gp, {}, jobs[i]->adapter ? jobs[i]->adapter->loaded.set() : nullptr);
      EXPECT_EQ(jobs[i]->ids, ref.ids) << "job " << i;
    }
  }
  // Each adapter changes the greedy output of at least one prompt (it is applied at all).
  GenerateParams gp;
  gp.max_new_tokens = 6;
  std::vector<int32_t> p = {3, 9, 27, 17};
  auto plain = generate(m, p, gp, {}, nullptr).ids;
  for (auto& a : {ia3, prompt, ptuning}) EXPECT_NE(generate(m, p, gp, {}, a->loaded.set()).ids, plain) << a->name;
}

}  // namespace

namespace {

// `lathe eval` variants: IA3, prompt tuning and P-tuning adapters trained on a few texts of a real
// model (stories260K) each lower the validation perplexity of those texts below the base's, in one
// report next to the base variant (the adapters apply during eval's forward and generation); and
// IA3 merged into a GGUF model keeps the adapter's perplexity.
TEST(VtokE2e, EvalVariants) {
  const char* kModel = "models/stories260K-hf";
  LATHE_REQUIRE_FIXTURE(kModel);
  const std::string model = lathe::test::fixture_path(kModel);
  lathe::test::TempDir d;
  {
    std::ofstream f(d / "train.jsonl");
    for (const char* t : {"Zog is a green planet. The king of Zog is Bob.", "Lily has a pet frog. Tom eats cake."})
      f << nlohmann::json{{"text", t}}.dump() << "\n";
    std::ofstream s(d / "suite.yaml");
    s << "name: zog\ngeneration:\n  max_new_tokens: 4\ncases:\n  - id: king\n    prompt: \"The king of Zog is\"\n"
         "    expected: \"Bob\"\n    assert: [{type: icontains}]\n";
  }
  std::string out, adapters;
  for (const char* m : {"ia3", "prompt_tuning", "p_tuning"}) {
    ASSERT_EQ(lathe::test::run_lathe("train --model " + model + " --data " + d / "train.jsonl" + " --output " + d / m +
                                         " --method " + m + " --num-virtual-tokens 4 --learning-rate 3e-2 --max-steps 20"
                                         " --per-device-train-batch-size 2 --save-steps 0 --lr-scheduler-type constant"
                                         " --threads 1", &out, true), 0) << out;
    adapters += std::string(" --adapter ") + m + "=" + d / m;
  }
  ASSERT_EQ(lathe::test::run_lathe("eval --model " + model + adapters + " --tests " + d / "suite.yaml" + " --eval-data " +
                                       d / "train.jsonl" + " --output " + d / "report --threads 1", &out, true), 0) << out;
  auto r = nlohmann::json::parse(lathe::read_file(d / "report/report.json"));
  ASSERT_EQ(r["variants"].size(), 4u) << out;
  const double base = r["variants"][0]["validation"]["ppl"].get<double>();
  for (size_t i = 1; i < 4; i++)
    EXPECT_LT(r["variants"][i]["validation"]["ppl"].get<double>(), 0.9 * base) << r["variants"][i]["name"];

  // GGUF for llama.cpp: IA3 merged into an f32 GGUF model gives the adapter's perplexity.
  std::ofstream(d / "t.txt") << "Zog is a green planet. The king of Zog is Bob.\n";
  ASSERT_EQ(lathe::test::run_lathe("export --format gguf --gguf-type f32 --model " + model + " --adapter " + d / "ia3" +
                                       " --output " + d / "m.gguf", &out, true), 0) << out;
  std::string merged, applied;
  ASSERT_EQ(lathe::test::run_lathe("perplexity --json --threads 1 --model " + d / "m.gguf" + " --text-file " + d / "t.txt",
                                   &merged), 0) << merged;
  ASSERT_EQ(lathe::test::run_lathe("perplexity --json --threads 1 --model " + model + " --adapter " + d / "ia3" +
                                       " --text-file " + d / "t.txt", &applied), 0) << applied;
  EXPECT_NEAR(nlohmann::json::parse(merged)["nll"].get<double>(), nlohmann::json::parse(applied)["nll"].get<double>(), 1e-5);
}

}  // namespace
