// Preference data as the trainer sees it: TRL's dataset shapes, tokenized and masked the way SFT
// records are (the chat template's assistant spans carry the loss), held in a TrainDataset so the
// epoch order, the resumable cursor and the counts are the SFT ones.
//
// Shapes (one JSONL record per line):
//   paired   {"prompt", "chosen", "rejected"}: strings or message lists (a string prompt is a user
//            turn, a string answer an assistant turn); TRL's implicit prompt {"chosen","rejected"}
//            (two whole conversations; their common leading messages are the prompt);
//            pre-tokenized {"prompt_input_ids","chosen_input_ids","rejected_input_ids"}.
//   unpaired {"prompt", "completion", "label": true|false} (KTO), pre-tokenized
//            {"prompt_input_ids","completion_input_ids","label"}.
// DPO and ORPO need paired records. KTO reads both: a pair becomes a desirable (chosen) and an
// undesirable (rejected) example, as TRL's unpairing does (per 1000 records: their chosen, then
// their rejected).
//
// A sequence longer than max_seq_length loses the end of its completion (counted); an example whose
// completion is cut away entirely, or has no token, is dropped with a warning that names its line,
// since it would carry no preference signal.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/train/dataset.h"
#include "lathe/train/preference.h"

namespace lathe {

class PreferenceData {
 public:
  // `method`: dpo | kto | orpo. Throws "[dataset] PATH:LINE: ..." naming the field of a bad record,
  // or a record of the other kind (an SFT record, or unpaired data for DPO/ORPO). A directory is a
  // prepared dataset (`lathe data prepare` on preference records): `split`'s records file.
  static PreferenceData load(const std::string& path, const std::string& method, int max_seq_length,
                             uint64_t seed, bool shuffle, const RecordEncoderFactory& encoder,
                             const std::string& split = "train");

  TrainDataset& examples() { return set_; }
  const TrainDataset& examples() const { return set_; }
  // The micro-batch of these example indices (as drawn by examples().next_batch).
  PreferenceBatch batch(const std::vector<size_t>& picks) const;

  int64_t records() const { return records_; }            // lines read
  int64_t truncated() const { return truncated_; }        // sequences cut to max_seq_length
  int64_t dropped() const { return dropped_; }            // examples without completion tokens
  int64_t desirable() const { return desirable_count_; }  // kto
  int64_t undesirable() const { return int64_t(set_.size()) - desirable_count_; }
  bool unpaired() const { return !desirable_.empty(); }

 private:
  TrainDataset set_;
  std::vector<uint8_t> desirable_;  // kto: per example
  int64_t records_ = 0, truncated_ = 0, dropped_ = 0, desirable_count_ = 0;
};

}  // namespace lathe
