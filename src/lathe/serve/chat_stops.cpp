#include "lathe/serve/chat_stops.h"

#include <algorithm>

#include "lathe/tokenizer/tokenizer.h"

namespace lathe::serve {
namespace {

// End-of-turn markers of common chat templates (ChatML/Qwen, Llama 3, Phi-3, Gemma, GPT-style,
// Llama 3 base, Llama 2/Mistral, Command R).
const char* const kEndOfTurnMarkers[] = {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                         "<|end_of_text|>", "</s>", "<|END_OF_TURN_TOKEN|>"};

}  // namespace

ChatStops chat_stops(const Tokenizer& tok, const std::string& template_source, int32_t config_eos) {
  ChatStops s;
  s.ids = tok.eos_ids();
  if (config_eos >= 0) s.ids.push_back(config_eos);
  for (const char* m : kEndOfTurnMarkers) {
    if (template_source.find(m) == std::string::npos) continue;
    std::vector<int32_t> ids = tok.encode(m, false);
    if (ids.size() == 1 && tok.is_special(ids[0])) s.ids.push_back(ids[0]);
    else s.texts.push_back(m);
  }
  std::sort(s.ids.begin(), s.ids.end());
  s.ids.erase(std::unique(s.ids.begin(), s.ids.end()), s.ids.end());
  return s;
}

}  // namespace lathe::serve
