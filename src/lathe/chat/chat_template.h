// Chat templates: render a conversation with a model's Jinja chat template exactly as transformers'
// apply_chat_template does, and report where each message landed in the text so the data pipeline
// can build loss masks from token offsets instead of searching the text for marker strings.
//
// Spans are byte offsets [begin, end) into the UTF-8 text.
//
// content span: the bytes that came verbatim from the message's `content` (tracked through the
//   evaluator, never searched for). Templates that trim the content (Llama 3's `| trim`, Gemma) give
//   the trimmed bytes. When a template emits parts of the content (Qwen3 splits "<think>..</think>"
//   off), `pieces` lists every run and `content` is the hull of the last emission; when the content is
//   emitted twice, the last emission wins. Content transformed by anything but slicing/stripping/
//   splitting/joining (e.g. `| upper`, `| tojson`, `.replace`) is not tracked.
//
// turn span (assistant messages only): what a model must generate for that turn, i.e. the tokens that
//   carry loss. It begins where the generation prompt of the conversation so far ends (the render of
//   messages[0..i) with add_generation_prompt=true, when that is a prefix of the text; otherwise at
//   the content start), so template text the model itself produces (Qwen3's "<think>\n\n</think>\n\n")
//   is inside. It ends right after the end-of-turn marker: at the last byte the template wrote while
//   its `for` loop was on this message (the evaluator tags output by the message dict being iterated,
//   however the template reached it: messages[1:], loop_messages, ...), minus trailing whitespace. Text
//   written after the loop (a generation prompt, a final eos) is not part of any turn. Templates that
//   do not loop over messages fall back to a prefix render: the template text that follows the content
//   when the conversation stops at this message, matched against the full text. So ChatML's span is
//   content + "<|im_end|>" (the newline after it is outside), Llama 3's content + "<|eot_id|>", Mistral v0.3's
//   " " + content + "</s>"; a template that writes nothing after the content ends the span there.
//   has_turn is false when neither the content nor the turn's end can be located.
//
// Cost: a render is 1 + 2 x (assistant messages) renders of prefixes of the conversation, but once a
// shape has been seen (chat_plan.h) each is a concatenation of literal text and contents, not an
// interpretation of the template.
#pragma once
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe {

namespace jinja {
struct Template;
}
class RenderPlanCache;
struct ChatPlanStats;

struct ChatSpan {
  size_t begin = 0, end = 0;
  bool operator==(const ChatSpan&) const = default;
};

struct ChatMessageSpans {
  std::string role;
  bool has_content = false;  // some content bytes appear in the text
  ChatSpan content;
  std::vector<ChatSpan> pieces;
  bool has_turn = false;  // assistant messages with a determinable turn
  ChatSpan turn;
};

struct ChatRender {
  std::string text;
  std::vector<ChatMessageSpans> messages;  // one per input message
  std::vector<ChatSpan> generation;        // output of {% generation %} blocks, in order
  nlohmann::ordered_json to_json() const;  // {"text", "messages": [{role, content, pieces, turn}], "generation"}
};

struct ChatRenderOptions {
  bool add_generation_prompt = false;
  std::string bos_token, eos_token;
  // Further template variables: tools, documents, date_string, enable_thinking, ... `tools` and
  // `documents` default to none, as transformers passes them.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  bool turn_spans = true;  // two extra renders per assistant message (from plans once the shape is seen)
  std::optional<std::time_t> now;  // for strftime_now(); current time when unset
  // Render conversations of an already seen shape from a plan (chat_plan.h): the same bytes and
  // spans as interpreting the template, without interpreting it. Off: always interpret.
  bool plans = true;
};

class ChatTemplate {
 public:
  // Throws lathe::Error "[chat-template] line L col C: ..." for syntax outside the supported subset.
  static ChatTemplate parse(const std::string& source);
  // Our own templates, chosen by name: "chatml", "llama3", "alpaca". Throws for other names.
  static ChatTemplate builtin(const std::string& name);
  static std::vector<std::string> builtin_names();
  static std::string builtin_source(const std::string& name);

  const std::string& source() const { return source_; }
  // messages: array of {role, content, ...}. Throws lathe::Error on template errors, including the
  // template's own raise_exception message.
  ChatRender render(const nlohmann::ordered_json& messages, const ChatRenderOptions& opts = {}) const;
  // Text only (no span bookkeeping renders).
  std::string render_text(const nlohmann::ordered_json& messages, const ChatRenderOptions& opts = {}) const;
  // Renders served by plans, probes and plans kept, over all copies of this template.
  ChatPlanStats plan_stats() const;

 private:
  std::string source_;
  std::shared_ptr<const jinja::Template> tpl_;
  std::shared_ptr<RenderPlanCache> plans_;  // shared by copies; thread-safe
};

// What a model ships for chat formatting.
struct ChatTemplateConfig {
  std::string source;  // empty when the model has no chat template
  std::string bos_token, eos_token;
};

// path: a tokenizer_config.json file, a model directory (chat_template.jinja if present, else
// tokenizer_config.json's chat_template: a string or a list of {name, template}), or a .gguf file
// (metadata tokenizer.chat_template). `name` picks from a list of named templates ("default" when
// empty). Throws "[chat-template] PATH: ..." when the file is missing or malformed.
ChatTemplateConfig chat_template_config_load(const std::string& path, const std::string& name = "");

}  // namespace lathe
