// OpenAI's wire format: request parsing/validation for /v1/chat/completions and /v1/completions,
// the error shape {"error":{"message","type","param","code"}}, and stop-string matching over
// streamed text. Everything a client can get wrong becomes an ApiError with the HTTP status.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lathe/model/sampling.h"
#include "lathe/serve/feedback_store.h"

namespace lathe::serve {

struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;
  ApiError(int status, std::string type, std::string code, std::string param, const std::string& message)
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
};

// 400 invalid_request_error naming `param`.
template <class... Args>
[[noreturn]] void bad_request(const std::string& param, fmt::format_string<Args...> f, Args&&... args) {
  throw ApiError(400, "invalid_request_error", "invalid_value", param, fmt::format(f, std::forward<Args>(args)...));
}

// {"error":{"message","type","param","code"}} (param/code null when empty).
std::string error_body(int status, const std::string& type, const std::string& code, const std::string& param,
                       const std::string& message);
std::string error_body(const ApiError& e);

struct CompletionRequest {
  bool chat = false;
  std::string model;
  nlohmann::ordered_json messages;  // chat: [{role, content (string)}] with content parts joined
  std::string prompt;               // text completions (string form)
  std::vector<int32_t> prompt_ids;  // text completions given as token ids
  SamplingParams sampling;
  bool seed_given = false;
  std::optional<int> max_tokens;
  std::string max_tokens_param = "max_tokens";  // the field it came from, for errors
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
  std::string user;
  std::optional<bool> rag;          // lathe's extra field: retrieve or not, over the model's setting
};

// A request body that must be a JSON object. Nesting is checked on the raw text before parsing
// (kMaxRequestJsonDepth), so a body of 100k '[' is a cheap 400, not a deep parse; malformed JSON, a value
// that is not an object, or too deep a body: ApiError(400).
nlohmann::json parse_json_object(const std::string& body);
// True when `text` opens more than `limit` arrays/objects at once (brackets inside strings do not count).
bool json_nesting_exceeds(const std::string& text, int limit);

// Throws ApiError(400) for malformed JSON, missing/mistyped fields or values out of range, and
// for lengths over the caps of limits.h (naming the field).
CompletionRequest parse_completion_request(const std::string& body, bool chat);

// POST /v1/feedback: {"completion_id", "rating", "correction"?, "comment"?, "tags"?}; `created`
// is left 0 and nothing is redacted. Throws ApiError(400) naming the field.
FeedbackRecord parse_feedback_request(const std::string& body);

// Cuts generated text at the first stop string. push() returns the text that can be shown now: it
// holds back a tail that could still grow into a stop string, so a streamed answer never shows the
// first characters of a stop string that is then removed.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  std::string push(const std::string& piece);
  std::string flush();  // the held tail, when generation ended without a stop string
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

// "chatcmpl-" / "cmpl-" + 24 random hex digits.
std::string new_completion_id(const char* prefix);

}  // namespace lathe::serve
