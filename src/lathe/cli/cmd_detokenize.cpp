// lathe detokenize --tokenizer PATH --ids 1,2,3 [--skip-special-tokens]: prints the decoded text.
#include <cstdio>
#include <cstdlib>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {

struct Options {
  std::string tokenizer, ids;
  bool skip_special = false;
};

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--tokenizer", o->tokenizer, "tokenizer.json, model directory or .gguf file")->required();
  app.add_option("--ids", o->ids, "Token ids, comma- or space-separated")->required();
  app.add_flag("--skip-special-tokens", o->skip_special, "Leave special tokens out of the text");
  return [o] {
    try {
      std::vector<int32_t> ids;
      const char* p = o->ids.c_str();
      while (*p) {
        if (*p == ',' || *p == ' ' || *p == '[' || *p == ']') {
          p++;
          continue;
        }
        char* end;
        long v = std::strtol(p, &end, 10);
        if (end == p) lathe::fail("detokenize", "--ids: '{}' is not a list of integers", o->ids);
        ids.push_back(int32_t(v));
        p = end;
      }
      auto tok = lathe::Tokenizer::load(o->tokenizer);
      std::string text = tok->decode(ids, o->skip_special);
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::printf("\n");
      return 0;
    } catch (const lathe::Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  };
}
LATHE_COMMAND("detokenize", "Decode token ids to text", setup);
}  // namespace
