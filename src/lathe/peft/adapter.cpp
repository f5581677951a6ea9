#include "lathe/peft/adapter.h"

#include <cstdio>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"

namespace lathe {

LoadedAdapter load_peft_adapter(const std::string& dir, const ModelConfig& mc) {
  std::string cfg = dir + "/adapter_config.json";
  if (!file_exists(cfg)) fail("adapter", "{}: no adapter_config.json (not a PEFT adapter directory)", dir);
  nlohmann::json j;
  JsonError err;
  if (!try_parse_json_bounded(read_file(cfg), j, &err)) fail("adapter", "{}: invalid JSON: {}", cfg, err.message);
  LoadedAdapter a;
  a.dir = dir;
  a.peft_type = j.value("peft_type", "");
  a.base_nf4 = j.value("lathe_base_quantization", "") == "nf4";
  if (a.peft_type == "LORA") {
    a.lora = LoraAdapter::load_peft(dir, mc);
    a.base_nf4 |= a.lora->loftq_iter() > 0;  // LoftQ's base is NF4 (rebuilt by quantize_base_for)
  } else if (a.peft_type == "PREFIX_TUNING") {
    a.prefix = PrefixAdapter::load_peft(dir, mc);
  } else if (a.peft_type == "IA3") {
    a.ia3 = IA3Adapter::load_peft(dir, mc);
  } else if (a.peft_type == "PROMPT_TUNING" || a.peft_type == "P_TUNING") {
    a.prompt = PromptAdapter::load_peft(dir, mc);
  } else {
    fail("adapter", "{}: peft_type '{}' is not supported (LORA, PREFIX_TUNING, IA3, PROMPT_TUNING, P_TUNING)", cfg, a.peft_type);
  }
  return a;
}

LoadedAdapter load_peft_adapter(const std::string& dir, const Model& m) {
  LoadedAdapter a = load_peft_adapter(dir, m.config);
  if (a.prompt) a.prompt->bake(m);
  return a;
}

void quantize_base_for(const LoadedAdapter& a, Model& m) {
  if (!a.base_nf4) return;
  if (a.lora && a.lora->loftq_iter() > 0) {
    std::fprintf(stderr, "lathe: %s: rebuilding the LoftQ base (loftq_iter %d) of the adapted projections\n",
                 a.dir.c_str(), a.lora->loftq_iter());
    a.lora->init_loftq(m, a.lora->loftq_iter(), /*set_factors=*/false);
  }
  quantize_model_nf4(m);
}

LoadedAdapter load_adapter_for(const std::string& dir, Model& m) {
  LoadedAdapter a = load_peft_adapter(dir, m.config);
  quantize_base_for(a, m);
  if (a.prompt) a.prompt->bake(m);
  return a;
}

void merge_adapter_into(const LoadedAdapter& a, Model& m) {
  if (a.lora) return a.lora->merge_into(m);
  if (a.ia3) return a.ia3->merge_into(m);
  fail("export", "{}: a {} adapter cannot be merged: its virtual tokens are not weights (serve or evaluate it as "
       "an adapter, or export it with --format peft)", a.dir, a.peft_type);
}

}  // namespace lathe
