// Token shards: the tokenized form of a prepared dataset, one safetensors file the trainer memory-maps.
//   input_ids    I32 [T]     all sequences back to back
//   labels       I32 [T]     same length; -100 = no loss (prompt tokens, padding)
//   seq_offsets  I64 [S+1]   sequence i = [seq_offsets[i], seq_offsets[i+1])
//   bin_offsets  I64 [B+1]   optional (packing): bin j = sequences [bin_offsets[j], bin_offsets[j+1]),
//                            trained as one row whose sequences never attend to each other
// The safetensors metadata holds {"format": "lathe-tokens-v1"} plus whatever the writer adds.
#pragma once
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lathe {

class SafetensorsFile;

class TokenShardWriter {
 public:
  // Appends one sequence (labels.size() must equal ids.size()).
  void add(std::span<const int32_t> ids, std::span<const int32_t> labels);
  // Room for `sequences` more sequences of `tokens` tokens in all (spares the copies of growing).
  void reserve(size_t sequences, size_t tokens);
  // Closes the current bin (packing); bins are written only when end_bin() was ever called, and
  // sequences added after the last end_bin() form a final bin.
  void end_bin();
  size_t sequences() const { return seq_offsets_.size() - 1; }
  size_t tokens() const { return ids_.size(); }
  // Writes atomically; `metadata` joins the format tag in the header.
  void write(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;

 private:
  std::vector<int32_t> ids_, labels_;
  std::vector<int64_t> seq_offsets_{0}, bin_offsets_{0};
  bool binned_ = false;
};

// A shard written without holding its tokens (the streaming `data prepare`): the sequence lengths
// (and bin sizes, packed) are known first, then fill(k, labels?, dst) writes sequence k's ids (exactly
// plan.lengths[k] of them, into the write buffer), then
// (in a second pass over k) its labels. The file equals TokenShardWriter's for the same sequences.
struct TokenShardPlan {
  std::vector<size_t> lengths;    // per sequence, in shard order
  bool packed = false;
  std::vector<size_t> bin_sizes;  // sequences per bin, in order (packed)
};
// Returns the XXH3-64 of the file's bytes (what hashing the file afterwards would give).
uint64_t write_token_shard_streamed(const std::string& path, const TokenShardPlan& plan,
                                    const std::map<std::string, std::string>& metadata,
                                    const std::function<void(size_t, bool, int32_t*)>& fill);

class TokenShard {
 public:
  // Validates shapes, dtypes, offsets (monotone, in range) and the format tag; throws
  // "[formats] PATH: ..." naming the offending tensor.
  static TokenShard open(const std::string& path);
  size_t sequences() const { return seq_offsets_.size() - 1; }
  size_t tokens() const { return ids_.size(); }
  std::span<const int32_t> input_ids(size_t i) const;
  std::span<const int32_t> labels(size_t i) const;
  bool packed() const { return !bin_offsets_.empty(); }
  size_t bins() const { return packed() ? bin_offsets_.size() - 1 : 0; }
  // Sequences of bin j: [first, last).
  std::pair<size_t, size_t> bin(size_t j) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<SafetensorsFile> file_;
  std::span<const int32_t> ids_, labels_;
  std::span<const int64_t> seq_offsets_, bin_offsets_;
};

}  // namespace lathe
