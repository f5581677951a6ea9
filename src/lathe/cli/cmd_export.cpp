// lathe export: a merged Hugging Face model directory (base + LoRA), or the adapter in PEFT layout.
#include <cstdio>
#include <filesystem>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/peft/adapter.h"

namespace {

struct Opts {
  std::string model, adapter, format = "merged", output;
};

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "Base model: HF directory or .gguf")->required();
  app.add_option("--adapter", o->adapter, "PEFT adapter directory");
  app.add_option("--format", o->format, "merged | peft")->capture_default_str();
  app.add_option("--output", o->output, "Output directory")->required();
  return [o] {
    lathe::Model m = lathe::Model::load(o->model);
    if (o->format == "merged") {
      if (o->adapter.empty()) lathe::fail("export", "--format merged needs --adapter");
      lathe::LoadedAdapter a = lathe::load_peft_adapter(o->adapter, m.config);
      if (!a.lora) lathe::fail("export", "{}: only LoRA adapters can be merged (prefix tuning has no weights to merge)", o->adapter);
      if (a.base_nf4) lathe::roundtrip_model_nf4(m);  // QLoRA: merge onto the base the adapter saw
      a.lora->merge_into(m);
      m.save_hf_dir(o->output);
      lathe::copy_tokenizer_files(o->model, o->output);
      std::printf("wrote merged model %s (%s + %s)\n", o->output.c_str(), o->model.c_str(), o->adapter.c_str());
    } else if (o->format == "peft") {
      if (o->adapter.empty()) lathe::fail("export", "--format peft needs --adapter");
      lathe::LoadedAdapter a = lathe::load_peft_adapter(o->adapter, m.config);
      if (a.lora) a.lora->save_peft(o->output, o->model);
      else a.prefix->save_peft(o->output, o->model);
      std::printf("wrote PEFT adapter %s\n", o->output.c_str());
    } else {
      lathe::fail("export", "unknown --format '{}' (merged, peft)", o->format);
    }
    return 0;
  };
}
LATHE_COMMAND("export", "Export a merged HF model or a PEFT adapter", setup);

}  // namespace
