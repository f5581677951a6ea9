// model WordPiece of tokenizer.json (BERT, multilingual BERT, bge, e5-base): each word is cut greedily into
// the longest vocabulary entries from the left, pieces after the first carrying continuing_subword_prefix
// ("##"). As HF tokenizers: a word of more than max_input_chars_per_word characters, or one with any part
// that no entry covers, becomes the single unk_token.
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/json_int.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {
namespace {

using json = nlohmann::json;

class WordPiece : public Model {
 public:
  std::string prefix;
  int32_t unk_id = -1;
  size_t max_chars = 100;

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    if (word.empty()) return;
    if (utf8_length(word) > max_chars) {
      out.push_back(unk_id);
      return;
    }
    const size_t mark = out.size();
    thread_local std::string key;
    for (size_t start = 0; start < word.size();) {
      int32_t id = -1;
      size_t end = word.size();
      for (; end > start; end = utf8_char_start(word, end - 1, start)) {
        std::string_view sub = word.substr(start, end - start);
        if (start > 0) {
          key.assign(prefix).append(sub);
          id = find(key);
        } else {
          id = find(sub);
        }
        if (id >= 0) break;
      }
      if (id < 0) {
        out.resize(mark);
        out.push_back(unk_id);
        return;
      }
      out.push_back(id);
      start = end;
    }
  }
};

}  // namespace

std::unique_ptr<Model> make_wordpiece_from_json(const json& j, const std::string& origin) {
  auto m = std::make_unique<WordPiece>();
  set_model_vocab(*m, parse_vocab_object(j.at("vocab"), origin));
  auto str = [&](const char* k, const char* dflt) {
    if (!j.contains(k) || j[k].is_null()) return std::string(dflt);
    if (!j[k].is_string()) fail("tokenizer", "{}: model.{} must be a string", origin, k);
    return j[k].get<std::string>();
  };
  std::string unk = str("unk_token", "[UNK]");
  m->prefix = str("continuing_subword_prefix", "##");
  m->unk_id = m->find(unk);
  // HF loads such a file and fails on the first uncovered word; lathe refuses it up front, since an encode
  // in the middle of a batch has no way to report that.
  if (m->unk_id < 0) fail("tokenizer", "{}: model.unk_token '{}' is not in model.vocab", origin, unk);
  if (j.contains("max_input_chars_per_word") && !j["max_input_chars_per_word"].is_null()) {
    int64_t n;
    if (!json_to_int64(j["max_input_chars_per_word"], &n) || n < 0)
      fail("tokenizer", "{}: model.max_input_chars_per_word must be a non-negative integer, not {}", origin,
           j["max_input_chars_per_word"].dump());
    m->max_chars = size_t(n);
  }
  return m;
}

}  // namespace lathe::tok
