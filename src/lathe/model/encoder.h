// A BERT-family text encoder (forward only, f32 on CPU) for dense retrieval: BERT (multilingual
// BERT, e5-small/-base English) and XLM-RoBERTa (multilingual-e5, bge-m3). The layout is
// Hugging Face's BertModel / XLMRobertaModel:
//
//   x = LayerNorm(word[id] + position[p] + token_type[0])              embeddings, post-LN
//   per layer:  a = Attention(x) (bidirectional, padding keys masked)   q/k/v/o with biases
//               x = LayerNorm(x + a · Wo^T + bo)
//               x = LayerNorm(x + gelu(x · Wi^T + bi) · Wout^T + bout)    exact (erf) GELU
//
// Positions: BERT counts from 0; RoBERTa / XLM-R count from pad_token_id + 1 (HF's
// create_position_ids_from_input_ids), so they fit max_position_embeddings - (pad_token_id + 1)
// tokens. Sequences are packed (no padding rows go through the GEMMs); attention runs per sequence
// over its own tokens, which is exactly HF's attention mask on the padded batch.
//
// Letters as in kernels/ref/ref.h: B sequences, T tokens, C hidden, H heads, D = C / H, F the
// intermediate width, V vocab, L layers.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/tensor.h"

namespace lathe {

enum class EncoderFamily { Bert, XlmRoberta };

struct EncoderConfig {
  std::string model_type;  // as in config.json: "bert", "xlm-roberta" or "roberta"
  EncoderFamily family = EncoderFamily::Bert;
  int vocab_size = 0;               // V
  int hidden_size = 0;              // C
  int num_hidden_layers = 0;        // L
  int num_attention_heads = 0;      // H
  int intermediate_size = 0;        // F
  int max_position_embeddings = 0;  // rows of the position table
  int type_vocab_size = 2;          // rows of the token-type table (only row 0 is used)
  float layer_norm_eps = 1e-12f;
  int pad_token_id = 0;

  // First position id: 0 (BERT) or pad_token_id + 1 (RoBERTa family).
  int position_offset() const { return family == EncoderFamily::XlmRoberta ? pad_token_id + 1 : 0; }
  // Longest sequence (special tokens included) the position table covers.
  int max_tokens() const { return max_position_embeddings - position_offset(); }
  int head_dim() const { return hidden_size / num_attention_heads; }
};

// Parses and validates an HF config.json object; `source` names the file in errors
// ("[encoder] DIR/config.json: hidden_act 'relu' is not supported (gelu)").
EncoderConfig encoder_config_from_json(const nlohmann::json& j, const std::string& source);

struct EncoderLayerWeights {
  Tensor wq, bq, wk, bk, wv, bv;  // [C, C], [C] each              attention.self.{query,key,value}
  Tensor wo, bo;                  // [C, C], [C]                    attention.output.dense
  Tensor ln1_w, ln1_b;            // [C], [C]                       attention.output.LayerNorm
  Tensor wi, bi;                  // [F, C], [F]                    intermediate.dense
  Tensor wout, bout;              // [C, F], [C]                    output.dense
  Tensor ln2_w, ln2_b;            // [C], [C]                       output.LayerNorm
};

struct EncoderWeights {
  Tensor word;        // [V, C]
  Tensor position;    // [max_position_embeddings, C]
  Tensor token_type;  // [type_vocab_size, C]
  Tensor ln_w, ln_b;  // [C], [C]  embeddings.LayerNorm
  std::vector<EncoderLayerWeights> layers;
};

enum class Pooling { Cls, Mean };

// How hidden states become one vector: sentence-transformers' Pooling module (1_Pooling/config.json)
// and whether a Normalize module follows it (modules.json).
struct PoolingConfig {
  Pooling mode = Pooling::Mean;
  bool normalize = false;
  std::string source;  // the file the mode came from, or "default"
};

const char* pooling_name(Pooling p);  // "cls" / "mean"
// "cls" / "mean"; throws "[encoder] <what>: unknown pooling 'x' (cls, mean)".
Pooling pooling_from_name(const std::string& name, const std::string& what);

// The pooling a sentence-transformers directory declares: modules.json names the Pooling module's
// folder (1_Pooling when there is no modules.json) and whether a Normalize module follows. When the
// directory declares nothing, `fallback` with source "default". Throws naming the file and key for a
// mode lathe does not implement (max, weighted mean, last token, several at once).
PoolingConfig encoder_pooling_from_dir(const std::string& dir, const PoolingConfig& fallback);

class Encoder {
 public:
  // DIR holds config.json and model.safetensors (or its sharded index). Tensor names may carry the
  // "bert." / "roberta." prefix of the task models or none (BertModel / XLMRobertaModel); F32, F16
  // and BF16 are converted to f32 once. Throws "[encoder] FILE: ..." naming the tensor or key.
  static Encoder load(const std::string& dir);

  const EncoderConfig& config() const { return config_; }
  const EncoderWeights& weights() const { return weights_; }
  const std::string& dir() const { return dir_; }

  // Last hidden states of sequences packed one after another: returns [sum of sizes, C], sequence
  // b's rows starting at the sum of the sizes before it. Every sequence holds 1..max_tokens() ids
  // in [0, V); a violation throws lathe::Error naming the sequence.
  std::vector<float> forward_packed(std::span<const std::vector<int32_t>> seqs) const;
  // A padded batch: ids [B, T] row-major, lengths[b] in [1, T] real tokens (the rest is padding,
  // ignored like HF's attention mask). Returns [B, T, C]; rows t >= lengths[b] are zero.
  std::vector<float> forward(const int32_t* ids, const int* lengths, int B, int T) const;

 private:
  EncoderConfig config_;
  EncoderWeights weights_;
  std::string dir_;
};

// Pools a padded batch hidden [B, T, C] (lengths[b] real rows each) into out [B, C]: the first
// token's row (cls) or the mean over the real rows (mean, sentence-transformers' masked mean);
// then, if `normalize`, each vector divided by its L2 norm (max with 1e-12, as torch's normalize).
void encoder_pool(const float* hidden, const int* lengths, int B, int T, int C, Pooling mode, bool normalize,
                  float* out);

}  // namespace lathe
