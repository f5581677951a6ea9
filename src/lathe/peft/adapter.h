// Any PEFT adapter directory, dispatched on adapter_config.json's peft_type.
#pragma once
#include <memory>
#include <string>

#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"

namespace lathe {

struct LoadedAdapter {
  std::string dir, peft_type;
  bool base_nf4 = false;  // trained with --method qlora: the base must be NF4 as during training
  std::unique_ptr<LoraAdapter> lora;
  std::unique_ptr<PrefixAdapter> prefix;
  const AdapterSet* set() const { return lora ? &lora->adapters() : &prefix->adapters(); }
};

// Throws "[adapter] DIR: ..." for a missing/unknown adapter or one that does not fit the model.
LoadedAdapter load_peft_adapter(const std::string& dir, const ModelConfig& mc);
// Loads the adapter and, for a QLoRA adapter, quantizes the base to NF4 as it was during training.
LoadedAdapter load_adapter_for(const std::string& dir, Model& m);

}  // namespace lathe
