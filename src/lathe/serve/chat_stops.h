// Where a chat answer ends: the tokenizer's EOS ids plus the end-of-turn markers the chat template
// writes (<|im_end|>, <|eot_id|>, <end_of_turn>, ...). A marker that is one special token of the
// vocabulary becomes a stop id; otherwise (a built-in template over a vocabulary without it) it
// becomes a stop string, so generation still ends at the end of the turn.
#pragma once
#include <cstdint>
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

// config_eos: the model config's eos_token_id (-1 when none).
ChatStops chat_stops(const Tokenizer& tok, const std::string& template_source, int32_t config_eos);

}  // namespace lathe::serve
