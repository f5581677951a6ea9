#include "lathe/retrieval/embedder.h"

#include <xxhash.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_int.h"
#include "lathe/core/json_io.h"
#include "lathe/data/record.h"
#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe::retrieval {

namespace fs = std::filesystem;

namespace {

// xxh3 of a weight file's size and sampled bytes: 256 blocks of 64 KiB spread evenly (the whole file
// when smaller than that). A fine-tune changes every tensor, so the samples tell two checkpoints of one
// shape apart without reading gigabytes.
void hash_weights_file(XXH3_state_t* st, const std::string& path) {
  auto m = MappedFile::open(path);
  const uint64_t size = m->size();
  XXH3_64bits_update(st, &size, sizeof size);
  constexpr size_t kBlock = size_t(64) << 10, kBlocks = 256;
  if (size <= kBlock * kBlocks) {
    XXH3_64bits_update(st, m->data(), size);
    return;
  }
  for (size_t i = 0; i < kBlocks; i++) {
    const size_t off = size_t((size - kBlock) * i / (kBlocks - 1));
    XXH3_64bits_update(st, m->data() + off, kBlock);
  }
}

std::string fingerprint(const std::string& model_dir) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (const char* f : {"config.json", "tokenizer.json"}) {
    const std::string bytes = read_file(model_dir + "/" + f);
    XXH3_64bits_update(st, bytes.data(), bytes.size());
  }
  const std::string index = model_dir + "/model.safetensors.index.json";
  if (file_exists(index)) {
    std::set<std::string> shards;
    const nlohmann::json j = read_json_file_bounded(index, "embedder");
    if (j.contains("weight_map") && j["weight_map"].is_object())
      for (auto& [name, file] : j["weight_map"].items())
        if (file.is_string()) shards.insert(file.get<std::string>());
    for (auto& s : shards) hash_weights_file(st, model_dir + "/" + s);
  } else {
    hash_weights_file(st, model_dir + "/model.safetensors");
  }
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return data::hex64(h);
}

// sentence-transformers keeps the HF model in the Transformer module's folder ("" = DIR itself).
std::string transformer_dir(const std::string& dir) {
  const std::string modules = dir + "/modules.json";
  if (!file_exists(modules)) return dir;
  const nlohmann::json m = read_json_file_bounded(modules, "embedder");
  if (m.is_array())
    for (const auto& mod : m)
      if (mod.is_object() && mod.value("type", "").ends_with(".Transformer")) {
        const std::string p = mod.value("path", "");
        return p.empty() ? dir : dir + "/" + p;
      }
  return dir;
}

// config_sentence_transformers.json "prompts": {"query": ..., "passage" | "document": ...}.
void read_prompts(const std::string& dir, std::string* query, std::string* passage, bool want_query,
                  bool want_passage) {
  const std::string path = dir + "/config_sentence_transformers.json";
  if (!file_exists(path)) return;
  const nlohmann::json j = read_json_file_bounded(path, "embedder");
  if (!j.is_object() || !j.contains("prompts") || j["prompts"].is_null()) return;
  const nlohmann::json& p = j["prompts"];
  if (!p.is_object()) fail("embedder", "{}: prompts must be an object of name: text", path);
  auto text = [&](const char* key) -> std::optional<std::string> {
    if (!p.contains(key)) return std::nullopt;
    if (!p[key].is_string()) fail("embedder", "{}: prompts.{} must be a string", path, key);
    return p[key].get<std::string>();
  };
  if (want_query) *query = text("query").value_or("");
  if (want_passage) *passage = text("passage").value_or(text("document").value_or(""));
}

// sentence_bert_config.json max_seq_length (0 when absent).
int st_max_seq_length(const std::string& dir) {
  const std::string path = dir + "/sentence_bert_config.json";
  if (!file_exists(path)) return 0;
  const nlohmann::json j = read_json_file_bounded(path, "embedder");
  if (!j.is_object() || !j.contains("max_seq_length") || j["max_seq_length"].is_null()) return 0;
  int64_t v;
  if (!json_to_int64(j["max_seq_length"], &v) || v < 1 || v > (int64_t(1) << 24))
    fail("embedder", "{}: max_seq_length must be a positive integer, got {}", path, j["max_seq_length"].dump());
  return int(v);
}

}  // namespace

Embedder::~Embedder() = default;

