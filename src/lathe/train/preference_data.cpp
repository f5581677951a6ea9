#include "lathe/train/preference_data.h"

#include <algorithm>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/ignore_index.h"
#include "lathe/core/json_io.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/records/record_format.h"
#include "lathe/records/record_shape.h"

using nlohmann::json;
using nlohmann::ordered_json;

namespace lathe {

namespace {

TrainDataset::Sequence join_tokens(const std::vector<int32_t>& prompt, const std::vector<int32_t>& answer) {
  TrainDataset::Sequence q;
  q.ids = prompt;
  q.ids.insert(q.ids.end(), answer.begin(), answer.end());
  q.labels.assign(prompt.size(), kIgnoreIndex);
  q.labels.insert(q.labels.end(), answer.begin(), answer.end());
  return q;
}

// One record as examples: a pair (chosen, rejected), or one unpaired completion with its label.
struct Parsed {
  std::vector<TrainDataset::Sequence> seqs;  // paired: chosen, rejected; unpaired: the completion
  bool paired = true, label = false;
};

// The record's meaning comes from records/record_shape.h (the same reading `lathe data prepare` and
// `lathe feedback export` use); only tokenizing happens here.
Parsed parse(const json& rec, const RecordEncoderFactory& encoder, const std::string& where) {
  Parsed p;
  if (!rec.is_object()) fail("dataset", "{}: expected a JSON object (a record)", where);
  const PreferenceShape shape = preference_shape_of(rec);
  if (shape == PreferenceShape::None)
    fail("dataset", "{}: not a preference record: expected {{\"prompt\",\"chosen\",\"rejected\"}}, "
         "{{\"prompt\",\"completion\",\"label\"}} or their *_input_ids forms", where);
  p.paired = is_paired(shape);
  try {
    if (is_tokenized(shape)) {
      PreferenceTokens t = preference_tokens(rec, shape);
      p.label = t.label;
      if (p.paired) {
        p.seqs.push_back(join_tokens(t.prompt, t.chosen));
        p.seqs.push_back(join_tokens(t.prompt, t.rejected));
      } else {
        p.seqs.push_back(join_tokens(t.prompt, t.completion));
      }
      return p;
    }
    PreferenceMessages m = preference_messages(rec, shape);
    p.label = m.label;
    if (!encoder) fail("dataset", "{}: not pre-tokenized and no tokenizer to encode it", where);
    auto encode = [&](const nlohmann::ordered_json& answer) {
      ordered_json conv = m.prompt;
      for (auto& x : answer) conv.push_back(x);
      EncodedRecord e = encoder().encode_messages(conv);
      return TrainDataset::Sequence{std::move(e.input_ids), std::move(e.labels)};
    };
    if (p.paired) {
      p.seqs.push_back(encode(m.chosen));
      p.seqs.push_back(encode(m.rejected));
    } else {
      p.seqs.push_back(encode(m.completion));
    }
  } catch (const RecordError& err) {
    fail("dataset", "{}: {}", where, err.detail());
  } catch (const Error& err) {
    if (std::string(err.what()).rfind("[dataset]", 0) == 0) throw;
    fail("dataset", "{}: {}", where, err.what());
  }
  return p;
}

int64_t loss_tokens(const TrainDataset::Sequence& q) {
  int64_t n = 0;
  for (size_t t = 1; t < q.labels.size(); t++) n += q.labels[t] != kIgnoreIndex;
  return n;
}

}  // namespace

PreferenceData PreferenceData::load(const std::string& path, const std::string& method, int max_seq_length,
                                    uint64_t seed, bool shuffle, const RecordEncoderFactory& encoder,
                                    const std::string& split) {
  // A prepared dataset directory (`lathe data prepare` on preference records): its train split's
  // records file (preference data keeps text, not token shards).
  if (std::filesystem::is_directory(path)) {
    const DatasetManifest m = read_dataset_manifest(path);
    if (m.preference.empty())
      fail("dataset", "{}: holds SFT records, not preference records (prepare a file of {{\"prompt\",\"chosen\","
           "\"rejected\"}} or {{\"prompt\",\"completion\",\"label\"}} records)", dataset_manifest_path(path));
    const DatasetSplit* sp = m.split(split);
    if (!sp || sp->records.empty())
      fail("dataset", "{}: no records for split \"{}\"", dataset_manifest_path(path), split);
    return load(dataset_file(path, sp->records), method, max_seq_length, seed, shuffle, encoder);
  }
  PreferenceData d;
  const bool kto = method == "kto";
  std::vector<std::vector<TrainDataset::Sequence>> examples;
  std::vector<int> lines;
  // TRL unpairs a paired dataset for KTO with a batched map (1000 rows a batch): each batch becomes its
  // chosen completions (desirable) followed by its rejected ones (undesirable). The same order here,
  // so that an unshuffled run sees TRL's examples in TRL's order.
  constexpr int64_t kUnpairBatch = 1000;
  struct Pending { TrainDataset::Sequence seq; int line; };
  std::vector<Pending> chosen, rejected;
  int64_t pending_batch = -1;
  auto flush_unpaired = [&] {
    for (int pass = 0; pass < 2; pass++)
      for (Pending& q : pass == 0 ? chosen : rejected) {
        examples.push_back({std::move(q.seq)});
        d.desirable_.push_back(pass == 0 ? 1 : 0);
        lines.push_back(q.line);
      }
    chosen.clear(), rejected.clear();
  };
  JsonlReader in(path, "dataset");
  json rec;
  while (in.next(rec)) {
    const std::string where = in.where();
    d.records_++;
    Parsed p = parse(rec, encoder, where);
    if (!p.paired && !kto)
      fail("dataset", "{}: an unpaired record (\"completion\" + \"label\") needs --method kto; {} needs "
           "{{\"prompt\",\"chosen\",\"rejected\"}}", where, method);
    for (auto& q : p.seqs)
      if (max_seq_length > 0 && q.ids.size() > size_t(max_seq_length)) {
        q.ids.resize(size_t(max_seq_length));
        q.labels.resize(size_t(max_seq_length));
        d.truncated_++;
      }
    bool empty = false;
    for (auto& q : p.seqs) empty |= loss_tokens(q) == 0;
    if (empty) {
      std::fprintf(stderr, "lathe train: warning: %s: no completion token %s; the record is skipped\n",
                   where.c_str(), max_seq_length > 0 ? "left within max_seq_length" : "carries loss");
      d.dropped_++;
      continue;
    }
    if (kto && p.paired) {  // TRL's unpairing: chosen is desirable, rejected undesirable
      const int64_t batch = (d.records_ - 1) / kUnpairBatch;
      if (batch != pending_batch) flush_unpaired(), pending_batch = batch;
      chosen.push_back({std::move(p.seqs[0]), int(in.line())});
      rejected.push_back({std::move(p.seqs[1]), int(in.line())});
    } else {
      flush_unpaired();
      examples.push_back(std::move(p.seqs));
      if (kto) d.desirable_.push_back(p.label ? 1 : 0);
      lines.push_back(int(in.line()));
    }
  }
  flush_unpaired();
  d.set_ = TrainDataset::from_examples(path, std::move(examples), lines, seed, shuffle);
  for (uint8_t x : d.desirable_) d.desirable_count_ += x;
  return d;
}

PreferenceBatch PreferenceData::batch(const std::vector<size_t>& picks) const {
  PreferenceBatch b;
  for (size_t i : picks) {
    auto [first, last] = set_.example_sequences(i);
    for (size_t q = first; q < last; q++) {
      auto ids = set_.input_ids(q);
      auto lab = set_.labels(q);
      b.ids.emplace_back(ids.begin(), ids.end());
      b.labels.emplace_back(lab.begin(), lab.end());
      int pl = 0;
      while (pl < int(lab.size()) && lab[size_t(pl)] == kIgnoreIndex) pl++;
      b.prompt_len.push_back(pl);
    }
    if (unpaired()) b.desirable.push_back(desirable_[i] != 0);
  }
  return b;
}

}  // namespace lathe
