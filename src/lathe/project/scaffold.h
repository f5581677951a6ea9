// `lathe init DIR [--example NAME]`: a new project directory — either a copy of a bundled example
// (examples/NAME, found beside the source tree or the installed binary) or a commented project.yaml
// template whose every key is explained in place.
#pragma once
#include <string>
#include <vector>

namespace lathe::project {

// The directories searched for bundled examples, in order.
std::vector<std::string> example_roots();
std::vector<std::string> example_names();
// Creates DIR (must not hold a project.yaml already). Returns the path of the project file.
std::string init_project(const std::string& dir, const std::string& example);
// The commented template written without --example.
const char* project_template();
// The starter test suite written beside it (tests/cases.yaml).
const char* cases_template();

}  // namespace lathe::project
