// The schema of project.yaml: every key of every section with its type, range and allowed values,
// checked when the file is loaded — before any stage runs — so a typo or a wrong type is reported
// as "[project] project.yaml:LINE:COL: section.key: ..." instead of surfacing (or being ignored) in a
// stage. Every section is read through option tables (core/options.h): the keys passed on to a
// stage's command come from that command's own table (train: train_options_table, data:
// data_options_table, export: export_options_table, serve: serve_options_table, eval.holdout and
// goal.gates: eval_options_table); the project's own keys (project, goal, base_model and its
// build.tokenizer / build.model, export.formats, eval.suite) are declared in project_schema.cpp, the
// launcher: section's in launcher.cpp. An inline eval suite is checked by the eval layer's parser.
#pragma once
#include <string>
#include <vector>

#include "lathe/core/options.h"

namespace lathe::project {

struct ProjectConfig;

void validate_project_schema(const ProjectConfig& c);

// base_model's own keys: path, build.tokenizer.* (`lathe tokenizer train`'s flags) and build.model.*
// (`lathe init-model`'s flags). build.data and build.train are a data and a train section.
const OptionTableBase& base_model_options_table();
// export's keys: formats (one `lathe export --format` run per entry) and export_options_table's
// gguf_type and name, passed on as flags.
std::vector<const Option*> export_section_options();

// The closest of `known` to `key` (core/options.h).
inline std::string closest_key(const std::string& key, const std::vector<std::string>& known) {
  return lathe::closest_key(key, known);
}

}  // namespace lathe::project
