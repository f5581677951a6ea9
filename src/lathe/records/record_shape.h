// What a training record is, before any tokenizer: its shape, its conversation, its prompt and its
// texts. The one definition data preparation, training, evaluation, tokenizer training and feedback
// export all use, so a record means the same thing in each of them.
//
// Shapes (detect_record_shape): {"messages":[{role,content}]}, ShareGPT {"conversations":[{from,value}]},
// Alpaca {"instruction","input"?,"output"}, {"prompt","completion"}, {"question","answer"}, {"text"},
// pre-tokenized {"input_ids","labels"?}. Every conversational shape maps to a list of messages.
// `lathe data prepare` stores the canonical form: {"messages"}, {"text"} or {"input_ids","labels"?}.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"

namespace lathe {

// A record that means nothing (no known shape, a field missing or of the wrong type). what() is
// "[record] " + detail(); callers that name the place themselves (file:line) can use detail().
class RecordError : public Error {
 public:
  explicit RecordError(const std::string& detail) : Error("[record] " + detail), detail_(detail) {}
  const std::string& detail() const { return detail_; }

 private:
  std::string detail_;
};

enum class RecordShape { Messages, ShareGPT, Alpaca, PromptCompletion, QuestionAnswer, Text, PreTokenized, Unknown };
const char* record_shape_name(RecordShape s);  // "messages", "sharegpt", "alpaca", ...
RecordShape detect_record_shape(const nlohmann::json& rec);
// Messages, ShareGPT, Alpaca, prompt/completion and question/answer: the shapes that map to messages.
bool is_conversation(RecordShape s);

// The conversation of a conversational record as [{"role","content"}, ...]: ShareGPT's from
// human/gpt/system map to user/assistant/system; Alpaca's user turn is instruction + "\n\n" + input
// (when input is non-empty); a top-level "system" string leads. A "prompt" that is itself a message
// list (TRL's conversational prompt/completion) is kept. Throws RecordError naming the field that is
// missing or of the wrong type. Messages keep any extra keys, value for value.
//   record_to_messages: ordered (what the chat template renders; built messages are {role, content}).
//   record_messages: the record is consumed (its strings move into the messages), for storage.
nlohmann::ordered_json record_to_messages(const nlohmann::json& rec, RecordShape shape);
nlohmann::json record_messages(nlohmann::json&& rec, RecordShape shape);
// Prepends {"role":"system","content":system} when `system` is non-empty and the conversation does
// not already start with a system message.
void add_system_prompt(nlohmann::json& messages, const std::string& system);
void add_system_prompt(nlohmann::ordered_json& messages, const std::string& system);

// The prompt side of a record as text, what an evaluation prompt must not leak into: every user
// turn of a conversation, the "text" of a text record, a bare {"prompt": string}. Nothing for
// pre-tokenized records (their prompt is token ids: prompt_token_ids in token_labels.h) or records
// of no known shape. Throws RecordError for a malformed conversation or text.
std::vector<std::string> record_prompts(const nlohmann::json& rec);

// Canonical records ({"messages"} / {"text"}, after `lathe data prepare`'s map stage):
// every text a record carries (message contents, then "text"), joined by '\n'; what cleaning,
// personal-data detection and dedup look at.
std::string record_text(const nlohmann::json& rec);
// The content of the last assistant turn ("" when none; the text itself for {"text"} records).
std::string record_answer(const nlohmann::json& rec);
// Applies `f` to every string a person wrote (message contents, "text"); used by clean and redact.
template <class F>
void for_each_text(nlohmann::json& rec, F&& f) {
  if (rec.contains("messages") && rec["messages"].is_array()) {
    for (auto& m : rec["messages"])
      if (m.is_object() && m.contains("content") && m["content"].is_string()) f(m["content"].get_ref<std::string&>());
  }
  if (rec.contains("text") && rec["text"].is_string()) f(rec["text"].get_ref<std::string&>());
}

// Tokenizer training: the string values of the text-bearing fields of one JSONL line of any shape
// (text, content, value, instruction, input, output, prompt, completion, question, answer),
// searched recursively (messages[].content included), appended to `out`. Throws RecordError
// "malformed JSON: ..." / "nesting deeper than N levels" (the caller adds file:line); nesting is
// capped at kMaxJsonDepth before the recursive walk.
void record_training_texts(std::string_view json_line, std::vector<std::string>& out);

// Records made from served completions (`lathe feedback export`): a chat request's messages (only
// role and content kept; role defaults to "user") followed by the assistant `reply`, or a text
// request as {"prompt","completion"}.
nlohmann::ordered_json chat_record(const nlohmann::json& request_messages, const std::string& reply);
nlohmann::ordered_json completion_record(const std::string& prompt, const std::string& reply);

}  // namespace lathe
