// The training set as the trainer sees it, held in one flat token array, with a deterministic epoch
// order and a resumable cursor. Sources:
//   - JSONL, one record per line: pre-tokenized {"input_ids": [...], "labels": [...]} (labels optional
//     = input_ids; -100 = no loss), or any shape RecordEncoder knows (messages, ShareGPT, Alpaca,
//     prompt/completion, question/answer, text), rendered with the chat template and masked;
//   - a prepared dataset directory (`lathe data prepare`): manifest.json + token shards of a split.
// A *sequence* is one tokenized record; an *example* is what the batcher draws: one sequence, or
// with packed shards a bin of sequences trained as one row that never attend to each other.
//
// Order: epoch e visits the examples in file order (shuffle off) or in a Fisher-Yates permutation
// drawn from Rng(seed + e) — a function of (seed, epoch) alone, so a resumed run that restores the
// cursor sees exactly the batches an uninterrupted run would.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe {

class RecordEncoder;
// Called at most once, when a record needs the tokenizer (raw text records); returns the encoder.
using RecordEncoderFactory = std::function<const RecordEncoder&()>;

// Where the next batch starts: example `position` of epoch `epoch`'s order.
struct DataCursor {
  int64_t epoch = 0;
  int64_t position = 0;
  nlohmann::json to_json() const;
  static DataCursor from_json(const nlohmann::json& j);  // throws "[dataset] ..." when malformed
  bool operator==(const DataCursor&) const = default;
};

class TrainDataset {
 public:
  // Reads `path`. Sequences longer than max_seq_length (<= 0: no limit) are cut to it and counted.
  // Blank lines are skipped. Throws "[dataset] PATH:LINE: ..." for malformed JSON, a missing or
  // empty input_ids, non-integer or negative ids, labels other than ids or -100, or labels whose
  // length differs from input_ids; "[dataset] PATH: no examples" for an empty file.
  // A directory is read as a prepared dataset: `split` of its manifest.json. Records that are not
  // pre-tokenized need `encoder` ("[dataset] PATH:LINE: ..." when it is absent or the record is bad).
  static TrainDataset load(const std::string& path, int max_seq_length, uint64_t seed = 42, bool shuffle = true,
                           const RecordEncoderFactory& encoder = nullptr, const std::string& split = "train");

  // Examples another loader built (preference data: a chosen and a rejected sequence per example),
  // with the order, cursor and counts of any dataset. `lines[i]` is example i's line in `path`.
  struct Sequence {
    std::vector<int32_t> ids, labels;
  };
  static TrainDataset from_examples(const std::string& path, std::vector<std::vector<Sequence>> examples,
                                    const std::vector<int>& lines, uint64_t seed, bool shuffle);

  size_t size() const { return examples_.size() - 1; }  // examples
  size_t sequences() const { return offsets_.size() - 1; }
  // Sequence s (for unpacked data, sequence i is example i).
  std::span<const int32_t> input_ids(size_t s) const;
  std::span<const int32_t> labels(size_t s) const;
  // Sequences of example i: [first, last).
  std::pair<size_t, size_t> example_sequences(size_t i) const { return {examples_[i], examples_[i + 1]}; }
  int line_number(size_t s) const { return lines_[s]; }  // 1-based line in the file (0 for shards)
  bool packed() const { return packed_; }

  int64_t truncated_count() const { return truncated_; }  // examples cut to max_seq_length
  int64_t no_loss_count() const { return no_loss_; }      // examples with no loss-carrying token
  int64_t total_tokens() const { return int64_t(ids_.size()); }  // after truncation
  int32_t max_token_id() const { return max_id_; }        // to check against the vocabulary
  int max_length() const { return max_len_; }             // longest example (bin) after truncation
  // Tokens that carry loss in example i / a batch: labels[t] != -100 for t >= 1 (the loss predicts
  // token t from position t-1, so labels[0] never counts, as in HF's shifted cross-entropy).
  int64_t label_tokens(size_t i) const;
  int64_t total_label_tokens(const std::vector<size_t>& batch) const;
  int64_t total_label_tokens() const;  // the whole set

  // The order of epoch `epoch` (example indices).
  std::vector<size_t> epoch_order(int64_t epoch) const;
  // Up to n example indices from the cursor, never crossing an epoch boundary: the last batch of an
  // epoch is short when size() % n != 0 (as a DataLoader with drop_last=False). The cursor then
  // moves to the next epoch's start, so cursor().epoch counts completed epochs.
  std::vector<size_t> next_batch(int n);
  // Batches per epoch with batch size n: ceil(size / n).
  int64_t batches_per_epoch(int n) const;
  const DataCursor& cursor() const { return cursor_; }
  void set_cursor(const DataCursor& c);  // throws when position is beyond the data

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<int32_t> ids_, labels_;  // all examples back to back
  std::vector<size_t> offsets_{0};     // sequence s = [offsets_[s], offsets_[s+1])
  std::vector<size_t> examples_{0};    // example i = sequences [examples_[i], examples_[i+1])
  std::vector<int> lines_;
  bool packed_ = false;
  int64_t truncated_ = 0, no_loss_ = 0;
  int32_t max_id_ = -1;
  int max_len_ = 0;
  uint64_t seed_ = 42;
  bool shuffle_ = true;
  DataCursor cursor_;
  void add_sequence(std::vector<int32_t> ids, std::vector<int32_t> labels, int line, int max_seq_length);
  void load_jsonl(const std::string& path, int max_seq_length, const RecordEncoderFactory& encoder);
  void load_prepared(const std::string& dir, const std::string& split, int max_seq_length);
  void finish();  // lengths and no-loss counts, once every example is in
  mutable int64_t order_epoch_ = -1;  // epoch whose order is cached in order_
  mutable std::vector<size_t> order_;
};

}  // namespace lathe
