// What a training record is, before any tokenizer: its shape, its conversation, its prompt and its
// texts. The one definition data preparation, training, evaluation, tokenizer training and feedback
// export all use, so a record means the same thing in each of them.
//
// Shapes (detect_record_shape): {"messages":[{role,content}]}, ShareGPT {"conversations":[{from,value}]},
// Alpaca {"instruction","input"?,"output"}, {"prompt","completion"}, {"question","answer"}, {"text"},
// pre-tokenized {"input_ids","labels"?}. Every conversational shape maps to a list of messages.
// `lathe data prepare` stores the canonical form: {"messages"}, {"text"} or {"input_ids","labels"?}.
// Preference records (TRL's DPO/ORPO and KTO shapes, preference_shape_of below) are a shape of their
// own: detect_record_shape says Preference, and they are never read as SFT conversations.
#pragma once
#include <cstdint>
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

enum class RecordShape { Messages, ShareGPT, Alpaca, PromptCompletion, QuestionAnswer, Text, PreTokenized, Preference, Unknown };
const char* record_shape_name(RecordShape s);  // "messages", "sharegpt", "alpaca", ...
RecordShape detect_record_shape(const nlohmann::json& rec);
// Messages, ShareGPT, Alpaca, prompt/completion and question/answer: the shapes that map to messages
// (not Preference: a pair is not one conversation).
bool is_conversation(RecordShape s);

// The conversation of a conversational record as [{"role","content"}, ...]: ShareGPT's from
// human/gpt/system map to user/assistant/system; Alpaca's user turn is instruction + "\n\n" + input
// (when input is non-empty); a top-level "system" string leads. A "prompt" that is itself a message
// list (TRL's conversational prompt/completion) is kept. Throws RecordError naming the field that is
// missing or of the wrong type. Messages keep any extra keys, value for value.
//   record_to_messages: ordered (what the chat template renders; built messages are {role, content}).
//   record_messages: the record is consumed (its strings move into the messages), for storage.
nlohmann::ordered_json record_to_messages(const nlohmann::json& rec, RecordShape shape);
// The same, the record consumed (its strings move into the messages): what an encoder that does not
// need the record afterwards takes.
nlohmann::ordered_json record_to_messages(nlohmann::json&& rec, RecordShape shape);
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
// every text a record carries (message contents, then "text", then a preference record's prompt,
// chosen, rejected and completion), joined by '\n'; what cleaning, personal-data detection and dedup
// look at.
std::string record_text(const nlohmann::json& rec);
// The content of the last assistant turn ("" when none; the text itself for {"text"} records).
std::string record_answer(const nlohmann::json& rec);
// Applies `f` to every string a person wrote (message contents, "text", and a preference record's
// "prompt", "chosen", "rejected", "completion", strings or message lists); used by clean and redact.
// (One lookup per field, not contains() and then operator[]: clean and redact call this on every record.)
template <class F>
void for_each_text(nlohmann::json& rec, F&& f) {
  auto messages = [&](nlohmann::json& list) {
    for (auto& m : list) {
      if (!m.is_object()) continue;
      const auto c = m.find("content");
      if (c != m.end() && c->is_string()) f(c->get_ref<std::string&>());
    }
  };
  if (!rec.is_object()) return;
  if (const auto ms = rec.find("messages"); ms != rec.end() && ms->is_array()) messages(*ms);
  if (const auto t = rec.find("text"); t != rec.end() && t->is_string()) f(t->get_ref<std::string&>());
  for (const char* k : {"prompt", "chosen", "rejected", "completion"}) {
    auto it = rec.find(k);
    if (it == rec.end()) continue;
    if (it->is_string()) f(it->get_ref<std::string&>());
    else if (it->is_array()) messages(*it);
  }
}

// Tokenizer training: the string values of the text-bearing fields of one JSONL line of any shape
// (text, content, value, instruction, input, output, prompt, completion, question, answer),
// searched recursively (messages[].content included), appended to `out`. Throws RecordError
// "malformed JSON: ..." / "nesting deeper than N levels" (the caller adds file:line); nesting is
// capped at kMaxJsonDepth before the recursive walk.
void record_training_texts(std::string_view json_line, std::vector<std::string>& out);

