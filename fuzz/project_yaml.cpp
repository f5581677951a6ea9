// project.yaml text → the loader: YAML parsing, the YAML 1.2 strictness check and the schema
// (including the train, data and eval layers' own checks it delegates to). Anything but acceptance
// or a lathe::Error — a crash, a sanitizer report, an escaped yaml-cpp or nlohmann exception — is a
// finding. The project directory does not exist, so no file a key names is found.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lathe/core/error.h"
#include "lathe/project/project_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    lathe::project::parse_project(text, "project.yaml", "/nonexistent/lathe-fuzz-project");
  } catch (const lathe::Error&) {
  }
  return 0;
}
