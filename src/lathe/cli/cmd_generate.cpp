// lathe generate: continue a prompt with greedy decoding or sampling.
#include <algorithm>
#include <cstdio>

#include "lathe/cli/cli_util.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/sys.h"
#include "lathe/model/generate.h"
#include "lathe/peft/adapter.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {

struct Opts {
  std::string model, adapter, prompt_ids, prompt, stop_ids;
  lathe::GenerateParams gp;
  bool json = false, stats = false;
};

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  int& threads = lathe::cli::add_threads_option(app);
  auto& s = o->gp.sampling;
  app.add_option("--model", o->model, "HF model directory or .gguf file")->required();
  app.add_option("--adapter", o->adapter, "PEFT adapter directory (LoRA, QLoRA, prefix), applied without merging");
  auto* ids = app.add_option("--prompt-ids", o->prompt_ids, "Prompt as token ids: 1,2,3 (nothing is added)");
  auto* text = app.add_option("--prompt", o->prompt, "Prompt text (tokenized with the model's tokenizer)");
  ids->excludes(text);
  app.add_option("--max-new-tokens", o->gp.max_new_tokens,
                 "Tokens to generate (clamped, with a warning, so prompt + new tokens fit max_position_embeddings)")->capture_default_str();
  app.add_option("--temperature", s.temperature, "0 = greedy")->capture_default_str();
  app.add_option("--top-k", s.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  app.add_option("--top-p", s.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  app.add_option("--min-p", s.min_p, "Drop tokens below min_p x top probability (0 = off)")->capture_default_str();
  app.add_option("--repetition-penalty", s.repetition_penalty, "HF repetition penalty (1 = off)")->capture_default_str();
  app.add_option("--seed", s.seed, "Sampling seed")->capture_default_str();
  app.add_option("--stop-ids", o->stop_ids, "Stop after any of these ids: 2,3 (default: the model's eos)");
  app.add_flag("--json", o->json, "Print {\"ids\":[...],\"text\":...} (generated ids only)");
  app.add_flag("--stats", o->stats, "Print timing and memory as one JSON line on stderr");
  return [o, &threads] {
    lathe::cli::apply_threads(threads);
    lathe::Model m = lathe::Model::load(o->model);
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
    if (!o->stop_ids.empty())
      o->gp.stop_ids = lathe::cli::parse_id_list(o->stop_ids, "--stop-ids");
    else if (tok && !tok->eos_ids().empty())
      o->gp.stop_ids = tok->eos_ids();
    else if (m.config.eos_token_id >= 0)
      o->gp.stop_ids = {m.config.eos_token_id};
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
