// The schema of project.yaml: every key of every section with its type, range and allowed values,
// checked when the file is loaded — before any stage runs — so a typo or a wrong type is reported
// as "[project] project.yaml:LINE:COL: section.key: ..." instead of surfacing (or being ignored) in a
// stage. The keys passed through to a stage's own command are not listed twice: train (and
// base_model.build.train) takes its keys, types and ranges from LATHE_TRAIN_OPTIONS, data (and
// base_model.build.data) is checked by the data layer's own parser, an inline eval suite by the
// eval layer's; their messages are mapped back to the line in project.yaml. The sections' own keys
// (project, goal, base_model, export, serve, eval's suite/holdout) are declared in project_schema.cpp.
#pragma once
#include <string>
#include <vector>

namespace lathe::project {

struct ProjectConfig;

void validate_project_schema(const ProjectConfig& c);

// The closest of `known` to `key` by edit distance (a swap of two neighbours counts 1), or "" when
// none is close enough to be what was meant.
std::string closest_key(const std::string& key, const std::vector<std::string>& known);

}  // namespace lathe::project
