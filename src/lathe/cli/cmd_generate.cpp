// lathe generate: continue a prompt with greedy decoding or sampling.
#include <algorithm>
#include <cstdio>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/cli_util.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/sys.h"
#include "lathe/model/generate.h"
#include "lathe/peft/adapter.h"
#include "lathe/chat/chat_template.h"
#include "lathe/tokenizer/stop_tokens.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {

struct Opts {
  std::string model, adapter, prompt_ids, prompt, stop_ids;
  std::string weights = "auto";
  lathe::GenerateParams gp;
  bool json = false, stats = false;
  int threads = 0;
};

// The command's options, declared once (core/options.h): flags, LATHE_* environment, defaults (the
// structs' own), help.
const lathe::OptionTable<Opts>& generate_options() {
  static const lathe::OptionTable<Opts> table = [] {
    lathe::OptionTable<Opts> t("generate");
    t.add("model", &Opts::model, "HF model directory or .gguf file").needed();
    t.add("adapter", &Opts::adapter, "PEFT adapter directory (LoRA, QLoRA, IA3, prefix, prompt tuning, P-tuning), applied without merging");
    t.add("weights", &Opts::weights, lathe::kWeightsOptionHelp).one_of(lathe::weight_format_choices());
    t.add("prompt_ids", &Opts::prompt_ids, "Prompt as token ids: 1,2,3 (nothing is added)");
    t.add("prompt", &Opts::prompt, "Prompt text (tokenized with the model's tokenizer)");
    t.add("max_new_tokens", [](Opts& o) -> auto& { return o.gp.max_new_tokens; },
          "Tokens to generate (clamped, with a warning, so prompt + new tokens fit max_position_embeddings)");
    t.add("temperature", [](Opts& o) -> auto& { return o.gp.sampling.temperature; }, "0 = greedy");
    t.add("top_k", [](Opts& o) -> auto& { return o.gp.sampling.top_k; }, "Keep the k most likely tokens (0 = off)");
    t.add("top_p", [](Opts& o) -> auto& { return o.gp.sampling.top_p; }, "Nucleus sampling mass (1 = off)");
    t.add("min_p", [](Opts& o) -> auto& { return o.gp.sampling.min_p; }, "Drop tokens below min_p x top probability (0 = off)");
    t.add("repetition_penalty", [](Opts& o) -> auto& { return o.gp.sampling.repetition_penalty; },
          "HF repetition penalty (1 = off)");
    t.add("seed", [](Opts& o) -> auto& { return o.gp.sampling.seed; }, "Sampling seed");
    t.add("stop_ids", &Opts::stop_ids,
          "Stop after any of these ids: 2,3 (default: the model's eos ids and its chat template's end-of-turn token)");
    t.add("json", &Opts::json, "Print {\"ids\":[...],\"text\":...} (generated ids only)");
    t.add("stats", &Opts::stats, "Print timing and memory as one JSON line on stderr");
    t.add("threads", &Opts::threads, "Threads for kernels and BLAS (0 = all cores)").min(0);
    return t;
  }();
  return table;
}

