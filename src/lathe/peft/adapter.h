// Any PEFT adapter directory, dispatched on adapter_config.json's peft_type.
#pragma once
#include <memory>
#include <string>

#include "lathe/peft/ia3.h"
#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"
#include "lathe/peft/prompt_tuning.h"

namespace lathe {

struct LoadedAdapter {
  std::string dir, peft_type;
  bool base_nf4 = false;  // trained with --method qlora (or LoftQ): the base must be NF4 as during training
  std::unique_ptr<LoraAdapter> lora;
  std::unique_ptr<PrefixAdapter> prefix;
  std::unique_ptr<IA3Adapter> ia3;
  std::unique_ptr<PromptAdapter> prompt;  // PROMPT_TUNING, P_TUNING: set() needs it baked
  const AdapterSet* set() const {
    return lora ? &lora->adapters() : ia3 ? &ia3->adapters() : prompt ? &prompt->adapters() : &prefix->adapters();
  }
};

// Throws "[adapter] DIR: ..." for a missing/unknown adapter or one that does not fit the model.
LoadedAdapter load_peft_adapter(const std::string& dir, const ModelConfig& mc);
// The same, ready for inference over m: a prompt-tuning / P-tuning adapter is baked into its
// key/value prefix with m's weights (P rows of forward).
LoadedAdapter load_peft_adapter(const std::string& dir, const Model& m);
// A QLoRA adapter's base as it was during training: the NF4 of m's projections, for a LoftQ adapter
// its LoftQ base (rebuilt from m's original weights) on the adapted ones. Nothing for other adapters.
void quantize_base_for(const LoadedAdapter& a, Model& m);
// Loads the adapter and, for a QLoRA adapter, quantizes the base to NF4 as it was during training.
LoadedAdapter load_adapter_for(const std::string& dir, Model& m);
// Merges a LoRA or IA3 adapter into m's weights; "[export] DIR: ... cannot be merged" for the
// prompt-learning types (their virtual tokens are not weights).
void merge_adapter_into(const LoadedAdapter& a, Model& m);

}  // namespace lathe
