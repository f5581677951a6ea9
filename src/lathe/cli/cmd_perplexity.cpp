// lathe perplexity: mean negative log-likelihood (natural log) over every predicted token.
// Each JSONL line {"input_ids":[...]} is an independent sequence; a sequence longer than
// --context-length is scored as consecutive independent windows of that length (each window of
// n ids predicts n-1 of them).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_int.h"
#include "lathe/eval/perplexity.h"
#include "lathe/model/forward.h"
#include "lathe/peft/adapter.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {

struct Opts {
  std::string model, adapter, ids_file, text_file;
  std::string weights = "auto";
  int context_length = 0;
  bool json = false;
  int threads = 0;
};

// The command's options, declared once (core/options.h): flags, LATHE_* environment, defaults, help.
const lathe::OptionTable<Opts>& perplexity_options() {
  static const lathe::OptionTable<Opts> table = [] {
    lathe::OptionTable<Opts> t("perplexity");
    t.add("model", &Opts::model, "HF model directory or .gguf file").needed();
    t.add("adapter", &Opts::adapter, "PEFT adapter directory (LoRA, QLoRA, IA3, prefix, prompt tuning, P-tuning), applied without merging");
    t.add("weights", &Opts::weights, lathe::kWeightsOptionHelp).one_of(lathe::weight_format_choices());
    t.add("ids_file", &Opts::ids_file, "JSONL, one {\"input_ids\":[...]} per line");
    t.add("text_file", &Opts::text_file, "Plain text, tokenized with the model's tokenizer");
    t.add("context_length", &Opts::context_length, "Window length (0 = max_position_embeddings)");
    t.add("json", &Opts::json, "Print {\"tokens\",\"nll\",\"ppl\"} as one JSON line");
    t.add("threads", &Opts::threads, "Threads for kernels and BLAS (0 = all cores)").min(0);
    return t;
  }();
  return table;
}

std::vector<std::vector<int32_t>> read_ids_file(const std::string& path, int64_t vocab_size) {
  lathe::JsonlReader in(path, "perplexity");  // malformed or too deep: "[perplexity] path:line: ..."
  std::vector<std::vector<int32_t>> seqs;
  nlohmann::json j;
  while (in.next(j)) {
    const int64_t lineno = in.line();
    if (!j.is_object() || !j.contains("input_ids") || !j["input_ids"].is_array())
      lathe::fail("perplexity", "{}:{}: expected an object with an \"input_ids\" array", path, lineno);
    std::vector<int32_t> ids;
    for (size_t k = 0; k < j["input_ids"].size(); k++) {
      const auto& v = j["input_ids"][k];
      int64_t id;
      // Read as 64-bit and range-checked before narrowing: get<int32_t>() turned 5000000000 into 705032704.
      if (!lathe::json_to_int64(v, &id))
        lathe::fail("perplexity", "{}:{}: input_ids[{}] is {}", path, lineno, k, lathe::json_int_problem(v));
      if (id < 0 || id >= vocab_size)
        lathe::fail("perplexity", "{}:{}: input_ids[{}] = {} is outside the vocabulary [0, {})", path, lineno, k, id,
                    vocab_size);
      ids.push_back(int32_t(id));
    }
    seqs.push_back(std::move(ids));
  }
  return seqs;
}

}  // namespace

namespace {

std::function<int()> setup(CLI::App& app) {
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, perplexity_options());
  return [flags] {
    auto o = std::make_shared<Opts>();
    perplexity_options().apply(*o, flags->overrides());  // defaults < LATHE_* environment < flags
    perplexity_options().check(*o);
    if (!o->ids_file.empty() && !o->text_file.empty()) lathe::fail("perplexity", "--ids-file and --text-file: give one of them");
    lathe::cli::apply_threads(o->threads);
    if (o->ids_file.empty() && o->text_file.empty()) lathe::fail("perplexity", "give --ids-file or --text-file");
    lathe::Model m = lathe::Model::load(o->model, lathe::parse_weight_format(o->weights));
    lathe::LoadedAdapter ad;
    if (!o->adapter.empty()) ad = lathe::load_adapter_for(o->adapter, m);
    const lathe::AdapterSet* set = o->adapter.empty() ? nullptr : ad.set();
    std::vector<std::vector<int32_t>> seqs;
    if (!o->ids_file.empty()) {
      seqs = read_ids_file(o->ids_file, m.config.vocab_size);
    } else {  // the whole file is one sequence, tokenized as the model's tokenizer does (BOS if configured)
      auto tok = lathe::Tokenizer::load(o->model);
      seqs.push_back(tok->encode(lathe::read_file(o->text_file), true));
    }
    int ctx = o->context_length > 0 ? o->context_length : m.config.max_position_embeddings;
    if (ctx < 2) lathe::fail("perplexity", "--context-length must be at least 2");
    // The window sizes the workspace and KV cache, so it is bounded by what the model was trained
    // on. Refused rather than clamped: a silently shorter window would measure something else.
    if (ctx > m.config.max_position_embeddings)
      lathe::fail("perplexity", "--context-length {} is longer than the model's context {} (max_position_embeddings)",
                  ctx, m.config.max_position_embeddings);
    size_t longest = 0;
    for (auto& s : seqs) longest = std::max(longest, s.size());
    lathe::Forward fwd(m, int(std::min<size_t>(std::max<size_t>(longest, 2), size_t(ctx))), set);
    double nll = 0;
    int64_t count = 0;
    for (auto& s : seqs)
      for (size_t w = 0; w < s.size(); w += size_t(ctx)) {
        int n = int(std::min(s.size() - w, size_t(ctx)));
        lathe::eval::score_window(fwd, s.data() + w, nullptr, n, &nll, &count, set);
      }
    if (count == 0)
      lathe::fail("perplexity", "{}: no predicted tokens (every sequence is shorter than 2)",
                  o->ids_file.empty() ? o->text_file : o->ids_file);
    double mean = nll / double(count);
    if (o->json)
      std::printf("{\"tokens\": %lld, \"nll\": %.17g, \"ppl\": %.17g}\n", (long long)count, mean, std::exp(mean));
    else
      std::printf("tokens %lld  nll %.6f  perplexity %.4f\n", (long long)count, mean, std::exp(mean));
    return 0;
  };
}
LATHE_COMMAND("perplexity", "Mean NLL and perplexity of token sequences under a model", setup);

}  // namespace
