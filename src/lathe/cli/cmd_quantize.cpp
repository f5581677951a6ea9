// lathe quantize: a model (HF directory or GGUF) as a Q8_0 or Q4_0 GGUF that llama.cpp and lathe load.
// The same file `lathe export --format gguf --gguf-type TYPE` writes; this command exists because
// "quantize" is the word llama.cpp users look for (llama-quantize), and it keeps the blocks of a
// GGUF source that is already of the type instead of re-encoding them.
#include <cstdio>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/cli_util.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/model/gguf_export.h"
#include "lathe/tokenizer/gguf_tokenizer_write.h"

namespace {

struct Opts {
  std::string model, type, output, name;
  int threads = 0;
};

const lathe::OptionTable<Opts>& quantize_options() {
  static const lathe::OptionTable<Opts> table = [] {
    lathe::OptionTable<Opts> t("quantize");
    t.add("model", &Opts::model, "HF model directory or .gguf file (with its tokenizer)").needed();
    t.add("type", &Opts::type,
          "Type of the matrices (embedding and lm_head: Q8_0 for q8_0/q4_0, Q6_K for q4_k/q6_k; rows a block "
          "does not divide fall back to Q8_0 or F16; docs/quant.md)")
        .one_of({"q8_0", "q4_0", "q4_k", "q6_k", "f16", "bf16"})
        .needed();
    t.add("output", &Opts::output, "The .gguf file to write").needed();
    t.add("name", &Opts::name, "general.name written into the GGUF");
    t.add("threads", &Opts::threads, "Threads for the quantizers (0 = all cores)").min(0);
    return t;
  }();
  return table;
}

std::function<int()> setup(CLI::App& app) {
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, quantize_options());
  return [flags] {
    auto o = std::make_shared<Opts>();
    quantize_options().apply(*o, flags->overrides());  // defaults < LATHE_* environment < flags
    quantize_options().check(*o);
    lathe::cli::apply_threads(o->threads);
    // Auto: a GGUF source's blocks (and F16/BF16 matrices) are held as stored, and written back
    // unchanged where the type matches (add_model_to_gguf); everything else is quantized while writing.
    lathe::Model m = lathe::Model::load(o->model, lathe::WeightFormat::Auto);
    lathe::GgufWriter w;
    lathe::add_model_to_gguf(m, lathe::parse_gguf_type(o->type), o->name, w);
    for (const std::string& note : lathe::gguf_llamacpp_notes(m.config))
      std::fprintf(stderr, "note: llama.cpp: %s\n", note.c_str());
    if (m.format == "gguf") lathe::copy_gguf_tokenizer_keys(o->model, w);
    else lathe::add_tokenizer_to_gguf(o->model, m.config.vocab_size, w);
    w.write(o->output);
    std::printf("wrote GGUF model %s (%s, %s)\n", o->output.c_str(), o->model.c_str(), o->type.c_str());
    return 0;
  };
}
LATHE_COMMAND("quantize", "Write a model as a Q8_0, Q4_0, Q4_K, Q6_K, F16 or BF16 GGUF (llama.cpp's blocks)", setup);

}  // namespace
