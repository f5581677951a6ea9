#include "lathe/train/dataset.h"

#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_int.h"
#include "lathe/core/json_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/token_shard.h"
#include "lathe/records/record_format.h"

using nlohmann::json;

namespace lathe {

namespace {

constexpr int32_t kIgnoreIndex = -100;  // HF/PyTorch CrossEntropyLoss ignore_index

std::vector<int32_t> int_array(const json& v, const char* field, const std::string& where, bool allow_ignore) {
  if (!v.is_array()) fail("dataset", "{}: \"{}\" must be an array of integers", where, field);
  std::vector<int32_t> out;
  out.reserve(v.size());
  for (size_t k = 0; k < v.size(); k++) {
    const json& x = v[k];
    // 64-bit read that refuses floats and unsigned values above INT64_MAX (get<int64_t>() turned
    // 2^64-100 into the ignore index -100), then the range check, then narrowing.
    int64_t t;
    if (!json_to_int64(x, &t)) fail("dataset", "{}: \"{}\"[{}] is {}", where, field, k, json_int_problem(x));
    if (!(t >= 0 && t <= INT32_MAX) && !(allow_ignore && t == kIgnoreIndex))
      fail("dataset", "{}: \"{}\"[{}] = {} is not a token id{}", where, field, k, t, allow_ignore ? " or -100" : "");
    out.push_back(int32_t(t));
  }
  return out;
}

}  // namespace

json DataCursor::to_json() const { return json{{"epoch", epoch}, {"position", position}}; }

DataCursor DataCursor::from_json(const json& j) {
  if (!j.is_object() || !j.contains("epoch") || !j.contains("position") || !j["epoch"].is_number_integer() ||
      !j["position"].is_number_integer())
    fail("dataset", "data cursor must be {{\"epoch\": int, \"position\": int}}, got {}", j.dump());
  DataCursor c{j["epoch"].get<int64_t>(), j["position"].get<int64_t>()};
  if (c.epoch < 0 || c.position < 0) fail("dataset", "data cursor has a negative field: {}", j.dump());
  return c;
}

void TrainDataset::add_sequence(std::vector<int32_t> ids, std::vector<int32_t> labels, int line, int max_seq_length) {
  if (max_seq_length > 0 && ids.size() > size_t(max_seq_length)) {
    ids.resize(size_t(max_seq_length));
    labels.resize(size_t(max_seq_length));
    truncated_++;
  }
  for (int32_t t : ids) max_id_ = std::max(max_id_, t);
  for (int32_t t : labels) max_id_ = std::max(max_id_, t);  // labels index the logits too (-100 never wins)
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  labels_.insert(labels_.end(), labels.begin(), labels.end());
  offsets_.push_back(ids_.size());
  lines_.push_back(line);
}

void TrainDataset::load_jsonl(const std::string& path, int max_seq_length, const RecordEncoderFactory& encoder) {
  // Bounded reads: a line over kMaxJsonlLineBytes or nested deeper than kMaxJsonDepth is an error
  // naming path:line (core/json_io.h), before any recursive code sees the value.
  JsonlReader in(path, "dataset");
  const RecordEncoder* enc = nullptr;
  json j;
  while (in.next(j)) {
    const int lineno = int(in.line());
    const std::string where = in.where();
    if (!j.is_object()) fail("dataset", "{}: expected a JSON object (a record)", where);
    std::vector<int32_t> ids, labels;
    if (j.contains("input_ids")) {
      ids = int_array(j["input_ids"], "input_ids", where, false);
      if (ids.empty()) fail("dataset", "{}: \"input_ids\" is empty", where);
      labels = ids;
      if (j.contains("labels") && !j["labels"].is_null()) {
        labels = int_array(j["labels"], "labels", where, true);
        if (labels.size() != ids.size())
          fail("dataset", "{}: \"labels\" has {} entries but \"input_ids\" has {}", where, labels.size(), ids.size());
      }
    } else {
      if (!encoder) fail("dataset", "{}: not pre-tokenized (no \"input_ids\") and no tokenizer to encode it", where);
      if (!enc) enc = &encoder();
      EncodedRecord e;
      try {
        e = enc->encode(j);
      } catch (const Error& err) {
        fail("dataset", "{}: {}", where, err.what());
      }
      ids = std::move(e.input_ids);
      labels = std::move(e.labels);
    }
    add_sequence(std::move(ids), std::move(labels), lineno, max_seq_length);
    examples_.push_back(sequences());
  }
}

void TrainDataset::load_prepared(const std::string& dir, const std::string& split, int max_seq_length) {
  const std::string mpath = dir + "/manifest.json";
  if (!std::filesystem::exists(mpath)) fail("dataset", "{}: a directory without manifest.json is not a prepared dataset", dir);
  json m = read_json_file_bounded(mpath, "dataset");
  if (!m.is_object() || m.value("format", "") != "lathe-dataset-v1")
    fail("dataset", "{}: \"format\" is not \"lathe-dataset-v1\"", mpath);
  if (!m.contains("splits") || !m["splits"].is_object() || !m["splits"].contains(split))
    fail("dataset", "{}: no split \"{}\"", mpath, split);
  const json& sp = m["splits"][split];
  if (!sp.contains("shards") || !sp["shards"].is_array() || sp["shards"].empty())
    fail("dataset", "{}: split \"{}\" has no token shards (was it prepared without --model?)", mpath, split);
  for (const json& sh : sp["shards"]) {
    if (!sh.is_string()) fail("dataset", "{}: split \"{}\": shard names must be strings", mpath, split);
    TokenShard shard = TokenShard::open(dir + "/" + sh.get<std::string>());
    const size_t first_seq = sequences();
    for (size_t q = 0; q < shard.sequences(); q++) {
      auto ids = shard.input_ids(q);
      auto lab = shard.labels(q);
      add_sequence({ids.begin(), ids.end()}, {lab.begin(), lab.end()}, 0, max_seq_length);
    }
    if (shard.packed()) {
      packed_ = true;
      for (size_t b = 0; b < shard.bins(); b++) examples_.push_back(first_seq + shard.bin(b).second);
    } else {
      for (size_t q = 0; q < shard.sequences(); q++) examples_.push_back(first_seq + q + 1);
    }
  }
}

TrainDataset TrainDataset::load(const std::string& path, int max_seq_length, uint64_t seed, bool shuffle,
                                const RecordEncoderFactory& encoder, const std::string& split) {
  TrainDataset d;
  d.path_ = path;
  d.seed_ = seed;
  d.shuffle_ = shuffle;
  if (std::filesystem::is_directory(path))
    d.load_prepared(path, split, max_seq_length);
  else
    d.load_jsonl(path, max_seq_length, encoder);
  if (d.size() == 0) fail("dataset", "{}: no examples", path);
  for (size_t i = 0; i < d.size(); i++) {
    auto [a, z] = d.example_sequences(i);
    d.max_len_ = std::max(d.max_len_, int(d.offsets_[z] - d.offsets_[a]));
    if (d.label_tokens(i) == 0) d.no_loss_++;
  }
  return d;
}

std::span<const int32_t> TrainDataset::input_ids(size_t i) const {
  return {ids_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]};
}

