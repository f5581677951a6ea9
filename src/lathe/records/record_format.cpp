#include "lathe/records/record_format.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/ranges.h>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_int.h"
#include "lathe/tokenizer/tokenizer.h"

using nlohmann::json;
using nlohmann::ordered_json;

namespace lathe {

namespace {

constexpr int32_t kIgnore = -100;

bool has_string(const json& r, const char* k) { return r.contains(k) && r[k].is_string(); }

const std::string& need_string(const json& r, const char* k, const char* shape) {
  if (!r.contains(k)) fail("record", "{} record has no \"{}\"", shape, k);
  if (!r[k].is_string()) fail("record", "{} record: \"{}\" must be a string, got {}", shape, k, r[k].type_name());
  return r[k].get_ref<const std::string&>();
}

ordered_json message(const std::string& role, const std::string& content) {
  ordered_json m = ordered_json::object();
  m["role"] = role;
  m["content"] = content;
  return m;
}

// A list of {role, content} objects, validated; other keys are kept for templates that use them.
ordered_json checked_messages(const json& list, const char* field) {
  if (!list.is_array()) fail("record", "\"{}\" must be a list of messages, got {}", field, list.type_name());
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < list.size(); i++) {
    const json& m = list[i];
    if (!m.is_object()) fail("record", "\"{}\"[{}] must be an object with \"role\" and \"content\"", field, i);
    if (!has_string(m, "role")) fail("record", "\"{}\"[{}] has no string \"role\"", field, i);
    if (!m.contains("content") || !(m["content"].is_string() || m["content"].is_null()))
      fail("record", "\"{}\"[{}] has no string \"content\"", field, i);
    out.push_back(ordered_json::parse(m.dump()));
  }
  return out;
}

std::string sharegpt_role(const std::string& from, size_t i) {
  if (from == "human" || from == "user") return "user";
  if (from == "gpt" || from == "assistant" || from == "model" || from == "chatgpt" || from == "bard") return "assistant";
  if (from == "system") return "system";
  if (from == "tool" || from == "function" || from == "observation") return "tool";
  fail("record", "\"conversations\"[{}]: unknown speaker \"from\": \"{}\" (expected human/gpt/system)", i, from);
}

}  // namespace

const char* record_shape_name(RecordShape s) {
  switch (s) {
    case RecordShape::Messages: return "messages";
    case RecordShape::ShareGPT: return "sharegpt";
    case RecordShape::Alpaca: return "alpaca";
    case RecordShape::PromptCompletion: return "prompt_completion";
    case RecordShape::QuestionAnswer: return "question_answer";
    case RecordShape::Text: return "text";
    case RecordShape::PreTokenized: return "pretokenized";
    case RecordShape::Unknown: break;
  }
  return "unknown";
}

RecordShape detect_record_shape(const json& r) {
  if (!r.is_object()) return RecordShape::Unknown;
  if (r.contains("input_ids")) return RecordShape::PreTokenized;
  if (r.contains("messages")) return RecordShape::Messages;
  if (r.contains("conversations")) return RecordShape::ShareGPT;
  if (r.contains("instruction") && r.contains("output")) return RecordShape::Alpaca;
  if (r.contains("prompt") && r.contains("completion")) return RecordShape::PromptCompletion;
  if (r.contains("question") && r.contains("answer")) return RecordShape::QuestionAnswer;
  if (r.contains("text")) return RecordShape::Text;
  return RecordShape::Unknown;
}

ordered_json record_to_messages(const json& r, RecordShape shape) {
  ordered_json out = ordered_json::array();
  // A top-level "system" string (Alpaca variants, LLaMA-Factory) becomes the first message.
  const bool top_system = has_string(r, "system") && !r["system"].get_ref<const std::string&>().empty();
  if (top_system && shape != RecordShape::Messages && shape != RecordShape::ShareGPT)
    out.push_back(message("system", r["system"].get<std::string>()));
  switch (shape) {
    case RecordShape::Messages:
      out = checked_messages(r["messages"], "messages");
      break;
    case RecordShape::ShareGPT: {
      const json& c = r["conversations"];
      if (!c.is_array()) fail("record", "\"conversations\" must be a list, got {}", c.type_name());
      if (top_system) out.push_back(message("system", r["system"].get<std::string>()));
      for (size_t i = 0; i < c.size(); i++) {
        if (!c[i].is_object() || !has_string(c[i], "from") || !has_string(c[i], "value"))
          fail("record", "\"conversations\"[{}] must be {{\"from\": string, \"value\": string}}", i);
        out.push_back(message(sharegpt_role(c[i]["from"].get<std::string>(), i), c[i]["value"].get<std::string>()));
      }
      break;
    }
    case RecordShape::Alpaca: {
      std::string user = need_string(r, "instruction", "alpaca");
      if (r.contains("input") && !r["input"].is_null()) {
        const std::string& in = need_string(r, "input", "alpaca");
        if (!in.empty()) user += "\n\n" + in;
      }
      out.push_back(message("user", user));
      out.push_back(message("assistant", need_string(r, "output", "alpaca")));
      break;
    }
    case RecordShape::PromptCompletion: {
      // TRL's conversational form: prompt and completion are message lists.
      if (r["prompt"].is_array()) {
        for (auto& m : checked_messages(r["prompt"], "prompt")) out.push_back(m);
      } else {
        out.push_back(message("user", need_string(r, "prompt", "prompt/completion")));
      }
      if (r["completion"].is_array()) {
        for (auto& m : checked_messages(r["completion"], "completion")) out.push_back(m);
      } else {
        out.push_back(message("assistant", need_string(r, "completion", "prompt/completion")));
      }
      break;
    }
    case RecordShape::QuestionAnswer:
      out.push_back(message("user", need_string(r, "question", "question/answer")));
      out.push_back(message("assistant", need_string(r, "answer", "question/answer")));
      break;
    default:
      fail("record", "a {} record is not a conversation", record_shape_name(shape));
  }
  if (out.empty()) fail("record", "the conversation has no messages");
  return out;
}

