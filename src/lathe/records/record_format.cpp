#include "lathe/records/record_format.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <utility>

#include <fmt/ranges.h>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/tokenizer/stop_tokens.h"
#include "lathe/tokenizer/tokenizer.h"

using nlohmann::json;
using nlohmann::ordered_json;

namespace lathe {

RecordEncoder::RecordEncoder(const Tokenizer& tok, ChatTemplate tmpl, ChatRenderOptions render, RecordFormatOptions opts)
    : tok_(tok), tmpl_(std::move(tmpl)), render_(std::move(render)), opts_(std::move(opts)) {
  render_.add_generation_prompt = false;
  render_.turn_spans = true;
  eos_ids_ = tok_.eos_ids();
  // End-of-turn markers of the template families count as "the model learned to stop".
  for (const char* t : end_of_turn_markers()) {
    int32_t id = tok_.token_to_id(t);
    if (id >= 0 && std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end()) eos_ids_.push_back(id);
  }
}

RecordEncoder RecordEncoder::for_model(const Tokenizer& tok, const std::string& model_path,
                                       const std::string& template_name, RecordFormatOptions opts) {
  ChatTemplateConfig cfg;
  try {
    cfg = chat_template_config_load(model_path);
  } catch (const Error&) {
    // A bare tokenizer.json has no config; the tokenizer's own tokens stand in below.
  }
  ChatRenderOptions ro;
  ro.bos_token = !cfg.bos_token.empty() ? cfg.bos_token : tok.bos_token();
  ro.eos_token = !cfg.eos_token.empty() ? cfg.eos_token : tok.eos_token();
  std::string source = cfg.source;
  if (!template_name.empty()) {
    const auto names = ChatTemplate::builtin_names();
    if (std::find(names.begin(), names.end(), template_name) != names.end())
      source = ChatTemplate::builtin_source(template_name);
    else if (std::filesystem::is_regular_file(template_name))
      source = read_file(template_name);
    else
      fail("record", "chat template \"{}\" is neither a built-in ({}) nor a file", template_name,
           fmt::format("{}", fmt::join(names, ", ")));
  } else if (source.empty()) {
    std::fprintf(stderr, "lathe: warning: %s has no chat template; conversations use the built-in chatml\n",
                 model_path.c_str());
    source = ChatTemplate::builtin_source("chatml");
  }
  return RecordEncoder(tok, ChatTemplate::parse(source), ro, std::move(opts));
}

void RecordEncoder::finish(EncodedRecord& e) const {
  e.full_length = e.input_ids.size();
  if (opts_.max_seq_length > 0 && e.input_ids.size() > size_t(opts_.max_seq_length)) {
    e.input_ids.resize(size_t(opts_.max_seq_length));
    e.labels.resize(size_t(opts_.max_seq_length));
    e.truncated = true;
  }
  for (size_t t = e.labels.size(); t-- > 1;)
    if (carries_loss(e.labels[t])) {
      e.ends_with_eos = std::find(eos_ids_.begin(), eos_ids_.end(), e.labels[t]) != eos_ids_.end();
      break;
    }
}

EncodedRecord RecordEncoder::encode(const json& r) const {
  const RecordShape shape = detect_record_shape(r);
  EncodedRecord e;
  switch (shape) {
    case RecordShape::Unknown:
      if (!r.is_object()) throw RecordError(fmt::format("expected a JSON object, got {}", r.type_name()));
      throw RecordError("no known record shape (messages, conversations, instruction/output, prompt/completion, "
                        "question/answer, text, input_ids)");
    case RecordShape::Preference: {
      const PreferenceShape ps = preference_shape_of(r);
      throw RecordError(fmt::format("a preference record ({}) is not an SFT record: train it with {}", preference_shape_name(ps),
                                    is_paired(ps) ? "--method dpo or orpo" : "--method kto"));
    }
    case RecordShape::PreTokenized: {
      TokenizedRecord t = read_pretokenized(r);
      e.input_ids = std::move(t.input_ids);
      e.labels = std::move(t.labels);
      break;
    }
    case RecordShape::Text: {
      if (!r["text"].is_string())
        throw RecordError(fmt::format("text record: \"text\" must be a string, got {}", r["text"].type_name()));
      e.text = r["text"].get<std::string>();
      e.input_ids = tok_.encode(e.text, true);
      if (tok_.eos_id() >= 0 && (e.input_ids.empty() || e.input_ids.back() != tok_.eos_id()))
        e.input_ids.push_back(tok_.eos_id());
      if (e.input_ids.empty()) throw RecordError("\"text\" encodes to no tokens");
      e.labels = e.input_ids;
      break;
    }
    default:
      return encode_messages(record_to_messages(r, shape));
  }
  finish(e);
  return e;
}

EncodedRecord RecordEncoder::encode(json&& r) const {
  const RecordShape shape = detect_record_shape(r);
  if (is_conversation(shape)) return encode_messages(record_to_messages(std::move(r), shape));
  return encode(std::as_const(r));  // text, pre-tokenized, or an error: nothing to move
}

EncodedRecord RecordEncoder::encode_messages(const ordered_json& messages_in) const {
  if (opts_.system_prompt.empty()) return encode_rendered(messages_in);
  ordered_json messages = messages_in;
  add_system_prompt(messages, opts_.system_prompt);
  return encode_rendered(messages);
}

EncodedRecord RecordEncoder::encode_messages(ordered_json&& messages) const {
  add_system_prompt(messages, opts_.system_prompt);
  return encode_rendered(messages);
}

EncodedRecord RecordEncoder::encode_rendered(const ordered_json& messages) const {
  ChatRender rendered = tmpl_.render(messages, render_);
  EncodedRecord e;
  e.text = std::move(rendered.text);
  EncodeMarks marks;
  e.input_ids = opts_.train_on_inputs ? tok_.encode(e.text, false) : tok_.encode(e.text, marks);
  if (e.input_ids.empty()) throw RecordError("the rendered conversation encodes to no tokens");
  e.labels.assign(e.input_ids.size(), kIgnoreIndex);
  if (opts_.train_on_inputs) {
    e.labels = e.input_ids;
  } else {
    // Token index of byte boundary b: how many leading tokens of the whole encoding the encoding of
    // text[0, b) reproduces (a token straddling b goes to the later segment). The marks let the
    // tokenizer encode only the segment b falls in (for ChatML: "assistant\n" after <|im_start|>, or
    // nothing at all right after <|im_end|>) instead of text[0, b).
    auto token_at = [&](size_t b) -> size_t { return tok_.tokens_reproduced(e.text, b, e.input_ids, marks); };
    for (const ChatMessageSpans& m : rendered.messages) {
      if (m.role != "assistant") continue;
      ChatSpan span;
      if (m.has_turn) span = m.turn;
      else if (m.has_content) span = m.content;
      else continue;
      const size_t a = token_at(span.begin), z = token_at(span.end);
      for (size_t t = a; t < z; t++) e.labels[t] = e.input_ids[t];
    }
  }
  finish(e);
  return e;
}

}  // namespace lathe
