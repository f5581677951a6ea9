#include "lathe/train/dataset.h"

#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/formats/token_shard.h"
#include "lathe/records/record_format.h"

using nlohmann::json;

namespace lathe {

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
    if (detect_record_shape(j) == RecordShape::PreTokenized) {
      // Read without the tokenizer (pre-tokenized files need none); errors name the line, not "[record]".
      TokenizedRecord t;
      try {
        t = read_pretokenized(j);
      } catch (const RecordError& err) {
        fail("dataset", "{}: {}", where, err.detail());
      }
      ids = std::move(t.input_ids);
      labels = std::move(t.labels);
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
  const DatasetManifest m = read_dataset_manifest(dir);
  if (!m.preference.empty())
    fail("dataset", "{}: holds {} preference records; train them with --method dpo, kto or orpo",
         dataset_manifest_path(dir), m.preference);
  const DatasetSplit* sp = m.split(split);
  if (!sp) fail("dataset", "{}: no split \"{}\"", dataset_manifest_path(dir), split);
  if (sp->shards.empty())
    fail("dataset", "{}: split \"{}\" has no token shards (was it prepared without --model?)",
         dataset_manifest_path(dir), split);
  for (const std::string& name : sp->shards) {
    TokenShard shard = TokenShard::open(dataset_file(dir, name));
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
  d.finish();
  return d;
}

TrainDataset TrainDataset::from_examples(const std::string& path, std::vector<std::vector<Sequence>> examples,
                                         const std::vector<int>& lines, uint64_t seed, bool shuffle) {
  LATHE_CHECK(lines.size() == examples.size(), "from_examples: {} lines for {} examples", lines.size(),
              examples.size());
  TrainDataset d;
  d.path_ = path;
  d.seed_ = seed;
  d.shuffle_ = shuffle;
  for (size_t i = 0; i < examples.size(); i++) {
    for (Sequence& q : examples[i]) d.add_sequence(std::move(q.ids), std::move(q.labels), lines[i], 0);
    d.examples_.push_back(d.sequences());
  }
  if (d.size() == 0) fail("dataset", "{}: no examples", path);
  d.finish();
  return d;
}

void TrainDataset::finish() {
  for (size_t i = 0; i < size(); i++) {
    auto [a, z] = example_sequences(i);
    max_len_ = std::max(max_len_, int(offsets_[z] - offsets_[a]));
    if (label_tokens(i) == 0) no_loss_++;
  }
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
    n += int64_t(count_loss_labels(l, 1));
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
