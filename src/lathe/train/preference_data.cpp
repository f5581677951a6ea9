#include "lathe/train/preference_data.h"

#include <algorithm>

#include "lathe/core/error.h"
#include "lathe/core/ignore_index.h"
#include "lathe/core/json_io.h"
#include "lathe/records/record_format.h"

using nlohmann::json;
using nlohmann::ordered_json;

namespace lathe {

namespace {

// A prompt or answer field as messages: a string is one turn of `role`; a list of {role, content}
// objects is taken as it is.
ordered_json turns(const json& v, const char* role, const char* field, const std::string& where) {
  ordered_json out = ordered_json::array();
  if (v.is_string()) {
    out.push_back(ordered_json{{"role", role}, {"content", v.get<std::string>()}});
    return out;
  }
  if (!v.is_array() || v.empty()) fail("dataset", "{}: \"{}\" must be a string or a non-empty list of messages", where, field);
  for (const json& m : v) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      fail("dataset", "{}: \"{}\": every message needs string \"role\" and \"content\"", where, field);
    out.push_back(ordered_json{{"role", m["role"]}, {"content", m["content"]}});
  }
  return out;
}

std::vector<int32_t> token_list(const json& rec, const char* field, const std::string& where) {
  if (!rec.contains(field)) fail("dataset", "{}: missing \"{}\"", where, field);
  const json& v = rec[field];
  if (!v.is_array()) fail("dataset", "{}: \"{}\" must be a list of token ids", where, field);
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const json& t : v) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      fail("dataset", "{}: \"{}\" holds {}, not a token id", where, field, t.dump());
    ids.push_back(int32_t(t.get<int64_t>()));
  }
  return ids;
}

TrainDataset::Sequence join_tokens(const std::vector<int32_t>& prompt, const std::vector<int32_t>& answer) {
  TrainDataset::Sequence q;
  q.ids = prompt;
  q.ids.insert(q.ids.end(), answer.begin(), answer.end());
  q.labels.assign(prompt.size(), kIgnoreIndex);
  q.labels.insert(q.labels.end(), answer.begin(), answer.end());
  return q;
}

bool kto_label(const json& rec, const std::string& where) {
  if (!rec.contains("label")) fail("dataset", "{}: missing \"label\" (true = desirable, false = undesirable)", where);
  const json& l = rec["label"];
  if (l.is_boolean()) return l.get<bool>();
  if (l.is_number_integer() && (l.get<int64_t>() == 0 || l.get<int64_t>() == 1)) return l.get<int64_t>() == 1;
  fail("dataset", "{}: \"label\" must be true or false, got {}", where, l.dump());
}

// One record as examples: a pair (chosen, rejected), or one unpaired completion with its label.
struct Parsed {
  std::vector<TrainDataset::Sequence> seqs;  // paired: chosen, rejected; unpaired: the completion
  bool paired = true, label = false;
};

Parsed parse(const json& rec, const RecordEncoderFactory& encoder, const std::string& where) {
  Parsed p;
  if (!rec.is_object()) fail("dataset", "{}: expected a JSON object (a record)", where);
  auto encode = [&](const ordered_json& messages) {
    if (!encoder) fail("dataset", "{}: not pre-tokenized and no tokenizer to encode it", where);
    EncodedRecord e;
    try {
      e = encoder().encode_messages(messages);
    } catch (const Error& err) {
      fail("dataset", "{}: {}", where, err.what());
    }
    return TrainDataset::Sequence{std::move(e.input_ids), std::move(e.labels)};
  };
  if (rec.contains("prompt_input_ids")) {
    const std::vector<int32_t> prompt = token_list(rec, "prompt_input_ids", where);
    if (rec.contains("completion_input_ids")) {
      p.paired = false;
      p.label = kto_label(rec, where);
      p.seqs.push_back(join_tokens(prompt, token_list(rec, "completion_input_ids", where)));
    } else {
      p.seqs.push_back(join_tokens(prompt, token_list(rec, "chosen_input_ids", where)));
      p.seqs.push_back(join_tokens(prompt, token_list(rec, "rejected_input_ids", where)));
    }
    return p;
  }
  const bool has_chosen = rec.contains("chosen"), has_rejected = rec.contains("rejected");
  if (has_chosen || has_rejected) {
    if (!has_chosen || !has_rejected) fail("dataset", "{}: a pair needs both \"chosen\" and \"rejected\"", where);
    ordered_json prompt, chosen, rejected;
    if (rec.contains("prompt")) {
      prompt = turns(rec["prompt"], "user", "prompt", where);
      chosen = turns(rec["chosen"], "assistant", "chosen", where);
      rejected = turns(rec["rejected"], "assistant", "rejected", where);
    } else {  // implicit prompt: the two conversations' common leading messages
      ordered_json c = turns(rec["chosen"], "assistant", "chosen", where);
      ordered_json r = turns(rec["rejected"], "assistant", "rejected", where);
      size_t k = 0;
      while (k < c.size() && k < r.size() && c[k] == r[k]) k++;
      if (k == 0 || k == c.size() || k == r.size())
        fail("dataset", "{}: without \"prompt\", \"chosen\" and \"rejected\" must be conversations that share their "
             "leading messages and differ after them", where);
      prompt = ordered_json::array();
      chosen = ordered_json::array();
      rejected = ordered_json::array();
      for (size_t i = 0; i < c.size(); i++) (i < k ? prompt : chosen).push_back(c[i]);
      for (size_t i = k; i < r.size(); i++) rejected.push_back(r[i]);
    }
    ordered_json a = prompt, b = prompt;
    for (auto& m : chosen) a.push_back(m);
    for (auto& m : rejected) b.push_back(m);
    p.seqs.push_back(encode(a));
    p.seqs.push_back(encode(b));
    return p;
  }
  if (rec.contains("completion") && rec.contains("prompt")) {
    p.paired = false;
    p.label = kto_label(rec, where);
    ordered_json a = turns(rec["prompt"], "user", "prompt", where);
    for (auto& m : turns(rec["completion"], "assistant", "completion", where)) a.push_back(m);
    p.seqs.push_back(encode(a));
    return p;
  }
  fail("dataset", "{}: not a preference record: expected {{\"prompt\",\"chosen\",\"rejected\"}}, "
       "{{\"prompt\",\"completion\",\"label\"}} or their *_input_ids forms", where);
}

int64_t loss_tokens(const TrainDataset::Sequence& q) {
  int64_t n = 0;
  for (size_t t = 1; t < q.labels.size(); t++) n += q.labels[t] != kIgnoreIndex;
  return n;
}

}  // namespace

PreferenceData PreferenceData::load(const std::string& path, const std::string& method, int max_seq_length,
                                    uint64_t seed, bool shuffle, const RecordEncoderFactory& encoder) {
  PreferenceData d;
  const bool kto = method == "kto";
  std::vector<std::vector<TrainDataset::Sequence>> examples;
  std::vector<int> lines;
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
      examples.push_back({std::move(p.seqs[0])});
      examples.push_back({std::move(p.seqs[1])});
      d.desirable_.push_back(1);
      d.desirable_.push_back(0);
      lines.push_back(int(in.line()));
      lines.push_back(int(in.line()));
    } else {
      examples.push_back(std::move(p.seqs));
      if (kto) d.desirable_.push_back(p.label ? 1 : 0);
      lines.push_back(int(in.line()));
    }
  }
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