RecordEncoder::RecordEncoder(const Tokenizer& tok, ChatTemplate tmpl, ChatRenderOptions render, RecordFormatOptions opts)
    : tok_(tok), tmpl_(std::move(tmpl)), render_(std::move(render)), opts_(std::move(opts)) {
  render_.add_generation_prompt = false;
  render_.turn_spans = true;
  eos_ids_ = tok_.eos_ids();
  // End-of-turn markers of common templates count as "the model learned to stop".
  for (const char* t : {"<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<end_of_turn>", "<|endoftext|>"}) {
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

namespace {

std::vector<int32_t> token_list(const json& v, const char* field, bool allow_ignore) {
  if (!v.is_array()) fail("record", "\"{}\" must be a list of integers", field);
  std::vector<int32_t> out;
  out.reserve(v.size());
  for (size_t k = 0; k < v.size(); k++) {
    int64_t t;  // 64-bit, floats and values above INT64_MAX refused, before the range check narrows
    if (!json_to_int64(v[k], &t)) fail("record", "\"{}\"[{}] is {}", field, k, json_int_problem(v[k]));
    if (!(t >= 0 && t <= INT32_MAX) && !(allow_ignore && t == kIgnore))
      fail("record", "\"{}\"[{}] = {} is not a token id{}", field, k, t, allow_ignore ? " or -100" : "");
    out.push_back(int32_t(t));
  }
  return out;
}

}  // namespace

void RecordEncoder::finish(EncodedRecord& e) const {
  e.full_length = e.input_ids.size();
  if (opts_.max_seq_length > 0 && e.input_ids.size() > size_t(opts_.max_seq_length)) {
    e.input_ids.resize(size_t(opts_.max_seq_length));
    e.labels.resize(size_t(opts_.max_seq_length));
    e.truncated = true;
  }
  for (size_t t = e.labels.size(); t-- > 1;)
    if (e.labels[t] != kIgnore) {
      e.ends_with_eos = std::find(eos_ids_.begin(), eos_ids_.end(), e.labels[t]) != eos_ids_.end();
      break;
    }
}

EncodedRecord RecordEncoder::encode(const json& r) const {
  const RecordShape shape = detect_record_shape(r);
  EncodedRecord e;
  switch (shape) {
    case RecordShape::Unknown:
      if (!r.is_object()) fail("record", "expected a JSON object, got {}", r.type_name());
      fail("record", "no known record shape (messages, conversations, instruction/output, prompt/completion, "
                     "question/answer, text, input_ids)");
    case RecordShape::PreTokenized: {
      e.input_ids = token_list(r["input_ids"], "input_ids", false);
      if (e.input_ids.empty()) fail("record", "\"input_ids\" is empty");
      e.labels = e.input_ids;
      if (r.contains("labels") && !r["labels"].is_null()) {
        e.labels = token_list(r["labels"], "labels", true);
        if (e.labels.size() != e.input_ids.size())
          fail("record", "\"labels\" has {} entries but \"input_ids\" has {}", e.labels.size(), e.input_ids.size());
      }
      break;
    }
    case RecordShape::Text: {
      e.text = need_string(r, "text", "text");
      e.input_ids = tok_.encode(e.text, true);
      if (tok_.eos_id() >= 0 && (e.input_ids.empty() || e.input_ids.back() != tok_.eos_id()))
        e.input_ids.push_back(tok_.eos_id());
      if (e.input_ids.empty()) fail("record", "\"text\" encodes to no tokens");
      e.labels = e.input_ids;
      break;
    }
    default:
      return encode_messages(record_to_messages(r, shape));
  }
  finish(e);
  return e;
}

EncodedRecord RecordEncoder::encode_messages(const ordered_json& messages_in) const {
  ordered_json messages = messages_in;
  if (!opts_.system_prompt.empty() && (messages.empty() || messages[0].value("role", "") != "system"))
    messages.insert(messages.begin(), message("system", opts_.system_prompt));
  ChatRender rendered = tmpl_.render(messages, render_);
  EncodedRecord e;
  e.text = std::move(rendered.text);
  e.input_ids = tok_.encode(e.text, false);
  if (e.input_ids.empty()) fail("record", "the rendered conversation encodes to no tokens");
  e.labels.assign(e.input_ids.size(), kIgnore);
  if (opts_.train_on_inputs) {
    e.labels = e.input_ids;
  } else {
    // Token index of byte boundary b: how many leading tokens of the whole encoding the encoding of
    // text[0, b) reproduces (a token straddling b goes to the later segment).
    auto token_at = [&](size_t b) -> size_t {
      if (b == 0) return 0;
      if (b >= e.text.size()) return e.input_ids.size();
      std::vector<int32_t> p = tok_.encode(std::string_view(e.text).substr(0, b), false);
      size_t k = 0;
      while (k < p.size() && k < e.input_ids.size() && p[k] == e.input_ids[k]) k++;
      return k;
    };
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
