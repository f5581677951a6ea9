// Loading: tokenizer.json (+ tokenizer_config.json and generation_config.json beside it), model
// directories, and GGUF files (gguf_vocab.cpp builds the pipeline from the GGUF vocabulary).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/tokenizer/loader_internal.h"
#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Post-processor -> ids added before/after a single sequence.
void parse_post_processor(tok::Pipeline& p, const json& j, const std::string& origin) {
  if (j.is_null()) return;
  std::string type = j.value("type", "");
  if (type == "TemplateProcessing") {
    p.has_post_processor = true;
    std::map<std::string, std::vector<int32_t>> specials;
    if (j.contains("special_tokens"))
      for (auto& [k, v] : j["special_tokens"].items()) specials[k] = v.at("ids").get<std::vector<int32_t>>();
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
    p.prefix_ids.push_back(j.at("cls").at(1).get<int32_t>());
    p.suffix_ids.push_back(j.at("sep").at(1).get<int32_t>());
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
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail("tokenizer", "{}: not valid JSON: {}", origin, e.what());
  }
  if (!j.is_object() || !j.contains("model")) fail("tokenizer", "{}: missing field 'model'", origin);
  auto t = TokenizerLoader::make();
  tok::Pipeline& p = *t->p_;
  try {
    p.normalizer = tok::make_normalizer(j.value("normalizer", json()), origin);
    p.pre_tokenizer = tok::make_pre_tokenizer(j.value("pre_tokenizer", json()), origin);
    p.model = tok::make_bpe_from_json(j["model"], origin);
    p.decoder = tok::make_decoder(j.value("decoder", json()), origin);
    parse_post_processor(p, j.value("post_processor", json()), origin);
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (auto& a : j["added_tokens"]) {
        tok::AddedToken at;
        at.id = a.at("id").get<int32_t>();
        at.content = a.at("content").get<std::string>();
        at.special = a.value("special", false);
        at.lstrip = a.value("lstrip", false);
        at.rstrip = a.value("rstrip", false);
        at.normalized = a.value("normalized", !at.special);
        at.single_word = a.value("single_word", false);
        if (at.id < 0 || at.id > 4'000'000)
          fail("tokenizer", "{}: added_tokens: id {} out of range for '{}'", origin, at.id, at.content);
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
  if (!unk.empty()) t->unk_id_ = t->token_to_id(unk);
  return t;
}

// tokenizer_config.json and generation_config.json found in `dir` (both optional).
static void apply_side_configs(Tokenizer& t, const std::string& dir) {
  std::string cfg_path = dir + "/tokenizer_config.json";
  if (file_exists(cfg_path)) {
    json c;
    try {
      c = json::parse(read_file(cfg_path));
    } catch (const nlohmann::json::exception& e) {
      fail("tokenizer", "{}: not valid JSON: {}", cfg_path, e.what());
    }
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
    json g;
    try {
      g = json::parse(read_file(gen_path));
    } catch (const nlohmann::json::exception& e) {
      fail("tokenizer", "{}: not valid JSON: {}", gen_path, e.what());
    }
    std::vector<int32_t> ids;
    if (g.contains("eos_token_id")) {
      const json& e = g["eos_token_id"];
      if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
      else if (e.is_array())
        for (auto& x : e)
          if (x.is_number_integer()) ids.push_back(x.get<int32_t>());
    }
    TokenizerLoader::add_eos_ids(t, ids);
    if (t.bos_id() < 0 && g.contains("bos_token_id") && g["bos_token_id"].is_number_integer())
      TokenizerLoader::set_special(t, g["bos_token_id"].get<int32_t>(), t.eos_id(), t.pad_id(), t.unk_id());
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
