// `lathe index build` and `lathe index search` options, declared once (core/options.h): the same keys
// serve the command line, LATHE_* environment variables and the `retrieval:` section of project.yaml
// and eval suites (docs/retrieval.md lists them).
#pragma once
#include <cstdint>
#include <string>

#include "lathe/core/options.h"
#include "lathe/retrieval/index.h"

namespace lathe::retrieval {

struct SearchCommandOptions {
  std::string index, query, mode = "auto";
  int k = 5;
  bool json = false;
};

// `lathe index augment`: training records with retrieved context (augment.h).
struct AugmentCommandOptions {
  std::string index, data, output, rag_template;
  int k = 3;
  double distractor_fraction = 0.2;
  bool keep_plain = true;
  int64_t seed = 0;
};

// project.yaml's `retrieval:` section: what `lathe run` builds the index from (its stage runs `lathe
// index build` with the base model's tokenizer), how eval retrieves, and whether training records
// get retrieved context.
struct RetrievalSection {
  BuildOptions build;
  int k = 3;
  std::string rag_template;
  bool train = false;
  double distractor_fraction = 0.2;
  bool keep_plain = true;
};

const OptionTable<BuildOptions>& index_build_options_table();
const OptionTable<AugmentCommandOptions>& index_augment_options_table();
const OptionTable<RetrievalSection>& retrieval_section_table();
const OptionTable<SearchCommandOptions>& index_search_options_table();

}  // namespace lathe::retrieval
