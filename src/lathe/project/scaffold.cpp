#include "lathe/project/scaffold.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"

namespace fs = std::filesystem;

namespace lathe::project {

std::vector<std::string> example_roots() {
  std::vector<std::string> roots;
  if (const char* env = std::getenv("LATHE_EXAMPLES")) roots.emplace_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    roots.push_back((exe.parent_path() / "../share/lathe/examples").lexically_normal().string());
    roots.push_back((exe.parent_path() / "../examples").lexically_normal().string());
  }
#ifdef LATHE_EXAMPLES_DIR
  roots.emplace_back(LATHE_EXAMPLES_DIR);
#endif
  return roots;
}

std::vector<std::string> example_names() {
  std::vector<std::string> names;
  for (const std::string& r : example_roots()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(r, ec))
      if (fs::exists(e.path() / "project.yaml")) names.push_back(e.path().filename().string());
    if (!names.empty()) break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string init_project(const std::string& dir, const std::string& example) {
  const fs::path target(dir);
  if (fs::exists(target / "project.yaml"))
    fail("project", "{}: already holds a project.yaml (edit it, or choose another directory)", dir);
  fs::create_directories(target);
  if (example.empty()) {
    for (const char* sub : {"data", "tests"}) fs::create_directories(target / sub);
    write_file_atomic((target / "project.yaml").string(), project_template());
    write_file_atomic((target / "tests/cases.yaml").string(), cases_template());
    return (target / "project.yaml").string();
  }
  for (const std::string& r : example_roots()) {
    const fs::path src = fs::path(r) / example;
    if (!fs::exists(src / "project.yaml")) continue;
    for (const auto& e : fs::recursive_directory_iterator(src)) {
      const fs::path rel = fs::relative(e.path(), src);
      const std::string first = rel.begin()->string();
      if (first == "out" || first == ".lathe") continue;  // results of a run in the source tree
      if (e.is_directory()) fs::create_directories(target / rel);
      else if (e.is_regular_file()) fs::copy_file(e.path(), target / rel, fs::copy_options::overwrite_existing);
    }
    return (target / "project.yaml").string();
  }
  std::string known;
  for (const std::string& n : example_names()) known += (known.empty() ? "" : ", ") + n;
  fail("project", "no bundled example named '{}' (available: {})", example, known.empty() ? "none found" : known);
}

const char* cases_template() {
  return R"(# Test cases for `lathe eval` (every key: docs/eval.md). Ask questions that are NOT in data/ (new
# paraphrases), so the report measures what the model learned, not what it memorised; lathe data
# prepare removes training records that match these prompts (contamination check).
name: my-domain-expert
generation:
  max_new_tokens: 64
  temperature: 0                   # greedy: the same answer every run
baseline:                          # the "prompt engineering" variant the tuned model has to beat
  system: "You are the company's policy assistant. Answer in one short sentence."
cases:
  - id: annual-leave-ko
    prompt: "연차 휴가는 며칠인가요?"
    expected: "연차 휴가는 연 15일입니다."
    assert:
      - type: contains
        value: "15일"
    tags: [ko, leave]
  - id: annual-leave-en
    prompt: "How many days of annual leave do I get?"
    expected: "Annual leave is 15 days a year."
    assert:
      - type: icontains
        value: "15 days"
      - type: rouge-l
        threshold: 0.5
    tags: [en, leave]
)";
}

const char* project_template() {
  return R"(# lathe project file. `lathe run` executes the stages below in order (base → prepare → train →
# align → eval → export), skipping any stage whose inputs have not changed. Every key: docs/project.md.

project:
  name: my-domain-expert
  output_dir: out                 # where prepared data, adapters, reports and exports go

# What the model will take over, for whom, and when it is good enough.
goal:
  task: "Answer employees' questions about our internal policies"
  users: "employees of the company"
  domain: "in-house policy QA, Korean and English"
  gates:
    min_pass_rate: 0.7            # eval fails (exit 3) when the tuned model passes fewer test cases
    # max_forgetting: 0.25        # ... or when general-text perplexity rises more than 25% over the
    #                             # base (needs eval.holdout)

# The model to tune: a Hugging Face directory (config.json + safetensors + tokenizer) or a .gguf file.
base_model:
  path: models/SmolLM2-135M-Instruct

# Data preparation (`lathe data prepare`): collect → map → clean → personal data → dedup → format → split.
# Keys: docs/data.md.
data:
  inputs:
    - data/                        # JSONL, JSON, CSV/TSV, Markdown, text, HTML, PDF
  pii:
    policy: redact                 # redact | drop | report
  dedup:
    near: true
  format:
    max_seq_length: 1024
  split:
    ratios: [0.95, 0.05, 0.0]      # train, validation, test
    seed: 42

# Training (`lathe train` options; the same words as its flags). model, data and output are set by lathe run.
train:
  method: lora                     # lora | qlora | prefix | full
  lora_r: 16
  lora_alpha: 32
  lora_target_modules: all-linear
  learning_rate: 2.0e-4
  num_train_epochs: 3
  per_device_train_batch_size: 4
  gradient_accumulation_steps: 1
  lr_scheduler_type: cosine
  warmup_ratio: 0.03
  save_steps: 100
  save_total_limit: 2

# A second round from reviewers' feedback (optional): a preference method continues the adapter above
# and the evaluation adds the variant tuned+dpo, with the cases it fixed and broke. Keys: docs/project.md.
# align:
#   method: dpo                    # dpo | kto | orpo
#   data: [feedback/corrections.jsonl]   # {"prompt","chosen","rejected"} per line (kto: also {"prompt","completion","label"})
#   feedback: out/serve            # a lathe serve --data-dir: its ratings and corrections, exported at run time
#   beta: 0.1
#   learning_rate: 5.0e-5
#   num_train_epochs: 1

# Evaluation (`lathe eval` suite): test cases with assertions, base vs prompting vs tuned. Keys: docs/eval.md.
eval:
  suite: tests/cases.yaml          # written by lathe init as a starting point; use questions not in data/
  # holdout: general_text.md       # general text: its perplexity rise over the base is "forgetting"

# What to hand over: peft (adapter dir), merged (HF model dir), gguf (llama.cpp), gguf-lora.
export:
  formats: [peft, merged]

# `lathe serve` settings for the tuned model (docs/serve.md); lathe run does not start a server.
serve:
  port: 8080
  max_concurrency: 4
)";
}

}  // namespace lathe::project
