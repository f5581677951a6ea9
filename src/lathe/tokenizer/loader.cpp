// Loading: tokenizer.json (+ tokenizer_config.json and generation_config.json beside it), model
// directories, and GGUF files (gguf_vocab.cpp builds the pipeline from the GGUF vocabulary).
#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/core/json_int.h"
#include "lathe/tokenizer/loader_internal.h"
#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A token id from tokenizer JSON: 64-bit read, floats and huge values refused, then range-checked
// before narrowing (get<int32_t>() turned 5000000000 into 705032704). `what` names the field.
int32_t token_id(const json& v, const std::string& origin, const std::string& what) {
  int64_t id;
  if (!json_to_int64(v, &id)) fail("tokenizer", "{}: {}: id is {}", origin, what, json_int_problem(v));
  if (id < 0 || id > tok::kMaxTokenId)
    fail("tokenizer", "{}: {}: id {} is outside [0, {}]", origin, what, id, tok::kMaxTokenId);
  return int32_t(id);
}

// Post-processor -> ids added before/after a single sequence.
void parse_post_processor(tok::Pipeline& p, const json& j, const std::string& origin) {
  if (j.is_null()) return;
  std::string type = j.value("type", "");
  if (type == "TemplateProcessing") {
    p.has_post_processor = true;
    std::map<std::string, std::vector<int32_t>> specials;
    if (j.contains("special_tokens"))
      for (auto& [k, v] : j["special_tokens"].items()) {
        const json& ids = v.at("ids");
        if (!ids.is_array()) fail("tokenizer", "{}: post_processor.special_tokens['{}'].ids must be a list", origin, k);
        for (size_t i = 0; i < ids.size(); i++)
          specials[k].push_back(token_id(ids[i], origin, fmt::format("post_processor.special_tokens['{}'].ids[{}]", k, i)));
      }
    bool after = false;
    for (auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        after = true;
      } else if (item.contains("SpecialToken")) {
        std::string id = item["SpecialToken"].at("id");
        auto it = specials.find(id);
        if (it == specials.end())
          fail("tokenizer", "{}: post_processor: special token '{}' missing from special_tokens", origin, id);
        auto& dst = after ? p.suffix_ids : p.prefix_ids;
        dst.insert(dst.end(), it->second.begin(), it->second.end());
      }
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    p.has_post_processor = true;
    p.prefix_ids.push_back(token_id(j.at("cls").at(1), origin, "post_processor.cls"));
    p.suffix_ids.push_back(token_id(j.at("sep").at(1), origin, "post_processor.sep"));
  } else if (type == "Sequence") {
    for (auto& item : j.at("processors")) parse_post_processor(p, item, origin);
  } else if (type == "ByteLevel") {
    // Offsets only; ids are unchanged.
  } else {
    fail("tokenizer", "{}: post_processor: unsupported type '{}'", origin, type);
  }
}

std::string token_string(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

}  // namespace

// The one validation step of a loaded tokenizer (tokenizer.json, plus the side configs that add
// special ids): a non-empty vocabulary within kMaxTokenId, no id claimed by two different added
// tokens or by an added token and a different model.vocab entry, and every special / post-processor
// / eos id inside the vocabulary. Duplicate ids inside model.vocab and invalid pre-tokenizer regexes
// are caught where they are parsed (bpe.cpp, make_pre_tokenizer), with the same file in the error.
void validate_tokenizer(const Tokenizer& t, const std::string& origin) {
  const tok::Pipeline& p = t.pipeline();
  if (!p.model) fail("tokenizer", "{}: no tokenizer model", origin);
  const auto& vocab = p.model->vocab;
  if (std::none_of(vocab.begin(), vocab.end(), [](const std::string& s) { return !s.empty(); }))
    fail("tokenizer", "{}: the vocabulary is empty", origin);
  if (int64_t(p.vocab_size) - 1 > tok::kMaxTokenId)
    fail("tokenizer", "{}: vocabulary of {} ids is larger than the supported {}", origin, p.vocab_size, tok::kMaxTokenId + 1);
  std::unordered_map<int32_t, const std::string*> added_ids;
  for (const auto& a : p.added) {
    auto [it, fresh] = added_ids.emplace(a.id, &a.content);
    if (!fresh && *it->second != a.content)
      fail("tokenizer", "{}: added_tokens: id {} is used by both '{}' and '{}'", origin, a.id, *it->second, a.content);
    if (size_t(a.id) < vocab.size() && !vocab[size_t(a.id)].empty() && vocab[size_t(a.id)] != a.content)
      fail("tokenizer", "{}: added_tokens: id {} is '{}' but model.vocab has '{}' at that id", origin, a.id, a.content,
           vocab[size_t(a.id)]);
  }
  auto in_vocab = [&](int32_t id, const char* what) {
    if (id >= p.vocab_size)
      fail("tokenizer", "{}: {} id {} is outside the vocabulary [0, {})", origin, what, id, p.vocab_size);
  };
  for (int32_t id : p.prefix_ids) in_vocab(id, "post-processor prefix");
  for (int32_t id : p.suffix_ids) in_vocab(id, "post-processor suffix");
  in_vocab(t.bos_id(), "bos");
  in_vocab(t.pad_id(), "pad");
  in_vocab(t.unk_id(), "unk");
  for (int32_t id : t.eos_ids()) in_vocab(id, "eos");
}