std::function<int()> setup(CLI::App& app) {
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, generate_options());
  return [flags] {
    auto o = std::make_shared<Opts>();
    generate_options().apply(*o, flags->overrides());  // defaults < LATHE_* environment < flags
    generate_options().check(*o);
    if (!o->prompt_ids.empty() && !o->prompt.empty()) lathe::fail("generate", "--prompt-ids and --prompt: give one of them");
    lathe::cli::apply_threads(o->threads);
    lathe::Model m = lathe::Model::load(o->model, lathe::parse_weight_format(o->weights));
    std::vector<int32_t> prompt;
    std::unique_ptr<lathe::Tokenizer> tok;
    if (!o->prompt_ids.empty()) {
      prompt = lathe::cli::parse_id_list(o->prompt_ids, "--prompt-ids");
    } else if (!o->prompt.empty()) {
      tok = lathe::Tokenizer::load(o->model);  // the model's own tokenizer (HF dir or GGUF vocabulary)
      prompt = tok->encode(o->prompt, true);    // special tokens as the model's config says (e.g. BOS)
    } else {
      lathe::fail("generate", "give --prompt-ids or --prompt");
    }
    if (!o->stop_ids.empty()) {
      o->gp.stop_ids = lathe::cli::parse_id_list(o->stop_ids, "--stop-ids");
    } else {
      // What the model declares (generation_config.json, then config.json: Gemma 3's [1, 106],
      // Phi-4-mini's [200020, 199999]) and, with a text prompt, the tokenizer's eos and the end-of-turn
      // marker of its chat template, so each family stops at the end of its turn.
      std::vector<int32_t> declared = lathe::declared_eos_ids(o->model);
      if (m.config.eos_token_id >= 0) declared.push_back(m.config.eos_token_id);
      if (tok) {
        std::string tmpl = tok->chat_template();
        try {
          tmpl = lathe::chat_template_config_load(o->model).source;  // chat_template.jinja or the config's
        } catch (const lathe::Error&) {
          // A bare tokenizer.json (no tokenizer_config.json): the tokenizer's own template, if any.
        }
        o->gp.stop_ids = lathe::stop_tokens(*tok, tmpl, declared).ids;
      } else {
        std::sort(declared.begin(), declared.end());
        declared.erase(std::unique(declared.begin(), declared.end()), declared.end());
        o->gp.stop_ids = declared;
      }
    }
    lathe::LoadedAdapter ad;
    if (!o->adapter.empty()) ad = lathe::load_adapter_for(o->adapter, m);
    const lathe::AdapterSet* set = o->adapter.empty() ? nullptr : ad.set();
    // Clamped to the model's context like llama.cpp's n_ctx, with a warning, instead of sizing a KV
    // cache from whatever --max-new-tokens says (1e9 used to abort allocating 128 GB).
    lathe::GenerationBudget budget = lathe::bounded_generation_length(
        m.config, int64_t(prompt.size()), o->gp.max_new_tokens, set ? set->prefix_len : 0);
    if (budget.clamped) std::fprintf(stderr, "lathe: warning: %s\n", budget.message.c_str());
    o->gp.max_new_tokens = budget.max_new_tokens;
    lathe::GenerateResult r = lathe::generate(m, prompt, o->gp, {}, set);
    if (o->json) {
      std::printf("{\"ids\":[");
      for (size_t i = 0; i < r.ids.size(); i++) std::printf("%s%d", i ? "," : "", r.ids[i]);
      std::printf("]}\n");
    } else if (tok) {  // text in, text out: the prompt followed by its continuation
      std::vector<int32_t> shown = r.ids;
      if (!shown.empty() && std::find(o->gp.stop_ids.begin(), o->gp.stop_ids.end(), shown.back()) != o->gp.stop_ids.end())
        shown.pop_back();
      std::printf("%s%s\n", o->prompt.c_str(), tok->decode(shown, true).c_str());
    } else {
      for (size_t i = 0; i < r.ids.size(); i++) std::printf("%s%d", i ? " " : "", r.ids[i]);
      std::printf("\n");
    }
    std::fflush(stdout);
    if (o->stats) {
      int decoded = int(r.ids.size()) - 1;  // the first new token comes from the prefill logits
      std::fprintf(stderr,
                   "{\"prompt_tokens\": %d, \"prefill_s\": %.6f, \"prefill_tok_s\": %.2f, \"new_tokens\": %zu, "
                   "\"decode_s\": %.6f, \"decode_tok_s\": %.2f, \"peak_rss_bytes\": %zu, \"weight_bytes\": %zu, "
                   "\"finish_reason\": \"%s\"}\n",
                   r.prompt_tokens, r.prefill_s, r.prompt_tokens / r.prefill_s, r.ids.size(), r.decode_s,
                   decoded > 0 ? decoded / r.decode_s : 0.0, lathe::peak_rss_bytes(), m.weight_bytes_f32,
                   r.finish_reason.c_str());
    }
    return 0;
  };
}
LATHE_COMMAND("generate", "Continue a prompt (greedy or sampled)", setup);

}  // namespace
