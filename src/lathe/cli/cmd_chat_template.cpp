// lathe chat-template: render a conversation with a model's chat template (or a built-in / file
// template) and print the text, or with --json the text and the spans the data pipeline uses for
// loss masks (chat_template.h defines them).
#include <cstdio>
#include <iostream>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/chat/chat_template.h"

namespace {

struct Opts {
  std::string model, messages, tmpl, name, vars;
  bool add_generation_prompt = false, json = false;
};

int run(const Opts& o) {
  try {
    lathe::ChatTemplateConfig cfg;
    if (!o.model.empty()) cfg = lathe::chat_template_config_load(o.model, o.name);
    std::string source = cfg.source;
    if (!o.tmpl.empty()) {
      auto names = lathe::ChatTemplate::builtin_names();
      bool builtin = std::find(names.begin(), names.end(), o.tmpl) != names.end();
      source = builtin ? lathe::ChatTemplate::builtin_source(o.tmpl) : lathe::read_file(o.tmpl);
    }
    if (source.empty())
      lathe::fail("chat-template", "{}: the model has no chat template; pass --template chatml|llama3|alpaca|FILE",
                  o.model.empty() ? std::string("(no --model)") : o.model);
    // Bounded parse: a value nested deeper than kMaxJsonDepth is refused with file:line before the
    // recursive conversion to template values sees it.
    nlohmann::ordered_json msgs = lathe::read_ordered_json_file_bounded(o.messages, "chat-template");
    // Accept a bare array or an object with "messages" (the OpenAI / dataset record shape).
    lathe::ChatRenderOptions ro;
    if (msgs.is_object()) {
      for (auto it = msgs.begin(); it != msgs.end(); ++it)
        if (it.key() != "messages") ro.extra[it.key()] = it.value();
      msgs = msgs.value("messages", nlohmann::ordered_json::array());
    }
    if (!o.vars.empty()) {
      auto vars = lathe::read_ordered_json_file_bounded(o.vars, "chat-template");
      if (!vars.is_object()) lathe::fail("chat-template", "{}: --vars must hold a JSON object", o.vars);
      for (auto it = vars.begin(); it != vars.end(); ++it) ro.extra[it.key()] = it.value();
    }
    ro.add_generation_prompt = o.add_generation_prompt;
    ro.bos_token = cfg.bos_token;
    ro.eos_token = cfg.eos_token;
    ro.turn_spans = o.json;
    lathe::ChatTemplate t = lathe::ChatTemplate::parse(source);
    if (o.json) {
      std::cout << t.render(msgs, ro).to_json().dump() << "\n";
    } else {
      std::cout << t.render_text(msgs, ro);
    }
    return 0;
  } catch (const lathe::Error& e) {
    std::fprintf(stderr, "lathe chat-template: %s\n", e.what());
    return 1;
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "lathe chat-template: [chat-template] %s\n", e.what());
    return 1;
  }
}

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "tokenizer_config.json, model directory, or .gguf file");
  app.add_option("--messages", o->messages, "JSON file: an array of {role, content} or {\"messages\": [...], ...}")
      ->required();
  app.add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the assistant turn header");
  app.add_option("--template", o->tmpl, "Built-in template (chatml, llama3, alpaca) or a Jinja file");
  app.add_option("--template-name", o->name, "Pick a named template from a chat_template list (e.g. tool_use)");
  app.add_option("--vars", o->vars, "JSON file with extra template variables (tools, date_string, ...)");
  app.add_flag("--json", o->json, "Print {text, messages: [{role, content, pieces, turn}], generation}");
  return [o] { return run(*o); };
}
LATHE_COMMAND("chat-template", "Render messages with a chat template; --json adds content and turn spans", setup);

}  // namespace
