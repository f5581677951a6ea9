// lathe tokenize --tokenizer PATH (--text TEXT | --file F) [--add-special-tokens] [--json]
// Prints the ids space-separated, or {"ids":[...],"tokens":[...]} on one line with --json.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {

struct Options {
  std::string tokenizer, text, file;
  bool add_special = false, json = false;
};

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--tokenizer", o->tokenizer, "tokenizer.json, model directory or .gguf file")->required();
  auto* text = app.add_option("--text", o->text, "Text to tokenize");
  auto* file = app.add_option("--file", o->file, "Read the text from this file");
  text->excludes(file);
  app.add_flag("--add-special-tokens", o->add_special, "Add the post-processor's special tokens (BOS, ...)");
  app.add_flag("--json", o->json, "Print {\"ids\":[...],\"tokens\":[...]} on one line");
  return [o, text, file] {
    if (text->count() == 0 && file->count() == 0) {
      std::fprintf(stderr, "lathe tokenize: give --text or --file\n");
      return 2;
    }
    try {
      auto tok = lathe::Tokenizer::load(o->tokenizer);
      std::string input = file->count() ? lathe::read_file(o->file) : o->text;
      size_t bad = 0;
      auto ids = tok->encode(input, o->add_special, &bad);
      if (bad) std::fprintf(stderr, "lathe tokenize: replaced %zu invalid UTF-8 sequence(s) with U+FFFD\n", bad);
      if (o->json) {
        nlohmann::json j;
        j["ids"] = ids;
        auto& toks = j["tokens"] = nlohmann::json::array();
        for (int32_t id : ids) toks.push_back(tok->id_to_token(id));
        std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        for (size_t i = 0; i < ids.size(); i++) std::printf(i ? " %d" : "%d", ids[i]);
        std::printf("\n");
      }
      return 0;
    } catch (const lathe::Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  };
}
LATHE_COMMAND("tokenize", "Encode text to token ids", setup);
}  // namespace
