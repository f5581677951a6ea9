#include "lathe/tokenizer/gguf_tokenizer_write.h"

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/core/scope_exit.h"
#include "lathe/formats/gguf.h"
#include "lathe/tokenizer/loader_internal.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe {
namespace {

using json = nlohmann::json;

// Texts that exercise contractions, digit grouping, whitespace runs, newlines, punctuation,
// non-Latin scripts and bytes outside the vocabulary: a pre-tokenizer or score table that differs
// from the tokenizer.json almost always splits one of them differently.
const char* kProbes[] = {
    "Hello world! It's a test: don't we'll they've I'M",
    "  leading spaces and\ttabs\n\nnew lines\r\n  end  ",
    "Numbers 1 12 123 1234 12345 3.14159 and 2024-11-28",
    "Punctuation...!!! ??? (parens) [brackets] {braces} <tags> @#$%^&*_+=|\\~`",
    "Ünïcödé naïve café — “quotes” ‘single’ … ½ ² ℃",
    "한국어 문장입니다. 中文句子。日本語の文です。Русский текст. العربية",
    "emoji 🙂🚀👍🏽 and symbols ∑∫√∞≈",
    "once upon a time there was a little girl named Lily. She loved to play outside.",
    "x",
    " ",
    "",
};

bool contains_type(const json& j, const std::string& type, const char* list_key) {
  if (!j.is_object()) return false;
  if (j.value("type", "") == type) return true;
  if (j.contains(list_key) && j[list_key].is_array())
    for (auto& e : j[list_key])
      if (contains_type(e, type, list_key)) return true;
  return false;
}

// Whether the normalizer / pre-tokenizer puts '▁' before the first word (SentencePiece add_dummy_prefix).
bool spm_space_prefix(const json& tj) {
  std::function<bool(const json&)> walk = [&](const json& j) -> bool {
    if (!j.is_object()) return false;
    std::string type = j.value("type", "");
    if (type == "Prepend" && j.value("prepend", "") == "\xe2\x96\x81") return true;
    if (type == "Metaspace") {
      if (j.contains("prepend_scheme")) return j.value("prepend_scheme", "always") != "never";
      return j.value("add_prefix_space", true);
    }
    for (const char* k : {"normalizers", "pretokenizers"})
      if (j.contains(k) && j[k].is_array())
        for (auto& e : j[k])
          if (walk(e)) return true;
    return false;
  };
  return walk(tj.value("normalizer", json())) || walk(tj.value("pre_tokenizer", json()));
}

bool is_byte_token(const std::string& s) {
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' && isxdigit(uint8_t(s[3])) &&
         isxdigit(uint8_t(s[4]));
}

struct Vocab {
  std::string model;  // "gpt2" | "llama"
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;  // gpt2
  std::vector<float> scores;        // llama
  bool space_prefix = true;         // llama
};

Vocab read_vocab(const std::string& dir, const Tokenizer& t, int vocab_size) {
  std::string path = dir + "/tokenizer.json";
  json tj;
  JsonError err;
  if (!try_parse_json_bounded(read_file(path), tj, &err)) fail("export", "{}: not valid JSON: {}", path, err.message);
  const json& m = tj.at("model");
  if (m.value("type", "BPE") != "BPE")
    fail("export", "{}: model.type '{}' cannot be written as a GGUF vocabulary (BPE only)", path,
         m.value("type", ""));
  Vocab v;
  const bool byte_level = contains_type(tj.value("pre_tokenizer", json()), "ByteLevel", "pretokenizers") ||
                          contains_type(tj.value("decoder", json()), "ByteLevel", "decoders");
  const bool spm = !byte_level && (m.value("byte_fallback", false) ||
                                   contains_type(tj.value("pre_tokenizer", json()), "Metaspace", "pretokenizers") ||
                                   spm_space_prefix(tj));
  if (!byte_level && !spm)
    fail("export", "{}: neither a byte-level BPE nor a SentencePiece-style BPE tokenizer; GGUF (gpt2/llama) "
         "cannot describe it", path);
  v.model = byte_level ? "gpt2" : "llama";
  int n = std::max(vocab_size, t.vocab_size());
  if (t.vocab_size() > vocab_size)
    fail("export", "{}: the tokenizer has {} tokens but the model only {} embedding rows", path, t.vocab_size(),
         vocab_size);
  v.tokens.resize(n);
  v.types.assign(n, 1);
  std::map<std::string, int32_t> ids;
  for (auto& [tok, id] : m.at("vocab").items()) {
    int32_t i = id.get<int32_t>();
    if (i < 0 || i >= n) fail("export", "{}: model.vocab['{}'] = {} is outside the model's vocabulary", path, tok, i);
    v.tokens[i] = tok;
    ids[tok] = i;
  }
  for (auto& a : tj.value("added_tokens", json::array())) {
    int32_t i = a.at("id").get<int32_t>();
    if (i < 0 || i >= n) continue;
    v.tokens[i] = a.at("content").get<std::string>();
    v.types[i] = a.value("special", false) ? 3 : 4;
  }
  for (int i = 0; i < n; i++)
    if (v.tokens[i].empty()) v.tokens[i] = "[PAD" + std::to_string(i) + "]", v.types[i] = 5;
  std::vector<std::pair<std::string, std::string>> merges;
  for (auto& mj : m.value("merges", json::array())) {
    if (mj.is_string()) {
      const std::string& s = mj.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos) fail("export", "{}: model.merges: '{}' is not 'a b'", path, s);
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      merges.emplace_back(mj.at(0).get<std::string>(), mj.at(1).get<std::string>());
    }
  }
  if (v.model == "gpt2") {
    for (auto& [a, b] : merges) {
      if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
        fail("export", "{}: merge '{}' + '{}' holds a space, which GGUF's 'a b' merges cannot encode", path, a, b);
      v.merges.push_back(a + " " + b);
    }
    return v;
  }
  // SentencePiece merges by the score of the merged piece; HF's converted merges are in that order,
  // so the rank of the first merge producing a token gives its score. Other pieces never result
  // from a merge and rank below all merged ones.
  v.space_prefix = spm_space_prefix(tj);
  v.scores.assign(n, -1e9f);
  for (size_t r = merges.size(); r-- > 0;) {
    auto it = ids.find(merges[r].first + merges[r].second);
    if (it != ids.end()) v.scores[it->second] = -float(r);
  }
  for (int i = 0; i < n; i++) {
    if (v.types[i] == 1 && is_byte_token(v.tokens[i])) v.types[i] = 6;
    if (i == t.unk_id()) v.types[i] = 2;
  }
  return v;
}