std::span<const int32_t> TrainDataset::labels(size_t i) const {
  return {labels_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]};
}

int64_t TrainDataset::label_tokens(size_t i) const {
  int64_t n = 0;
  auto [a, z] = example_sequences(i);
  for (size_t q = a; q < z; q++) {
    auto l = labels(q);
    for (size_t t = 1; t < l.size(); t++) n += l[t] != kIgnoreIndex;
  }
  return n;
}

int64_t TrainDataset::total_label_tokens(const std::vector<size_t>& batch) const {
  int64_t n = 0;
  for (size_t i : batch) n += label_tokens(i);
  return n;
}

int64_t TrainDataset::total_label_tokens() const {
  int64_t n = 0;
  for (size_t i = 0; i < size(); i++) n += label_tokens(i);
  return n;
}

std::vector<size_t> TrainDataset::epoch_order(int64_t epoch) const {
  std::vector<size_t> order(size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  if (!shuffle_) return order;
  Rng rng(seed_ + uint64_t(epoch));
  // Fisher-Yates from the back. The modulo's bias is below 2^-40 for any realistic size and, being
  // deterministic, costs nothing in reproducibility.
  for (size_t i = order.size(); i > 1; i--) {
    size_t j = size_t(rng.next_u64() % uint64_t(i));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

int64_t TrainDataset::batches_per_epoch(int n) const {
  LATHE_CHECK(n >= 1);
  return (int64_t(size()) + n - 1) / n;
}

std::vector<size_t> TrainDataset::next_batch(int n) {
  LATHE_CHECK(n >= 1, "batch size {}", n);
  if (order_epoch_ != cursor_.epoch) {
    order_ = epoch_order(cursor_.epoch);
    order_epoch_ = cursor_.epoch;
  }
  const size_t begin = size_t(cursor_.position);
  const size_t end = std::min(size(), begin + size_t(n));
  std::vector<size_t> batch(order_.begin() + long(begin), order_.begin() + long(end));
  cursor_.position = int64_t(end);
  if (end == size()) cursor_ = DataCursor{cursor_.epoch + 1, 0};
  return batch;
}

void TrainDataset::set_cursor(const DataCursor& c) {
  if (c.epoch < 0 || c.position < 0 || c.position >= int64_t(size()))
    fail("dataset", "{}: data cursor (epoch {}, position {}) is outside the {} examples (different data?)", path_,
         c.epoch, c.position, size());
  cursor_ = c;
}

}  // namespace lathe
