// project.yaml is checked in full when it is loaded: invalid YAML that yaml-cpp accepts (an unclosed
// quote swallowing the following keys), unknown keys in every section (with the likely intended key),
// wrong types and out-of-range values — each reported with project.yaml:LINE:COL and the key path.
// The valid files in the repository (the example, the init template) must still load.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/project/project_config.h"
#include "lathe/project/project_schema.h"
#include "lathe/project/scaffold.h"
#include "project/project_test_util.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using lathe::project::parse_project;

// A minimal valid project; `extra` is appended (whole sections), `goal` replaces the goal section.
std::string project(const std::string& goal, const std::string& extra = "") {
  return goal + "base_model:\n  path: m\ntrain:\n  method: lora\n" + extra;
}

std::string error_of(const std::string& text) {
  lathe::test::TempDir dir;
  try {
    parse_project(text, "project.yaml", dir.path);
  } catch (const lathe::Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(text, ...)                                                   \
  do {                                                                            \
    const std::string err_ = error_of(text);                                      \
    ASSERT_FALSE(err_.empty()) << "accepted:\n" << (text);                        \
    for (const char* want : {__VA_ARGS__})                                        \
      EXPECT_NE(err_.find(want), std::string::npos) << "want '" << want << "' in: " << err_; \
  } while (0)

TEST(ProjectYamlStrict, UnclosedQuoteSwallowingTheGateIsRejected) {
  // yaml-cpp 0.7 reads each of these as valid; a YAML 1.2 parser rejects them.
  const std::string gates = "  gates:\n    min_pass_rate: 0.9\n";
  EXPECT_ERROR(project("goal:\n  task: \"stories\n" + gates), "project.yaml:2:9:", "unterminated quoted string");
  EXPECT_ERROR(project("goal:\n  task: 'stories\n" + gates), "project.yaml:2:9:", "unterminated quoted string");
  // Closed further down: one long string to yaml-cpp.
  EXPECT_ERROR(project("goal:\n  task: \"stories\n  gates:\n    min_pass_rate: 0.9\"\n"), "project.yaml:2:9:",
               "unterminated quoted string");
  // Continuation at the parent's own indentation, deeper in the file.
  EXPECT_ERROR(project("goal:\n  task: x\n", "export:\n  formats: [peft]\n  name: \"acme\nserve:\n  port: 1\n"),
               "project.yaml:9:9:", "unterminated");
  // A quoted list item whose continuation falls back to the list's column.
  EXPECT_ERROR(project("goal:\n  task: x\n", "export:\n  formats:\n  - \"peft\n  - merged\"\n"), "project.yaml:9:5:",
               "unterminated");
  // Open at the end of the file.
  EXPECT_ERROR(project("goal:\n  task: x\n", "serve:\n  host: \"localhost\n"), "project.yaml:", "unterminated");
  EXPECT_ERROR(project("goal:\n  task: x\n", "serve:\n  host: 'localhost\n"), "project.yaml:");
}

TEST(ProjectYamlStrict, ValidQuotedScalarsStillLoad) {
  lathe::test::TempDir dir;
  // Continuation lines indented deeper than the key: valid, folded into one line.
  auto c = parse_project(project("goal:\n  task: \"answer questions\n    about policies\"\n  users: 'it''s us'\n"),
                         "project.yaml", dir.path);
  EXPECT_EQ(c.root["goal"]["task"].Scalar(), "answer questions about policies");
  EXPECT_EQ(c.json["goal"]["task"], "answer questions about policies");
  EXPECT_EQ(c.root["goal"]["users"].Scalar(), "it's us");
  c = parse_project(project("goal:\n  task: \"a \\\" quote\"\n  domain: \"#not a comment\"\n"), "project.yaml", dir.path);
  EXPECT_EQ(c.root["goal"]["task"].Scalar(), "a \" quote");
  c = parse_project(project("goal: {task: \"flow\n  map\"}\n"), "project.yaml", dir.path);
  EXPECT_EQ(c.root["goal"]["task"].Scalar(), "flow map");
}

TEST(ProjectYamlStrict, AliasBombsAndDeepNestingAreRefused) {
  // Ten levels of ten aliases: 10^10 values from a dozen lines.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 10; i++) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; k++) bomb += std::string(k ? ", " : "") + "*a" + std::to_string(i - 1);
    bomb += "]\n";
  }
  EXPECT_ERROR("goal:\n  task: x\n  domain:\n" + bomb, "more than 100000 values");
  std::string deep = "goal:\n  task: ";
  for (int i = 0; i < 100; i++) deep += "[";
  for (int i = 0; i < 100; i++) deep += "]";
  EXPECT_ERROR(project(deep + "\n"), "nested deeper than 64 levels");
  // JSON (the run registry, fingerprints) holds only valid UTF-8.
  EXPECT_ERROR(project("goal:\n  task: a\xed\xa0\x80" "b\n"), "project.yaml:2:9: not valid UTF-8");
}

TEST(ProjectYamlStrict, CliStopsBeforeAnyStage) {
  lathe::test::TempDir dir;
  lathe::write_file_atomic(dir / "project.yaml",
                           project("goal:\n  task: \"stories\n  gates:\n    min_pass_rate: 0.9\n"));
  std::string out;
  const int rc = lathe::test::run_lathe("run --config " + dir.path, &out, true);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 3) << out;
  EXPECT_NE(out.find("project.yaml:2:9: unterminated quoted string"), std::string::npos) << out;
  EXPECT_EQ(lathe::test::stages_with(out, "running"), "") << out;
  EXPECT_FALSE(fs::exists(dir / ".lathe")) << "nothing may run or be recorded";
}