void set_tokenizer_keys(const Vocab& v, const std::string& pre, const Tokenizer& t, GgufWriter& w) {
  w.set_string("tokenizer.ggml.model", v.model);
  if (v.model == "gpt2") w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  w.set_i32_array("tokenizer.ggml.token_type", v.types);
  if (v.model == "gpt2") w.set_string_array("tokenizer.ggml.merges", v.merges);
  if (v.model == "llama") {
    w.set_f32_array("tokenizer.ggml.scores", v.scores);
    w.set_bool("tokenizer.ggml.add_space_prefix", v.space_prefix);
  }
  if (t.bos_id() >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(t.bos_id()));
  if (t.eos_id() >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(t.eos_id()));
  if (t.unk_id() >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(t.unk_id()));
  if (t.pad_id() >= 0) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(t.pad_id()));
  for (int32_t id : t.eos_ids())
    if (id != t.eos_id()) {  // generation_config's extra stop token (Llama 3's <|eot_id|>)
      w.set_u32("tokenizer.ggml.eot_token_id", uint32_t(id));
      break;
    }
  const auto& p = t.pipeline();
  if (p.prefix_ids.size() > 1 || (p.prefix_ids.size() == 1 && p.prefix_ids[0] != t.bos_id()) ||
      p.suffix_ids.size() > 1 || (p.suffix_ids.size() == 1 && p.suffix_ids[0] != t.eos_id()))
    fail("export", "the tokenizer's post-processor adds tokens other than BOS/EOS; GGUF cannot describe it");
  w.set_bool("tokenizer.ggml.add_bos_token", !p.prefix_ids.empty());
  w.set_bool("tokenizer.ggml.add_eos_token", !p.suffix_ids.empty());
  if (!t.chat_template().empty()) w.set_string("tokenizer.chat_template", t.chat_template());
}

// Empty string when every probe encodes alike; otherwise the first differing text.
std::string first_mismatch(const Tokenizer& a, const Tokenizer& b) {
  for (const char* s : kProbes)
    for (bool special : {false, true})
      if (a.encode(s, special) != b.encode(s, special)) return s;
  return "";
}

// The vocabulary written alone to a temporary GGUF and loaded back by lathe's GGUF loader.
std::unique_ptr<Tokenizer> reload(const Vocab& v, const std::string& pre, const Tokenizer& t) {
  GgufWriter tw;
  tw.set_string("general.architecture", "llama");
  set_tokenizer_keys(v, pre, t, tw);
  std::string tmp = (std::filesystem::temp_directory_path() /
                     ("lathe-vocab-" + std::to_string(getpid()) + "-" + pre + ".gguf")).string();
  tw.write(tmp);
  // A load that fails still removes the file; its error, not the removal's, propagates.
  ScopeExit remove_on_error([&] {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
  });
  std::unique_ptr<Tokenizer> out = load_gguf_tokenizer(tmp);
  remove_on_error.dismiss();
  std::filesystem::remove(tmp);  // throws if the file cannot be removed
  return out;
}

}  // namespace

void add_tokenizer_to_gguf(const std::string& model_dir, int vocab_size, GgufWriter& w) {
  if (!file_exists(model_dir + "/tokenizer.json"))
    fail("export", "{}: no tokenizer.json; the GGUF needs a vocabulary (tokenizer.model-only models are not "
         "supported yet)", model_dir);
  std::unique_ptr<Tokenizer> t = Tokenizer::load(model_dir);
  Vocab v = read_vocab(model_dir, *t, vocab_size);
  // llama.cpp names pre-tokenizers instead of storing regexes; pick the first name whose regexes
  // (as lathe and llama.cpp implement them) reproduce the tokenizer.json on the probes.
  std::vector<std::string> candidates = {""};
  if (v.model == "gpt2")
    candidates = {"gpt-2", "llama-bpe", "qwen2", "smollm", "deepseek-llm", "deepseek-coder", "falcon", "default"};
  std::string why;
  for (const std::string& pre : candidates) {
    std::unique_ptr<Tokenizer> g = reload(v, pre, *t);
    std::string bad = first_mismatch(*t, *g);
    if (bad.empty()) {
      set_tokenizer_keys(v, pre, *t, w);
      return;
    }
    if (why.empty()) why = bad;
  }
  fail("export", "{}: no GGUF '{}' vocabulary reproduces this tokenizer (first differing probe: \"{}\")", model_dir,
       v.model, why);
}

void copy_gguf_tokenizer_keys(const std::string& gguf_path, GgufWriter& w) {
  GgufFile g = GgufFile::open(gguf_path);
  for (auto& [k, v] : g.metadata())
    if (k.rfind("tokenizer.", 0) == 0) w.set_value(k, v);
}

}  // namespace lathe