std::unique_ptr<Embedder> Embedder::load(const std::string& dir, const EmbedderOptions& o) {
  if (!is_directory(dir)) fail("embedder", "{}: not a directory (an encoder model directory is needed)", dir);
  std::unique_ptr<Embedder> e(new Embedder());
  e->dir_ = dir;
  const std::string model_dir = transformer_dir(dir);
  const std::string tok_path = model_dir + "/tokenizer.json";
  if (!file_exists(tok_path))
    fail("embedder", "{}: missing (the encoder's tokenizer; lathe reads tokenizer.json only)", tok_path);
  e->encoder_ = Encoder::load(model_dir);
  e->tok_ = Tokenizer::load(model_dir);
  if (e->tok_->vocab_size() > e->encoder_.config().vocab_size)
    fail("embedder", "{}: {} tokens, but {}/config.json has vocab_size {}", tok_path, e->tok_->vocab_size(),
         model_dir, e->encoder_.config().vocab_size);

  PoolingConfig fallback;  // mean when the directory says nothing
  e->pooling_ = encoder_pooling_from_dir(dir, fallback);
  if (o.pooling != "auto") {
    e->pooling_.mode = pooling_from_name(o.pooling, "pooling");
    e->pooling_.source = "option";
  }
  e->normalize_ = o.normalize;

  read_prompts(dir, &e->query_prefix_, &e->passage_prefix_, !o.query_prefix, !o.passage_prefix);
  if (o.query_prefix) e->query_prefix_ = *o.query_prefix;
  if (o.passage_prefix) e->passage_prefix_ = *o.passage_prefix;

  const auto& pp = e->tok_->pipeline();
  const int specials = int(pp.prefix_ids.size() + pp.suffix_ids.size());
  int max = e->encoder_.config().max_tokens();
  if (int st = st_max_seq_length(dir); st > 0) max = std::min(max, st);
  if (o.max_tokens > 0) max = std::min(max, o.max_tokens);
  if (max <= specials)
    fail("embedder", "{}: max_tokens {} leaves no room for text after {} special tokens", dir, max, specials);
  e->max_tokens_ = max;
  e->batch_tokens_ = std::max(o.batch_tokens, 1);
  e->fingerprint_ = fingerprint(model_dir);
  return e;
}

std::string Embedder::name() const {
  fs::path p(dir_);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

nlohmann::ordered_json Embedder::identity() const {
  return {{"name", name()},
          {"dim", dim()},
          {"pooling", pooling_name(pooling_.mode)},
          {"normalize", normalize_},
          {"query_prefix", query_prefix_},
          {"passage_prefix", passage_prefix_},
          {"max_tokens", max_tokens_},
          {"fingerprint", fingerprint_}};
}

std::vector<std::vector<int32_t>> Embedder::token_ids(const std::vector<std::string>& texts, bool is_query) const {
  const std::string& prefix = is_query ? query_prefix_ : passage_prefix_;
  std::vector<std::string> prefixed;
  prefixed.reserve(texts.size());
  for (const auto& t : texts) prefixed.push_back(prefix + t);
  std::vector<std::vector<int32_t>> body = tok_->encode_batch(prefixed, false);
  const auto& pp = tok_->pipeline();
  // Like HF's truncation=True with max_length: the text's tokens are cut at the end, the specials kept.
  const size_t budget = size_t(max_tokens_) - pp.prefix_ids.size() - pp.suffix_ids.size();
  std::vector<std::vector<int32_t>> out(texts.size());
  for (size_t i = 0; i < texts.size(); i++) {
    if (body[i].size() > budget) body[i].resize(budget);
    out[i] = pp.prefix_ids;
    out[i].insert(out[i].end(), body[i].begin(), body[i].end());
    out[i].insert(out[i].end(), pp.suffix_ids.begin(), pp.suffix_ids.end());
    if (out[i].empty())
      fail("embedder", "{}: text {} gives no tokens (empty text and a tokenizer without special tokens)", dir_, i);
  }
  return out;
}

std::vector<std::vector<float>> Embedder::embed(const std::vector<std::string>& texts, bool is_query) const {
  const std::vector<std::vector<int32_t>> ids = token_ids(texts, is_query);
  const int C = dim();
  std::vector<std::vector<float>> out(texts.size(), std::vector<float>(C));
  size_t i = 0;
  while (i < ids.size()) {
    // A batch: consecutive texts up to batch_tokens tokens (at least one).
    size_t j = i, tokens = 0;
    while (j < ids.size() && (j == i || tokens + ids[j].size() <= size_t(batch_tokens_))) tokens += ids[j++].size();
    const std::span<const std::vector<int32_t>> batch(ids.data() + i, j - i);
    const std::vector<float> hidden = encoder_.forward_packed(batch);
    size_t row = 0;
    for (size_t b = i; b < j; b++) {
      const int len = int(ids[b].size());
      encoder_pool(hidden.data() + row * C, &len, 1, len, C, pooling_.mode, normalize_, out[b].data());
      row += len;
    }
    i = j;
  }
  return out;
}

}  // namespace lathe::retrieval