TEST(ProjectSchema, UnknownKeyInEverySectionSuggestsTheKey) {
  const std::string goal = "goal:\n  task: x\n";
  EXPECT_ERROR(project("goal:\n  task: x\n  domian: y\n"), "project.yaml:3:3: unknown key 'domian' in 'goal' (did you mean 'domain'?)");
  EXPECT_ERROR("project:\n  outptu_dir: o\n" + project(goal), "project.yaml:2:3: unknown key 'outptu_dir' in 'project' (did you mean 'output_dir'?)");
  EXPECT_ERROR(project(goal, "serve:\n  prot: 8080\n"), "project.yaml:8:3: unknown key 'prot' in 'serve' (did you mean 'port'?)");
  EXPECT_ERROR(project(goal, "export:\n  format: [peft]\n"), "unknown key 'format' in 'export' (did you mean 'formats'?)");
  EXPECT_ERROR(project("goal:\n  gates:\n    min_pass_rat: 0.5\n"), "project.yaml:3:5: unknown key 'min_pass_rat' in 'goal.gates' (did you mean 'min_pass_rate'?)");
  EXPECT_ERROR(project(goal, "train2:\n  x: 1\n"), "project.yaml:7:1: unknown section 'train2'", "did you mean 'train'?");
  EXPECT_ERROR(goal + "base_model:\n  pth: m\ntrain: {}\n", "project.yaml:4:3: unknown key 'pth' in 'base_model' (did you mean 'path'?)");
  EXPECT_ERROR(project(goal, "data:\n  inputs: [d]\n  dedpu:\n    near: true\n"), "project.yaml:9:3: unknown key 'dedpu' in 'data' (did you mean 'dedup'?)");
  EXPECT_ERROR(project(goal, "data:\n  format:\n    max_seq_lenght: 5\n"), "project.yaml:9:5: unknown key 'max_seq_lenght' in 'data.format' (did you mean 'max_seq_length'?)");
  EXPECT_ERROR(goal + "base_model:\n  path: m\ntrain:\n  lerning_rate: 0.1\n", "project.yaml:6:3: unknown key 'lerning_rate' in 'train' (did you mean 'learning_rate'?)");
  EXPECT_ERROR(project(goal, "eval:\n  holdout: h.md\n  genration:\n    max_new_tokens: 4\n  cases: []\n"), "unknown key 'genration'", "eval");
  const std::string build = "base_model:\n  build:\n";
  EXPECT_ERROR(goal + build + "    modle: {}\ntrain: {}\n", "project.yaml:5:5: unknown key 'modle' in 'base_model.build' (did you mean 'model'?)");
  EXPECT_ERROR(goal + build + "    model:\n      hiden_size: 8\ntrain: {}\n", "project.yaml:6:7: unknown key 'hiden_size' in 'base_model.build.model' (did you mean 'hidden_size'?)");
  EXPECT_ERROR(goal + build + "    tokenizer:\n      vocab_sise: 8\ntrain: {}\n", "project.yaml:6:7: unknown key 'vocab_sise' in 'base_model.build.tokenizer' (did you mean 'vocab_size'?)");
  EXPECT_ERROR(goal + build + "    train:\n      warmup_step: 8\ntrain: {}\n", "project.yaml:6:7: unknown key 'warmup_step' in 'base_model.build.train' (did you mean 'warmup_steps'?)");
  EXPECT_ERROR(goal + build + "    data:\n      clean:\n        min_char: 8\ntrain: {}\n", "project.yaml:7:9: unknown key 'min_char' in 'base_model.build.data.clean' (did you mean 'min_chars'?)");
  // Nothing close: the list of keys instead.
  EXPECT_ERROR(project("goal:\n  zzzzzzzz: y\n"), "unknown key 'zzzzzzzz' in 'goal' (expected one of: task, users, domain, gates)");
}

