// lathe export: a merged Hugging Face model directory (base + LoRA), the adapter in PEFT layout, a
// GGUF model (base, or base + LoRA merged) with its tokenizer and chat template, or a llama.cpp GGUF
// LoRA adapter.
#include <cstdio>
#include <filesystem>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/model/gguf_export.h"
#include "lathe/peft/adapter.h"
#include "lathe/peft/export_options.h"
#include "lathe/peft/gguf_adapter.h"
#include "lathe/tokenizer/gguf_tokenizer_write.h"

namespace {

std::function<int()> setup(CLI::App& app) {
  const auto& table = lathe::export_options_table();
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, table);
  return [flags, &table] {
    // defaults < LATHE_* environment < flags (peft/export_options.h)
    auto o = std::make_shared<lathe::ExportOptions>();
    table.apply(*o, flags->overrides());
    table.check(*o);
    lathe::Model m = lathe::Model::load(o->model);
    if (o->format == "merged") {
      if (o->adapter.empty()) lathe::fail("export", "--format merged needs --adapter");
      lathe::LoadedAdapter a = lathe::load_peft_adapter(o->adapter, m.config);
      if (a.base_nf4) {  // QLoRA: merge onto the base the adapter saw (LoftQ: its rebuilt base)
        lathe::quantize_base_for(a, m);
        lathe::dequantize_model_nf4(m);
      }
      lathe::merge_adapter_into(a, m);
      m.save_hf_dir(o->output);
      lathe::copy_tokenizer_files(o->model, o->output);
      std::printf("wrote merged model %s (%s + %s)\n", o->output.c_str(), o->model.c_str(), o->adapter.c_str());
    } else if (o->format == "peft") {
      if (o->adapter.empty()) lathe::fail("export", "--format peft needs --adapter");
      lathe::LoadedAdapter a = lathe::load_peft_adapter(o->adapter, m.config);
      if (a.lora) a.lora->save_peft(o->output, o->model);
      else if (a.ia3) a.ia3->save_peft(o->output, o->model);
      else if (a.prompt) a.prompt->save_peft(o->output, o->model);
      else a.prefix->save_peft(o->output, o->model);
      std::printf("wrote PEFT adapter %s\n", o->output.c_str());
    } else if (o->format == "gguf") {
      lathe::GgmlType type = lathe::parse_gguf_type(o->gguf_type);
      if (!o->adapter.empty()) {
        lathe::LoadedAdapter a = lathe::load_peft_adapter(o->adapter, m.config);
        if (a.base_nf4) {
          lathe::quantize_base_for(a, m);
          lathe::dequantize_model_nf4(m);
        }
        lathe::merge_adapter_into(a, m);
      }
      lathe::GgufWriter w;
      lathe::add_model_to_gguf(m, type, o->name, w);
      // What llama.cpp cannot express for this model: lathe reads the file back as it is, llama.cpp will not.
      for (const std::string& note : lathe::gguf_llamacpp_notes(m.config))
        std::fprintf(stderr, "note: llama.cpp: %s\n", note.c_str());
      if (m.format == "gguf") lathe::copy_gguf_tokenizer_keys(o->model, w);
      else lathe::add_tokenizer_to_gguf(o->model, m.config.vocab_size, w);
      w.write(o->output);
      std::printf("wrote GGUF model %s (%s%s%s, %s)\n", o->output.c_str(), o->model.c_str(),
                  o->adapter.empty() ? "" : " + ", o->adapter.c_str(), o->gguf_type.c_str());
    } else if (o->format == "gguf-lora") {
      if (o->adapter.empty()) lathe::fail("export", "--format gguf-lora needs --adapter");
      lathe::GgmlType type = lathe::parse_gguf_type(o->gguf_type);
      if (type == lathe::GgmlType::Q4_0 || type == lathe::GgmlType::Q4_K || type == lathe::GgmlType::Q6_K)
        lathe::fail("export", "--format gguf-lora: --gguf-type {} is for models (f32, f16, bf16, q8_0)", o->gguf_type);
      lathe::LoadedAdapter a = lathe::load_peft_adapter(o->adapter, m.config);
      if (a.ia3)
        lathe::fail("export", "{}: llama.cpp has no IA3 adapter type; merge it into the model instead: lathe export "
                    "--format gguf --adapter {} (or --format merged)", o->adapter, o->adapter);
      if (!a.lora) lathe::fail("export", "{}: llama.cpp GGUF adapters are LoRA only ({} has none)", o->adapter, a.peft_type);
      // LoftQ's A, B start as W − Q's top part: on the unquantized base they would add that error a second time.
      if (a.lora->loftq_iter() > 0)
        lathe::fail("export", "{}: a LoftQ adapter belongs to the NF4 base LoftQ computed (init_lora_weights loftq); "
                    "llama.cpp would apply it to the GGUF base as it is. Merge it instead: lathe export --format gguf "
                    "--adapter {} (or --format merged)", o->adapter, o->adapter);
      if (a.base_nf4)
        std::fprintf(stderr, "note: %s was trained on an NF4 (QLoRA) base; llama.cpp applies it to the GGUF base "
                     "as it is\n", o->adapter.c_str());
      lathe::GgufWriter w;
      lathe::add_lora_to_gguf(*a.lora, m.config, type, o->name, w);
      w.write(o->output);
      std::printf("wrote GGUF LoRA adapter %s (alpha %g for llama.cpp, %s)\n", o->output.c_str(),
                  double(lathe::gguf_lora_alpha(a.lora->config())), o->gguf_type.c_str());
    } else {
      lathe::fail("export", "unknown --format '{}' (merged, peft, gguf, gguf-lora)", o->format);
    }
    return 0;
  };
}
LATHE_COMMAND("export", "Export a merged HF model, a PEFT adapter, a GGUF model or a GGUF LoRA adapter", setup);

}  // namespace
