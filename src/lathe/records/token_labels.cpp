#include "lathe/records/token_labels.h"

#include <algorithm>

#include "lathe/core/json_int.h"
#include "lathe/records/record_shape.h"

using nlohmann::json;

namespace lathe {

std::vector<int32_t> read_token_ids(const json& v, const char* field, bool allow_ignore) {
  if (!v.is_array()) throw RecordError(fmt::format("\"{}\" must be a list of integers", field));
  std::vector<int32_t> out;
  out.reserve(v.size());
  for (size_t k = 0; k < v.size(); k++) {
    // 64-bit read that refuses floats and unsigned values above INT64_MAX (get<int64_t>() turned
    // 2^64-100 into the ignore index), then the range check, then narrowing.
    int64_t t;
    if (!json_to_int64(v[k], &t)) throw RecordError(fmt::format("\"{}\"[{}] is {}", field, k, json_int_problem(v[k])));
    if (!(t >= 0 && t <= INT32_MAX) && !(allow_ignore && t == kIgnoreIndex))
      throw RecordError(fmt::format("\"{}\"[{}] = {} is not a token id{}", field, k, t,
                                    allow_ignore ? fmt::format(" or {}", kIgnoreIndex) : ""));
    out.push_back(int32_t(t));
  }
  return out;
}

TokenizedRecord read_pretokenized(const json& rec) {
  if (!rec.is_object() || !rec.contains("input_ids")) throw RecordError("a pre-tokenized record needs \"input_ids\"");
  TokenizedRecord r;
  r.input_ids = read_token_ids(rec["input_ids"], "input_ids", false);
  if (r.input_ids.empty()) throw RecordError("\"input_ids\" is empty");
  auto lab = rec.find("labels");
  r.has_labels = lab != rec.end() && !lab->is_null();
  if (r.has_labels) {
    r.labels = read_token_ids(*lab, "labels", true);
    if (r.labels.size() != r.input_ids.size())
      throw RecordError(fmt::format("\"labels\" has {} entries but \"input_ids\" has {}", r.labels.size(), r.input_ids.size()));
  } else {
    r.labels = r.input_ids;
  }
  return r;
}

void check_token_ids_in_vocab(std::span<const int32_t> ids, int64_t vocab_size, const char* field) {
  for (size_t i = 0; i < ids.size(); i++)
    if (ids[i] >= vocab_size)
      throw RecordError(fmt::format("\"{}\"[{}] = {} is not a token id of this tokenizer (vocabulary {})", field, i,
                                    ids[i], vocab_size));
}

std::vector<int32_t> prompt_token_ids(const TokenizedRecord& r) {
  if (!r.has_labels) return r.input_ids;
  std::vector<int32_t> out;
  for (size_t i = 0; i < r.input_ids.size(); i++)
    if (!carries_loss(r.labels[i])) out.push_back(r.input_ids[i]);
  return out;
}

size_t first_loss_index(std::span<const int32_t> labels) {
  return size_t(std::find_if(labels.begin(), labels.end(), carries_loss) - labels.begin());
}

size_t count_loss_labels(std::span<const int32_t> labels, size_t from) {
  size_t n = 0;
  for (size_t t = from; t < labels.size(); t++) n += carries_loss(labels[t]);
  return n;
}

}  // namespace lathe