TEST(ProjectSchema, TypesAndRangesNameTheKey) {
  const std::string goal = "goal:\n  task: x\n";
  EXPECT_ERROR(project(goal, "export:\n  formats: gguf\n"), "project.yaml:8:12: export.formats: must be a list of strings");
  EXPECT_ERROR(project(goal, "export:\n  formats: [peft, exe]\n"), "export.formats: 'exe' is not one of: peft, merged, gguf, gguf-lora");
  EXPECT_ERROR("project:\n  output_dir: [1, 2]\n" + project(goal), "project.yaml:2:15: project.output_dir: must be a string (got a list)");
  EXPECT_ERROR(project("goal:\n  gates:\n    min_pass_rate: 2.0\n"), "project.yaml:3:20: goal.gates.min_pass_rate: must be in [0, 1] (got '2.0')");
  EXPECT_ERROR(project("goal:\n  gates:\n    min_pass_rate: high\n"), "goal.gates.min_pass_rate: must be a number (got 'high')");
  EXPECT_ERROR(project("goal:\n  gates:\n    max_forgetting: -0.1\n"), "goal.gates.max_forgetting: must be >= 0");
  EXPECT_ERROR(goal + "base_model:\n  path: m\ntrain:\n  learning_rate: -1\n", "project.yaml:6:18: train.learning_rate: must be > 0");
  EXPECT_ERROR(goal + "base_model:\n  path: m\ntrain:\n  lora_r: 1.5\n", "project.yaml:6:11: train.lora_r: must be an integer (got '1.5')");
  EXPECT_ERROR(goal + "base_model:\n  path: m\ntrain:\n  method: dora\n", "project.yaml:6:11: train.method: unknown method 'dora'");
  EXPECT_ERROR(goal + "base_model:\n  path: m\ntrain:\n  shuffle: maybe\n", "train.shuffle: must be true or false");
  EXPECT_ERROR(goal + "base_model:\n  path: m\ntrain:\n  model: x\n", "project.yaml:6:3: train.model: set by lathe run");
  EXPECT_ERROR(project(goal, "data:\n  inputs: [d]\n") + "  x: 1\n", "unknown key 'x'");
  EXPECT_ERROR(goal + "base_model:\n  path: m\ndata:\n  inputs: [d]\ntrain:\n  data: x.jsonl\n", "project.yaml:8:3: train.data: set by lathe run");
  EXPECT_ERROR(project(goal, "data:\n  format:\n    max_seq_length: abc\n"), "project.yaml:9:21: data.format.max_seq_length");
  EXPECT_ERROR(project(goal, "data:\n  pii:\n    policy: nope\n"), "project.yaml:9:13: data.pii.policy");
  EXPECT_ERROR(project(goal, "data:\n  output: o\n"), "project.yaml:8:11: data.output: set by lathe run");
  EXPECT_ERROR(project(goal, "serve:\n  port: 70000\n"), "project.yaml:8:9: serve.port: must be in [0, 65535] (got '70000')");
  EXPECT_ERROR(project(goal, "serve:\n  log_prompts: redcat\n"), "serve.log_prompts: 'redcat' is not one of: on, off, redact (did you mean 'redact'?)");
  EXPECT_ERROR(project(goal, "eval:\n  suite: missing.yaml\n"), "project.yaml:8:10: eval.suite: no such file");
  EXPECT_ERROR(project(goal, "eval:\n  generation:\n    max_new_tokens: 0\n  cases: []\n"), "eval", "max_new_tokens must be >= 1");
  EXPECT_ERROR("goal: [1]\nbase_model:\n  path: m\ntrain: {}\n", "project.yaml:1:7: goal: must be a mapping");
  EXPECT_ERROR(goal + "base_model:\n  path: m\n  build: {}\ntrain: {}\n", "exactly one of 'path'");
  EXPECT_ERROR(goal + "base_model:\n  path: m\n", "section 'train' is required");
}

