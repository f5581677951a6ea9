// Token ids and loss labels of a record: reading and validating pre-tokenized records, checking ids
// against a vocabulary, and the loss-mask facts every consumer asks (does a sequence carry loss,
// where does it start, how many tokens carry it). Labels use kIgnoreIndex (-100) for "no loss",
// defined once in core/ignore_index.h for the layers below this one (token shards, the training
// graph) and used from here by data, train and eval.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/ignore_index.h"

namespace lathe {

// A pre-tokenized record {"input_ids": [...], "labels": [...]?}.
struct TokenizedRecord {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;  // = input_ids when the record has none
  bool has_labels = false;      // the record gave "labels" (not absent or null)
};

// The integers of `v` (field `field` of a record): each read as 64 bits (floats and values above
// INT64_MAX refused), then range-checked as a token id in [0, INT32_MAX], or kIgnoreIndex when
// `allow_ignore`. Throws RecordError naming the field and index.
std::vector<int32_t> read_token_ids(const nlohmann::json& v, const char* field, bool allow_ignore);
// Reads and validates a pre-tokenized record: non-empty input_ids, labels (optional, null = absent)
// of the same length holding token ids or kIgnoreIndex. Throws RecordError naming the field.
TokenizedRecord read_pretokenized(const nlohmann::json& rec);
// Throws RecordError when an id of `ids` (field `field`) is not below `vocab_size`.
void check_token_ids_in_vocab(std::span<const int32_t> ids, int64_t vocab_size, const char* field);

// The prompt of a pre-tokenized record: the ids whose label is kIgnoreIndex; every id when the record
// has no labels.
std::vector<int32_t> prompt_token_ids(const TokenizedRecord& r);

inline bool carries_loss(int32_t label) { return label != kIgnoreIndex; }
// Index of the first label that carries loss; labels.size() when none does.
size_t first_loss_index(std::span<const int32_t> labels);
inline bool has_loss(std::span<const int32_t> labels) { return first_loss_index(labels) < labels.size(); }
// Labels that carry loss among labels[from, end). Training counts from 1: the loss predicts token t
// from position t-1, so labels[0] never counts (Hugging Face's shifted cross-entropy).
size_t count_loss_labels(std::span<const int32_t> labels, size_t from = 0);

}  // namespace lathe
