// `lathe export`'s options, declared once (core/options.h): flag, YAML key (project.yaml's `export:`
// section passes gguf_type and name on), environment variable, default, help and validation. Every
// key is documented in docs/export.md (a unit test keeps the two equal).
#pragma once
#include <string>

#include "lathe/core/options.h"

namespace lathe {

struct ExportOptions {
  std::string model, adapter, format = "merged", output, gguf_type = "f16", name;
};

const OptionTable<ExportOptions>& export_options_table();

}  // namespace lathe
