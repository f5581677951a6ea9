// `lathe index build` and `lathe index search` options, declared once (core/options.h): the same keys
// serve the command line, LATHE_* environment variables and the `retrieval:` section of project.yaml
// and eval suites (docs/retrieval.md lists them).
#pragma once
#include <string>

#include "lathe/core/options.h"
#include "lathe/retrieval/index.h"

namespace lathe::retrieval {

struct SearchCommandOptions {
  std::string index, query, mode = "auto";
  std::string encoder;  // overrides the encoder directory recorded in the index
  int k = 5;
  bool json = false;
};

const OptionTable<BuildOptions>& index_build_options_table();
const OptionTable<SearchCommandOptions>& index_search_options_table();

}  // namespace lathe::retrieval