// align: a preference round. Its keys are lathe train's (same table, same validation) plus data and
// feedback; errors name the line and the key. The project's data file p.jsonl exists here.
std::string align_error(const std::string& align) {
  lathe::test::TempDir dir;
  lathe::write_file_atomic(dir / "p.jsonl", "{\"prompt\":\"q\",\"chosen\":\"a\",\"rejected\":\"b\"}\n");
  try {
    parse_project(project("goal:\n  task: x\n", align), "project.yaml", dir.path);
  } catch (const lathe::Error& e) {
    return e.what();
  }
  return "";
}

TEST(ProjectSchema, AlignSectionErrorsNameTheKey) {
  auto expect = [](const std::string& align, std::vector<std::string> want) {
    const std::string err = align_error(align);
    ASSERT_FALSE(err.empty()) << "accepted:\n" << align;
    for (const auto& w : want) EXPECT_NE(err.find(w), std::string::npos) << "want '" << w << "' in: " << err;
  };
  // Lines: goal 1-2, base_model 3-4, train 5-6, align from 7.
  EXPECT_EQ(align_error("align:\n  method: dpo\n  data: p.jsonl\n  beta: 0.2\n  loss_type: ipo\n  max_steps: 4\n"), "");
  EXPECT_EQ(align_error("align:\n  method: kto\n  data: [p.jsonl, p.jsonl]\n  desirable_weight: 1.5\n"), "");
  expect("align:\n  data: p.jsonl\n", {"project.yaml:8:3: align.method: required (dpo, kto or orpo)"});
  expect("align:\n  method: lora\n  data: p.jsonl\n", {"project.yaml:8:11: align.method: must be dpo, kto or orpo (got 'lora')"});
  expect("align:\n  method: dpo\n  data: p.jsonl\n  bta: 0.1\n", {"project.yaml:10:3: unknown key 'bta' in 'align' (did you mean 'beta'?)"});
  expect("align:\n  method: dpo\n  data: p.jsonl\n  beta: -1\n", {"project.yaml:10:9: align.beta: must be > 0"});
  expect("align:\n  method: dpo\n  data: p.jsonl\n  max_steps: many\n", {"project.yaml:10:14: align.max_steps: must be an integer"});
  expect("align:\n  method: kto\n  data: p.jsonl\n  loss_type: ipo\n", {"project.yaml:10:14: align.loss_type:", "DPO loss"});
  expect("align:\n  method: dpo\n  data: p.jsonl\n  label_smoothing: 0.9\n", {"project.yaml:10:20: align.label_smoothing"});
  expect("align:\n  method: dpo\n  data: missing.jsonl\n", {"project.yaml:9:9: align.data: no such file"});
  expect("align:\n  method: dpo\n  data: [p.jsonl, gone.jsonl]\n", {"project.yaml:9:19: align.data: no such file"});
  expect("align:\n  method: dpo\n  data: {a: 1}\n", {"project.yaml:9:9: align.data: must be a file or a list of files"});
  expect("align:\n  method: dpo\n", {"project.yaml:8:3: align: needs data"});
  expect("align:\n  method: dpo\n  data: p.jsonl\n  init_adapter: x\n", {"project.yaml:10:3: align.init_adapter: set by lathe run"});
  expect("align:\n  method: dpo\n  data: p.jsonl\n  model: x\n", {"project.yaml:10:3: align.model: set by lathe run"});
  expect("align: [dpo]\n", {"project.yaml:7:8: align: expected a mapping"});
  // What the round continues: a prefix adapter cannot be.
  const std::string err = error_of("goal:\n  task: x\nbase_model:\n  path: m\ntrain:\n  method: prefix\n"
                                   "align:\n  method: dpo\n  feedback: serve-data\n");
  EXPECT_NE(err.find("project.yaml:8:3: align: train.method is prefix"), std::string::npos) << err;
}

