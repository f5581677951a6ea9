// The `data:` section's options, declared once (core/options.h): YAML key (dotted for the nested
// sections: clean.min_chars is `clean: {min_chars: ...}`), `lathe data prepare` flag, environment
// variable (LATHE_CLEAN_MIN_CHARS), default (DataConfig's own initialisers, pipeline.h), help and
// validation. parse_data_config / load_data_config (pipeline.h), `lathe data`'s flags and the
// project.yaml schema all read this one table. Every key is documented in docs/data.md (a unit test
// keeps the two equal).
#pragma once
#include <string>

#include "lathe/core/options.h"
#include "lathe/data/pipeline.h"

namespace lathe::data {

const OptionTable<DataConfig>& data_options_table();

// What involves several keys, after every source is applied: split ratios that sum to more than
// zero; `strict` for the collect stage too; the stratification field for the mapping stage.
// `where` names the configuration in the error.
void finish_data_config(DataConfig& c, const std::string& where);
// "512MB", "2GB", "1.5GiB", a byte count: bytes (units in 1024s); an error naming `where` otherwise.
uint64_t parse_memory_size(const std::string& text, const std::string& where);

}  // namespace lathe::data
