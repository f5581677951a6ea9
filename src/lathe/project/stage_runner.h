// `lathe run`: the project's stages in order — base (only when base_model.build asks lathe to build a
// small base model), prepare, index (only with a retrieval: section), train, align (only with an align:
// section: a preference round on the trained adapter), compare (only with a compare: section: the same
// data tuned with other methods), eval, export — each run as the same `lathe` subcommand a user
// would type, in its own process (a stage that dies takes nothing else with it, and its own resume
// logic applies on the next run).
//
// A stage is skipped when its fingerprint — the hash of its config section, the content of its input
// files, the base model and the outputs of the stages it reads — equals the one recorded after its
// last successful run and its outputs are still there. So a second `lathe run` does nothing, and a
// changed key reruns only the stages downstream of it. State lives in PROJECT/.lathe/state.json.
#pragma once
#include <string>
#include <vector>

#include "lathe/core/options.h"
#include "lathe/project/project_config.h"

namespace lathe::project {

enum class Stage { Base, Prepare, Index, Train, Align, Compare, Eval, Export };
const char* stage_name(Stage s);
bool stage_from_name(const std::string& name, Stage* out);

struct RunOptions {
  std::string from, until;  // stage names; empty = first / last
  bool force = false;       // run even when unchanged
  int threads = 0;          // passed to stages (0 = all cores)
  std::string exe;          // the lathe binary (default: /proc/self/exe)
  bool quiet = false;
};

// `lathe run`'s options, declared once (core/options.h): flags, LATHE_* environment, defaults, help.
struct RunCommandOptions {
  std::string config;  // the project file or its directory; "" = ./project.yaml
  RunOptions run;
};
const OptionTable<RunCommandOptions>& run_options_table();

struct RunOutcome {
  int exit_code = 0;            // 0 ok; 3 gate failed; other = a stage failed
  std::string verdict;          // pass | fail | incomplete | no-gate
  int64_t run_id = 0;
};

RunOutcome run_project(const ProjectConfig& cfg, const RunOptions& opts);

// Where things land (absolute paths).
struct ProjectPaths {
  std::string state_dir, registry, base_dir, base_model, data, index, train, align, align_data, eval, export_dir;
  std::string compare;  // OUTPUT_DIR/compare: one adapter directory per compare: entry
  // The reviewers' files `lathe ui` writes (docs/ui.md): PROJECT/review/data.json, eval_overrules.json.
  std::string review_dir, data_review, eval_overrules;
};
ProjectPaths project_paths(const ProjectConfig& cfg);

}  // namespace lathe::project
