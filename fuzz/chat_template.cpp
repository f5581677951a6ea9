// Parses and renders arbitrary template bytes against a fixed conversation. Any lathe::Error is a
// correct answer; crashes, sanitizer reports, hangs and unbounded memory are bugs. The evaluator's
// RenderLimits (steps, call depth, string size) and the parser's nesting limit are what keep
// hostile templates bounded; they are tightened here so each input finishes quickly.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lathe/core/error.h"
#include "lathe/chat/jinja_eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace jj = lathe::jinja;
  static const jj::Dict globals = [] {
    auto msgs = nlohmann::ordered_json::parse(R"([
      {"role": "system", "content": "sys <|im_end|>"},
      {"role": "user", "content": "안녕 {{ x }}"},
      {"role": "assistant", "content": "<think>r</think>a", "tool_calls": [{"function": {"name": "f", "arguments": {"k": 1}}}]}])");
    jj::Dict g;
    jj::List l;
    for (size_t i = 0; i < msgs.size(); ++i) l.push_back(jj::Value::from_json(msgs[i], static_cast<int>(i)));
    g.emplace_back("messages", jj::Value::list(std::move(l)));
    g.emplace_back("add_generation_prompt", jj::Value::boolean(true));
    g.emplace_back("bos_token", jj::Value::string("<s>"));
    g.emplace_back("eos_token", jj::Value::string("</s>"));
    g.emplace_back("tools", jj::Value::none());
    return g;
  }();
  try {
    auto tpl = jj::jinja_parse(std::string_view(reinterpret_cast<const char*>(data), size));
    jj::RenderOptions o;
    o.limits.max_steps = 200000;
    o.limits.max_string = 1u << 20;
    o.limits.max_range = 10000;
    o.now = 0;
    jj::jinja_render(*tpl, globals, o);
  } catch (const lathe::Error&) {
  }
  return 0;
}