// launcher: the training stages under mpirun (launcher.h). Lines: goal 1-2, base_model 3-4, train
// 5-6, launcher from 7; hosts.txt exists in the project directory.
TEST(ProjectSchema, LauncherSectionErrorsNameTheKey) {
  auto err = [](const std::string& launcher) {
    lathe::test::TempDir dir;
    lathe::write_file_atomic(dir / "hosts.txt", "node1 slots=16\n");
    try {
      parse_project(project("goal:\n  task: x\n", launcher), "project.yaml", dir.path);
    } catch (const lathe::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto expect = [&](const std::string& launcher, const std::string& want) {
    const std::string e = err(launcher);
    EXPECT_NE(e.find(want), std::string::npos) << "want '" << want << "' in: " << (e.empty() ? "(accepted)" : e);
  };
  EXPECT_EQ(err("launcher:\n  mpirun:\n    np: 2\n"), "");
  EXPECT_EQ(err("launcher:\n  mpirun: {np: 4, hostfile: hosts.txt, args: [--mca, btl, 'self,tcp'], threads_per_rank: 8, "
                "executable: /usr/bin/mpirun}\n  stages: [base, prepare, train, align]\n"), "");
  expect("launcher:\n  mpirun:\n    nps: 2\n", "project.yaml:9:5: unknown key 'nps' in 'launcher.mpirun' (did you mean 'np'?)");
  expect("launcher:\n  mpirun:\n    np: 0\n", "project.yaml:9:9: launcher.mpirun.np: must be >= 1 (got '0')");
  expect("launcher:\n  mpirun:\n    np: two\n", "project.yaml:9:9: launcher.mpirun.np: must be an integer");
  expect("launcher:\n  mpirun:\n    hostfile: hosts.txt\n", "project.yaml:9:5: launcher.mpirun.np: required");
  expect("launcher:\n  mpirun:\n    np: 2\n    hostfile: nodes.txt\n", "project.yaml:10:15: launcher.mpirun.hostfile: no such file");
  expect("launcher:\n  mpirun:\n    np: 2\n    args: --bind-to none\n", "project.yaml:10:11: launcher.mpirun.args: must be a list of strings");
  expect("launcher:\n  mpirun:\n    np: 2\n    threads_per_rank: 0\n", "launcher.mpirun.threads_per_rank: must be >= 1");
  expect("launcher:\n  mpirun:\n    np: 2\n  stages: [train, eval]\n", "launcher.stages: 'eval' is not one of: base, prepare, train, align");
  expect("launcher:\n  stages: [train]\n", "project.yaml:8:3: launcher.mpirun: required");
  expect("launcher:\n  srun:\n    np: 2\n", "project.yaml:8:3: unknown key 'srun' in 'launcher'");
  expect("launcher: [mpirun]\n", "project.yaml:7:11: launcher: must be a mapping");
}

TEST(ProjectSchema, ValidProjectsInTheRepositoryLoad) {
  lathe::test::TempDir dir;
  // The init template (it names tests/cases.yaml, which init writes).
  const std::string file = lathe::project::init_project(dir / "p", "");
  auto c = lathe::project::load_project(file);
  EXPECT_EQ(c.name, "my-domain-expert");
  EXPECT_DOUBLE_EQ(c.gates.min_pass_rate, 0.7);
  // Every bundled example.
  int examples = 0;
  for (const auto& e : fs::directory_iterator(lathe::test::source_path("examples"))) {
    if (!fs::exists(e.path() / "project.yaml")) continue;
    EXPECT_NO_THROW(lathe::project::load_project((e.path() / "project.yaml").string())) << e.path();
    examples++;
  }
  EXPECT_GE(examples, 1);
  // The shape project_e2e uses: an inline eval suite and train.data without a data section.
  c = parse_project(
      "project:\n  name: tiny\ngoal:\n  task: answer questions\nbase_model:\n  path: base\n"
      "train:\n  method: lora\n  data: chat.jsonl\n  chat_template: chatml\n  lora_target_modules: [q_proj, v_proj]\n"
      "  learning_rate: 0.02\n  max_steps: 12\n"
      "eval:\n  generation:\n    max_new_tokens: 6\n    template: chatml\n  cases:\n"
      "    - id: lily\n      prompt: Who is Lily?\n      assert:\n        - type: contains\n          value: girl\n"
      "export:\n  formats: [peft]\n",
      "project.yaml", dir.path);
  EXPECT_EQ(c.name, "tiny");
}

TEST(ProjectSchema, ClosestKey) {
  using lathe::project::closest_key;
  EXPECT_EQ(closest_key("domian", {"task", "users", "domain"}), "domain");
  EXPECT_EQ(closest_key("learning-rate", {"learning_rate", "seed"}), "learning_rate");
  EXPECT_EQ(closest_key("x", {"task", "users"}), "");
  EXPECT_EQ(closest_key("completely_different", {"task"}), "");
}

}  // namespace
