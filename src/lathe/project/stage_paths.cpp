// The stages' names and where a project keeps each stage's output (stage_runner.h): shared by
// `lathe run`, the run registry's readers and `lathe ui`, apart from the runner itself.
#include "lathe/project/stage_runner.h"

namespace lathe::project {

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Base: return "base";
    case Stage::Prepare: return "prepare";
    case Stage::Index: return "index";
    case Stage::Train: return "train";
    case Stage::Align: return "align";
    case Stage::Compare: return "compare";
    case Stage::Eval: return "eval";
    case Stage::Export: return "export";
  }
  return "?";
}

bool stage_from_name(const std::string& n, Stage* out) {
  for (Stage s : {Stage::Base, Stage::Prepare, Stage::Index, Stage::Train, Stage::Align, Stage::Compare, Stage::Eval, Stage::Export})
    if (n == stage_name(s)) {
      *out = s;
      return true;
    }
  return false;
}

ProjectPaths project_paths(const ProjectConfig& c) {
  ProjectPaths p;
  p.state_dir = c.dir + "/.lathe";
  p.registry = p.state_dir + "/runs.sqlite";
  p.base_dir = c.output_dir + "/base";
  p.base_model = c.has("base_model") && c.root["base_model"]["build"] ? p.base_dir + "/model"
                                                                        : c.resolve(c.root["base_model"]["path"].as<std::string>());
  p.data = c.output_dir + "/data";
  p.index = c.output_dir + "/index";
  p.train = c.output_dir + "/train";
  p.align = c.output_dir + "/align";
  p.align_data = c.output_dir + "/align_data";
  p.eval = c.output_dir + "/eval";
  p.compare = c.output_dir + "/compare";
  p.export_dir = c.output_dir + "/export";
  p.review_dir = c.dir + "/review";
  p.data_review = p.review_dir + "/data.json";
  p.eval_overrules = p.review_dir + "/eval_overrules.json";
  return p;
}

}  // namespace lathe::project
