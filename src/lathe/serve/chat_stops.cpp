#include "lathe/serve/chat_stops.h"

#include "lathe/tokenizer/stop_tokens.h"

namespace lathe::serve {

ChatStops chat_stops(const Tokenizer& tok, const std::string& template_source, std::span<const int32_t> declared_eos) {
  StopTokens s = stop_tokens(tok, template_source, declared_eos);
  return {std::move(s.ids), std::move(s.texts)};
}

ChatStops chat_stops(const Tokenizer& tok, const std::string& template_source, int32_t config_eos) {
  const int32_t one[] = {config_eos};
  return chat_stops(tok, template_source, std::span<const int32_t>(one));
}

}  // namespace lathe::serve