// Records made from served completions (`lathe feedback export`): a chat request's messages (only
// role and content kept; role defaults to "user") followed by the assistant `reply`, or a text
// request as {"prompt","completion"}. chat_prompt is the request's messages alone (the "prompt" of
// a preference record made from the completion).
nlohmann::ordered_json chat_prompt(const nlohmann::json& request_messages);
nlohmann::ordered_json chat_record(const nlohmann::json& request_messages, const std::string& reply);
nlohmann::ordered_json completion_record(const std::string& prompt, const std::string& reply);

// ---- Preference records (TRL's shapes) ----
//
//   Paired              {"prompt", "chosen", "rejected"}: all three strings, or all three message
//                       lists (TRL's conversational form: prompt = the turns up to the answer, chosen /
//                       rejected = the answer's turns, usually one assistant message).
//   PairedImplicit      {"chosen", "rejected"} without "prompt": two full conversations (or two texts)
//                       sharing a prefix, TRL's implicit prompt. The prompt is their longest common
//                       prefix: whole messages for lists; for strings, bytes cut back to a character
//                       boundary, and a space just before the cut goes to the answers (TRL's rule).
//                       Both answers must be non-empty after the split.
//   Unpaired            {"prompt", "completion", "label"}: KTO; strings or message lists; label true
//                       (desirable) / false (undesirable), 1/0 accepted. A "label" that is neither a
//                       boolean nor a number (a class name) leaves the record prompt/completion SFT.
//   PairedTokenized     {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids"}
//   UnpairedTokenized   {"prompt_input_ids", "completion_input_ids", "label"}
// Recognised by their fields: "chosen" or "rejected" makes a record paired, "chosen_input_ids" /
// "rejected_input_ids" / "completion_input_ids" tokenized, so a record with a field missing is still
// a preference record and its conversion names what is missing. Other fields are ignored.
enum class PreferenceShape { None, Paired, PairedImplicit, Unpaired, PairedTokenized, UnpairedTokenized };
// "paired", "paired_implicit", "unpaired", "paired_tokenized", "unpaired_tokenized", "none".
const char* preference_shape_name(PreferenceShape s);
PreferenceShape preference_shape_of(const nlohmann::json& rec);
// Paired, PairedImplicit, PairedTokenized: chosen/rejected pairs (DPO, ORPO). The others are KTO's.
bool is_paired(PreferenceShape s);
bool is_tokenized(PreferenceShape s);

// A text preference record as messages, the prompt made explicit. Strings become one message each
// ({"role":"user"} for the prompt, {"role":"assistant"} for an answer), as lathe maps
// {"prompt","completion"} for SFT; `conversational` says whether the record gave message lists
// (TRL renders only those with the chat template, and tokenizes string records as plain text).
struct PreferenceMessages {
  nlohmann::ordered_json prompt = nlohmann::ordered_json::array();  // never empty
  nlohmann::ordered_json chosen = nlohmann::ordered_json::array();     // paired
  nlohmann::ordered_json rejected = nlohmann::ordered_json::array();   // paired
  nlohmann::ordered_json completion = nlohmann::ordered_json::array(); // unpaired
  bool label = false;                                                  // unpaired: desirable
  bool conversational = false;
};
// Throws RecordError naming the field for a missing or mistyped field, strings mixed with message
// lists, an empty answer list, or an implicit prompt that cannot be split off. Text shapes only
// (Paired, PairedImplicit, Unpaired); a tokenized shape or None throws.
PreferenceMessages preference_messages(const nlohmann::json& rec, PreferenceShape shape);

// A pre-tokenized preference record's ids (PairedTokenized, UnpairedTokenized); ids checked as
// read_token_ids does (token_labels.h). The prompt may be empty, an answer may not.
struct PreferenceTokens {
  std::vector<int32_t> prompt, chosen, rejected, completion;
  bool label = false;
};
PreferenceTokens preference_tokens(const nlohmann::json& rec, PreferenceShape shape);

// The record as `lathe data prepare` stores it: only the shape's fields, validated, an implicit
// prompt split off into "prompt" (so Paired), strings kept strings and message lists kept lists,
// "label" a boolean. Throws as preference_messages / preference_tokens do.
nlohmann::json preference_record(const nlohmann::json& rec, PreferenceShape shape);
// A stored preference record's texts: {prompt, chosen, rejected} or {prompt, completion}, message
// lists joined by '\n' (empty for tokenized records). What the cleaning filters and dedup key read.
struct PreferenceTexts {
  std::string prompt;
  std::vector<std::string> answers;  // chosen, rejected / completion
};
PreferenceTexts preference_texts(const nlohmann::json& rec);

}  // namespace lathe
