// Training records → token ids and labels: rendering with the chat template and the loss mask. One
// place decides what a record means (record_shape.h, token_labels.h), so `lathe train` on raw JSONL,
// `lathe data prepare` and `lathe eval` produce the same tokens.
//
// All conversational shapes become messages (record_to_messages) and are rendered with the chat
// template; the loss mask comes from the template's assistant turn spans (end-of-turn token
// included, so the model learns to stop), or every token with train_on_inputs. {"text"} records are
// encoded with the tokenizer's special tokens plus EOS, every token carrying loss. Pre-tokenized
// records are read as they are (read_pretokenized).
//
// Tokens and spans: the rendered text is encoded once as a whole (what inference sees); a span
// boundary at byte b maps to the number of leading tokens of the whole encoding that the encoding of
// text[0, b) reproduces, so a token straddling a boundary belongs to the later segment.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/chat/chat_template.h"
#include "lathe/records/record_shape.h"
#include "lathe/records/token_labels.h"

namespace lathe {

class Tokenizer;

struct RecordFormatOptions {
  bool train_on_inputs = false;  // loss on every token, not only the assistant turns
  int max_seq_length = 0;        // <= 0: no limit; longer sequences are cut on the right
  std::string system_prompt;     // prepended as a system message when the record has none
};

struct EncodedRecord {
  std::vector<int32_t> input_ids, labels;  // labels: kIgnoreIndex = no loss
  size_t full_length = 0;                  // tokens before truncation
  bool truncated = false;
  bool ends_with_eos = false;              // the last loss token is an EOS / end-of-turn id
  std::string text;                        // the rendered text (empty for pre-tokenized records)
};

class RecordEncoder {
 public:
  // `tmpl` renders conversations; `render` carries bos/eos tokens and template extras.
  RecordEncoder(const Tokenizer& tok, ChatTemplate tmpl, ChatRenderOptions render, RecordFormatOptions opts);
  // For a model directory or GGUF: its tokenizer's chat template, or `template_name` (a built-in name
  // or a .jinja path) when given or when the model has none (falls back to chatml).
  static RecordEncoder for_model(const Tokenizer& tok, const std::string& model_path,
                                 const std::string& template_name, RecordFormatOptions opts);
  // Throws RecordError ("[record] ...") for a record of no known shape or a malformed one.
  EncodedRecord encode(const nlohmann::json& rec) const;
  // The same, the record consumed: a conversation's strings move into the messages instead of being
  // copied (the streaming `data prepare` encodes each record after writing its line).
  EncodedRecord encode(nlohmann::json&& rec) const;
  EncodedRecord encode_messages(const nlohmann::ordered_json& messages) const;
  // The same, taking the messages over (no copy of every content when a system prompt is added).
  EncodedRecord encode_messages(nlohmann::ordered_json&& messages) const;
  const ChatTemplate& chat_template() const { return tmpl_; }
  const RecordFormatOptions& options() const { return opts_; }

 private:
  void finish(EncodedRecord& e) const;  // truncation and the ends-with-EOS flag
  EncodedRecord encode_rendered(const nlohmann::ordered_json& messages) const;  // system prompt added
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  ChatRenderOptions render_;
  RecordFormatOptions opts_;
  std::vector<int32_t> eos_ids_;
};

}  // namespace lathe
