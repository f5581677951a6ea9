// Where a chat answer ends: the tokenizer's EOS ids, the ids the model declares, plus the end-of-turn
// markers the chat template writes (<|im_end|>, <|eot_id|>, <end_of_turn>, [|endofturn|], ...). A
// marker that is one special token of the vocabulary becomes a stop id; otherwise (a built-in template
// over a vocabulary without it) it becomes a stop string, so generation still ends at the end of the
// turn. The rule itself is tokenizer/stop_tokens.h, shared with `generate` and `eval`.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lathe {
class Tokenizer;
}

namespace lathe::serve {

struct ChatStops {
  std::vector<int32_t> ids;        // sorted, unique
  std::vector<std::string> texts;  // markers that are not single tokens
};

// declared_eos: the ids the model declares (declared_eos_ids(): generation_config + config lists).
ChatStops chat_stops(const Tokenizer& tok, const std::string& template_source, std::span<const int32_t> declared_eos);
// config_eos: one declared id (-1 when none).
ChatStops chat_stops(const Tokenizer& tok, const std::string& template_source, int32_t config_eos);

}  // namespace lathe::serve
