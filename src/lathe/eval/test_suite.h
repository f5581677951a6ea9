// An evaluation suite: test cases, generation settings, the prompt-engineering baseline and the gates.
// Written as YAML (the whole suite; designed to become the `eval:` section of a project file) or
// JSONL (one case per line, default settings). Every key is documented in docs/eval.md. Unknown keys
// are errors, so a typo never silently disables an assertion.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/eval/assertions.h"

namespace lathe::eval {

struct EvalCase {
  std::string id;
  std::string prompt;                 // plain prompt (one user turn), or
  nlohmann::ordered_json messages;    // a conversation [{role, content}] ending with a user turn
  std::string system;                 // optional system prompt for this case
  std::string expected;               // reference answer (default value for assertions)
  bool has_expected = false;
  std::vector<Assertion> asserts;     // none + expected given: one `equals`
  std::vector<std::string> tags;
  double weight = 1;
  std::string where;                  // "file:line"
  // Retrieval only: the document the answer lives in (a path or its tail, e.g. "02-leave-ko.md");
  // a retrieved passage from it counts as a retrieval hit.
  std::string source;
};

struct GenerationSettings {
  int max_new_tokens = 64;
  float temperature = 0;  // 0 = greedy
  int top_k = 0;
  float top_p = 1;
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop sequences (text); the model's EOS always stops
  // How prompts become text: "auto" (the model's chat template when it has one, else plain),
  // "plain" (no template), a built-in template name (chatml, llama3, alpaca) or a .jinja path.
  std::string template_name = "auto";
};

struct FewShot {
  std::string prompt, response;
};

// The "prompt engineering" variant: the base model with a stated system prompt and examples.
struct PromptBaseline {
  std::string system;
  std::vector<FewShot> few_shot;
  bool defined() const { return !system.empty() || !few_shot.empty(); }
};

struct Gates {
  double min_pass_rate = -1;   // < 0: off
  double max_forgetting = -1;  // < 0: off
  // The variants the gates judge; empty: every adapter variant (the base without adapters). lathe
  // run names its shipping candidates so the methods of a compare: section are reported, not gated.
  std::vector<std::string> variants;
};

// The suite's `retrieval:` section: the index the rag variants search, passages per question and an
// optional prompt template ({context}, {question}; retrieval/rag_prompt.h). Paths resolve against
// the suite's directory.
struct SuiteRetrieval {
  std::string index, template_path;
  int k = 3;
};

struct EvalSuite {
  std::string name;
  std::string source;  // the file it came from
  GenerationSettings generation;
  PromptBaseline baseline;
  Gates gates;
  SuiteRetrieval retrieval;
  std::vector<EvalCase> cases;
};

// By extension: .jsonl -> cases only; .yaml/.yml -> a suite. Throws lathe::Error("[eval] FILE:LINE: ...").
EvalSuite load_suite(const std::string& path);
EvalSuite parse_suite_yaml(const std::string& text, const std::string& origin, const std::string& base_dir);
std::vector<EvalCase> parse_cases_jsonl(const std::string& text, const std::string& origin);
// One case from a JSON object (as in a JSONL line); `where` names it in errors.
EvalCase case_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace lathe::eval
