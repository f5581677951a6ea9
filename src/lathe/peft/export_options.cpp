#include "lathe/peft/export_options.h"

namespace lathe {

const OptionTable<ExportOptions>& export_options_table() {
  using C = ExportOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("export");
    t.add("model", &C::model, "Base model: HF directory or .gguf").needed();
    t.add("adapter", &C::adapter, "PEFT adapter directory");
    t.add("format", &C::format, "What to write").one_of({"merged", "peft", "gguf", "gguf-lora"});
    t.add("output", &C::output, "Output directory (merged, peft) or .gguf file (gguf, gguf-lora)").needed();
    t.add("gguf_type", &C::gguf_type, "GGUF matrix type").one_of({"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"});
    t.add("name", &C::name, "general.name written into a GGUF");
    return t;
  }();
  return table;
}

}  // namespace lathe
