// Text → vector for dense retrieval: an encoder directory (model/encoder.h: BERT / XLM-RoBERTa, e.g.
// multilingual-e5, bge-m3) with its tokenizer.json and sentence-transformers settings.
//
// A text becomes: prefix + text (e5's "query: " / "passage: ", from config_sentence_transformers.json
// "prompts" or the options) → lathe's tokenizer with the post-processor's specials ([CLS] … [SEP],
// <s> … </s>), the text's tokens truncated so the whole fits max_tokens → encoder → pooled (cls or
// masked mean) → L2-normalized, so the dot product of two vectors is their cosine.
//
// Speed: tokenization runs in parallel over the texts (OpenMP); the forward packs a batch's sequences
// without padding, so sorting by length would save nothing, and parallelism is inside the GEMMs.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/model/encoder.h"

namespace lathe {
class Tokenizer;
}

namespace lathe::retrieval {

struct EmbedderOptions {
  // Unset: the directory's config_sentence_transformers.json prompts ("query", then "passage" or
  // "document"), else none. Set (even to ""): exactly this.
  std::optional<std::string> query_prefix, passage_prefix;
  std::string pooling = "auto";  // auto (the directory's sentence-transformers Pooling, else mean) | cls | mean
  bool normalize = true;         // L2-normalize (cosine = dot product)
  int max_tokens = 0;            // 0: sentence_bert_config.json max_seq_length, capped by the encoder's positions
  int batch_tokens = 4096;       // tokens per forward pass (bounds activation memory)
};

class Embedder {
 public:
  // DIR: an encoder directory as above. Throws lathe::Error naming the file at fault
  // ("[embedder] DIR/tokenizer.json: missing", "[encoder] DIR/config.json: ...").
  static std::unique_ptr<Embedder> load(const std::string& dir, const EmbedderOptions& o = {});
  ~Embedder();

  // One vector of dim() floats per text, in order. is_query picks the query or the passage prefix.
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts, bool is_query) const;
  // The ids embed() feeds the encoder (prefix, specials, truncation applied).
  std::vector<std::vector<int32_t>> token_ids(const std::vector<std::string>& texts, bool is_query) const;

  int dim() const { return encoder_.config().hidden_size; }
  // The directory's last path component, e.g. "multilingual-e5-small".
  std::string name() const;
  const std::string& dir() const { return dir_; }
  Pooling pooling() const { return pooling_.mode; }
  const std::string& query_prefix() const { return query_prefix_; }
  const std::string& passage_prefix() const { return passage_prefix_; }
  int max_tokens() const { return max_tokens_; }
  // What makes two embedders produce the same vectors: name, dim, pooling, normalize, prefixes,
  // max_tokens and a fingerprint of config.json, tokenizer.json and the weights (sizes plus sampled
  // bytes). An index stores it; a search with an embedder whose identity differs is refused.
  nlohmann::ordered_json identity() const;

 private:
  Embedder() = default;
  std::string dir_;
  Encoder encoder_;
  std::unique_ptr<Tokenizer> tok_;
  PoolingConfig pooling_;
  bool normalize_ = true;
  std::string query_prefix_, passage_prefix_;
  int max_tokens_ = 0, batch_tokens_ = 4096;
  std::string fingerprint_;
};

}  // namespace lathe::retrieval
