// Any PEFT adapter directory, dispatched on adapter_config.json's peft_type.
#pragma once
#include <memory>
#include <string>

#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"

namespace lathe {

struct LoadedAdapter {
  std::string dir, peft_type;
  std::unique_ptr<LoraAdapter> lora;
  std::unique_ptr<PrefixAdapter> prefix;
  const AdapterSet* set() const { return lora ? &lora->adapters() : &prefix->adapters(); }
};

// Throws "[adapter] DIR: ..." for a missing/unknown adapter or one that does not fit the model.
LoadedAdapter load_peft_adapter(const std::string& dir, const ModelConfig& mc);

}  // namespace lathe