std::unique_ptr<Tokenizer> TokenizerLoader::make() { return std::unique_ptr<Tokenizer>(new Tokenizer()); }

void TokenizerLoader::set_special(Tokenizer& t, int32_t bos, int32_t eos, int32_t pad, int32_t unk) {
  t.bos_id_ = bos;
  t.eos_id_ = eos;
  t.pad_id_ = pad;
  t.unk_id_ = unk;
}
void TokenizerLoader::set_chat_template(Tokenizer& t, std::string s) { t.chat_template_ = std::move(s); }
tok::Pipeline& TokenizerLoader::pipeline(Tokenizer& t) { return *t.p_; }

std::unique_ptr<Tokenizer> Tokenizer::from_json(std::string_view text, const std::string& origin) {
  return tokenizer_from_json(text, origin, true);
}

std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view text, const std::string& origin, bool allow_fast,
                                               bool* fast_used) {
  json j;
  // A BPE model's vocab and merges straight from the file where the fast reader can take them
  // (loader_fast.cpp); the rest of the document is the same nlohmann value either way.
  TokenizerJsonParts parts;
  if (!allow_fast || !read_tokenizer_json_fast(text, j, parts)) {
    parts = TokenizerJsonParts();
    try {
      j = json::parse(text);
    } catch (const std::exception& e) {
      fail("tokenizer", "{}: not valid JSON: {}", origin, e.what());
    }
  }
  if (fast_used) *fast_used = parts.bpe;
  if (!j.is_object() || !j.contains("model")) fail("tokenizer", "{}: missing field 'model'", origin);
  auto t = TokenizerLoader::make();
  tok::Pipeline& p = TokenizerLoader::pipeline(*t);
  auto set_unk = [&](int32_t unk) { TokenizerLoader::set_special(*t, t->bos_id(), t->eos_id(), t->pad_id(), unk); };
  try {
    p.normalizer = tok::make_normalizer(j.value("normalizer", json()), origin);
    p.pre_tokenizer = tok::make_pre_tokenizer(j.value("pre_tokenizer", json()), origin);
    const json& model = j["model"];
    const std::string type = model.is_object() ? model.value("type", "BPE") : "BPE";
    int32_t unigram_unk = -1;
    if (type == "Unigram") p.model = tok::make_unigram_from_json(model, origin, &unigram_unk);
    else if (type == "WordPiece") p.model = tok::make_wordpiece_from_json(model, origin);
    else if (parts.bpe) p.model = tok::make_bpe_from_parts(model, std::move(parts.vocab), parts.merges, origin);
    else p.model = tok::make_bpe_from_json(model, origin);
    set_unk(unigram_unk);
    p.decoder = tok::make_decoder(j.value("decoder", json()), origin);
    parse_post_processor(p, j.value("post_processor", json()), origin);
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (auto& a : j["added_tokens"]) {
        tok::AddedToken at;
        at.content = a.at("content").get<std::string>();
        at.id = token_id(a.at("id"), origin, fmt::format("added_tokens '{}'", at.content));
        at.special = a.value("special", false);
        at.lstrip = a.value("lstrip", false);
        at.rstrip = a.value("rstrip", false);
        at.normalized = a.value("normalized", !at.special);
        at.single_word = a.value("single_word", false);
        p.added.push_back(std::move(at));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer", "{}: malformed field: {}", origin, e.what());
  }
  p.index_added_tokens();
  p.vocab_size = int(p.model->vocab.size());
  for (auto& a : p.added) p.vocab_size = std::max(p.vocab_size, a.id + 1);
  std::string unk = j["model"].value("unk_token", json()).is_string() ? j["model"]["unk_token"].get<std::string>() : "";
  if (!unk.empty()) set_unk(t->token_to_id(unk));
  validate_tokenizer(*t, origin);
  return t;
}

// tokenizer_config.json and generation_config.json found in `dir` (both optional).
static void apply_side_configs(Tokenizer& t, const std::string& dir) {
  std::string cfg_path = dir + "/tokenizer_config.json";
  if (file_exists(cfg_path)) {
    const json c = read_json_file_bounded(cfg_path, "tokenizer");
    auto id_of = [&](const char* key, int32_t cur) {
      if (!c.contains(key)) return cur;
      std::string s = token_string(c[key]);
      if (s.empty()) return cur;
      int32_t id = t.token_to_id(s);
      return id >= 0 ? id : cur;
    };
    TokenizerLoader::set_special(t, id_of("bos_token", t.bos_id()), id_of("eos_token", t.eos_id()),
                                 id_of("pad_token", t.pad_id()), id_of("unk_token", t.unk_id()));
    tok::Pipeline& p = TokenizerLoader::pipeline(t);
    if (!p.has_post_processor) {
      if (c.value("add_bos_token", false) && t.bos_id() >= 0) p.prefix_ids = {t.bos_id()};
      if (c.value("add_eos_token", false) && t.eos_id() >= 0) p.suffix_ids = {t.eos_id()};
    }
    if (c.contains("chat_template")) {
      const json& ct = c["chat_template"];
      if (ct.is_string()) {
        TokenizerLoader::set_chat_template(t, ct.get<std::string>());
      } else if (ct.is_array()) {
        for (auto& e : ct)
          if (e.value("name", "") == "default") TokenizerLoader::set_chat_template(t, e.value("template", ""));
      }
    }
  }
  std::string gen_path = dir + "/generation_config.json";
  if (file_exists(gen_path)) {
    const json g = read_json_file_bounded(gen_path, "tokenizer");
    std::vector<int32_t> ids;
    if (g.contains("eos_token_id")) {
      const json& e = g["eos_token_id"];
      if (e.is_array()) {
        for (size_t i = 0; i < e.size(); i++) ids.push_back(token_id(e[i], gen_path, fmt::format("eos_token_id[{}]", i)));
      } else if (!e.is_null()) {
        ids.push_back(token_id(e, gen_path, "eos_token_id"));
      }
    }
    TokenizerLoader::add_eos_ids(t, ids);
    if (t.bos_id() < 0 && g.contains("bos_token_id") && !g["bos_token_id"].is_null())
      TokenizerLoader::set_special(t, token_id(g["bos_token_id"], gen_path, "bos_token_id"), t.eos_id(), t.pad_id(),
                                   t.unk_id());
    validate_tokenizer(t, gen_path);  // its ids must exist in the vocabulary
  }
}

void TokenizerLoader::add_eos_ids(Tokenizer& t, const std::vector<int32_t>& ids) {
  t.extra_eos_.insert(t.extra_eos_.end(), ids.begin(), ids.end());
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  if (!file_exists(path)) fail("tokenizer", "{}: no such file or directory", path);
  std::string json_path, dir;
  if (is_directory(path)) {
    dir = path;
    json_path = path + "/tokenizer.json";
    if (!file_exists(json_path)) {
      // A directory holding only a GGUF file is accepted too.
      for (auto& e : fs::directory_iterator(path))
        if (e.path().extension() == ".gguf") return load_gguf_tokenizer(e.path().string());
      if (file_exists(path + "/tokenizer.model")) return load_sentencepiece_model(path + "/tokenizer.model");
      fail("tokenizer", "{}: no tokenizer.json in this directory", path);
    }
  } else {
    if (fs::path(path).extension() == ".gguf") return load_gguf_tokenizer(path);
    if (fs::path(path).extension() == ".model") return load_sentencepiece_model(path);
    json_path = path;
    dir = fs::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
  }
  auto t = from_json(read_file(json_path), json_path);
  apply_side_configs(*t, dir);
  return t;
}

}  // namespace lathe
