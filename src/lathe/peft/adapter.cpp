#include "lathe/peft/adapter.h"

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"

namespace lathe {

LoadedAdapter load_peft_adapter(const std::string& dir, const ModelConfig& mc) {
  std::string cfg = dir + "/adapter_config.json";
  if (!file_exists(cfg)) fail("adapter", "{}: no adapter_config.json (not a PEFT adapter directory)", dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(cfg));
  } catch (const nlohmann::json::parse_error& e) {
    fail("adapter", "{}: invalid JSON: {}", cfg, e.what());
  }
  LoadedAdapter a;
  a.dir = dir;
  a.peft_type = j.value("peft_type", "");
  if (a.peft_type == "LORA") {
    a.lora = LoraAdapter::load_peft(dir, mc);
  } else if (a.peft_type == "PREFIX_TUNING") {
    a.prefix = PrefixAdapter::load_peft(dir, mc);
  } else {
    fail("adapter", "{}: peft_type '{}' is not supported (LORA, PREFIX_TUNING)", cfg, a.peft_type);
  }
  return a;
}

}  // namespace lathe
