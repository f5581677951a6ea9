// libFuzzer target for the tokenizer. The first input byte picks the mode:
//   even: the rest is tokenizer.json text -> from_json must succeed or throw lathe::Error, never crash;
//         a tokenizer that loads must encode and decode a fixed mixed text.
//   odd:  the rest is arbitrary bytes (invalid UTF-8 included) encoded with the project's tiny
//         tokenizers; decode and the stream decoder must not crash.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "lathe/core/error.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {
const lathe::Tokenizer* tiny(int which) {
  static std::unique_ptr<lathe::Tokenizer> t[2];
  if (!t[which]) {
    const char* name = which ? "/tests/data/tokenizer/tiny_spm" : "/tests/data/tokenizer/tiny_bytelevel";
    // The repository root comes from CMake (__FILE__ is relative under ccache's base_dir).
    std::string root = LATHE_SOURCE_DIR;
    t[which] = lathe::Tokenizer::load(root + name);
  }
  return t[which].get();
}

void exercise(const lathe::Tokenizer& tok, std::string_view text) {
  auto ids = tok.encode(text, true);
  std::string back = tok.decode(ids);
  lathe::StreamDecoder sd(tok);
  for (int32_t id : ids) sd.push(id);
  sd.flush();
  int32_t junk[] = {-1, 0, 1 << 30, tok.vocab_size()};
  tok.decode(junk);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) == 0) {
    try {
      auto tok = lathe::Tokenizer::from_json(rest, "fuzz");
      exercise(*tok, "Hello 안녕하세요 👍 123\n\t<s>");
    } catch (const lathe::Error&) {
    }
  } else {
    exercise(*tiny((data[0] >> 1) & 1), rest);
  }
  return 0;
}
