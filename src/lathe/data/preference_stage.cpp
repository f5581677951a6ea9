#include "lathe/data/preference_stage.h"

#include <algorithm>
#include <numeric>
#include <unordered_map>

#include "lathe/core/error.h"
#include "lathe/data/dedup.h"
#include "lathe/data/pipeline.h"
#include "lathe/records/record_format.h"
#include "lathe/records/record_shape.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe::data {

std::string preference_dedup_text(const nlohmann::json& rec, bool prompt_only) {
  if (rec.contains("prompt_input_ids")) {
    std::string t = rec["prompt_input_ids"].dump();
    if (!prompt_only)
      for (const char* k : {"chosen_input_ids", "rejected_input_ids", "completion_input_ids"})
        if (rec.contains(k)) t += "\n" + rec[k].dump();
    if (!prompt_only && rec.contains("label")) t += rec["label"] == true ? "\nlabel desirable" : "\nlabel undesirable";
    return t;
  }
  PreferenceTexts pt = preference_texts(rec);
  std::string t = std::move(pt.prompt);
  if (prompt_only) return t;
  for (auto& a : pt.answers) t += "\n" + a;
  if (rec.contains("label")) t += rec["label"] == true ? "\nlabel desirable" : "\nlabel undesirable";
  return t;
}

namespace {

// The prompt a preference record is grouped by for splitting (normalised like exact dedup).
uint64_t prompt_key(const nlohmann::json& rec) {
  if (rec.contains("prompt_input_ids")) {
    const std::string d = rec["prompt_input_ids"].dump();
    return exact_hash(d);
  }
  return exact_hash(dedup_normalize(preference_texts(rec).prompt));
}

}  // namespace

// No prompt is trained on and evaluated at once: its records form one group (union-find whose root
// is the group's smallest index).
size_t group_by_prompt(std::vector<Record>& recs) {
  const size_t n = recs.size();
  std::vector<size_t> parent(n);
  std::iota(parent.begin(), parent.end(), size_t(0));
  auto find = [&](size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  auto unite = [&](size_t a, size_t b) {
    a = find(a);
    b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);  // the smaller index stays the root
  };
  for (size_t i = 0; i < n; i++)
    if (recs[i].cluster >= 0) unite(i, size_t(recs[i].cluster));
  std::vector<uint64_t> keys(n);
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < int64_t(n); i++) keys[i] = prompt_key(recs[i].json);
  std::unordered_map<uint64_t, size_t> first;
  size_t shared = 0;
  for (size_t i = 0; i < n; i++) {
    auto [it, fresh] = first.emplace(keys[i], i);
    if (!fresh) {
      unite(i, it->second);
      shared++;
    }
  }
  for (size_t i = 0; i < n; i++) recs[i].cluster = int64_t(find(i));
  return shared;
}

StageCounts measure_preference_records(std::vector<Record>& recs, const FormatOptions& f, const Tokenizer* tok,
                                       std::vector<size_t>& before, std::vector<size_t>& after) {
  StageCounts counts("format");
  counts.in = recs.size();
  if (!tok) {
    counts.out = recs.size();
    return counts;
  }
  RecordFormatOptions ro;
  ro.max_seq_length = f.max_seq_length;
  RecordEncoder encoder = RecordEncoder::for_model(*tok, f.model, f.chat_template, ro);
  const int64_t n = int64_t(recs.size());
  std::vector<std::vector<size_t>> lens(n);
  std::vector<std::string> error(n);
  // One thread, as the SFT format stage: the encoder (template interpreter, tokenizer caches) is not
  // shared across threads.
  for (int64_t i = 0; i < n; i++) {
    const nlohmann::json& r = recs[i].json;
    const PreferenceShape ps = preference_shape_of(r);
    try {
      if (is_tokenized(ps)) {
        PreferenceTokens t = preference_tokens(r, ps);
        for (auto* a : {&t.chosen, &t.rejected, &t.completion})
          if (!a->empty()) lens[i].push_back(t.prompt.size() + a->size());
      } else {
        PreferenceMessages m = preference_messages(r, ps);
        for (auto* a : {&m.chosen, &m.rejected, &m.completion}) {
          if (a->empty()) continue;
          nlohmann::ordered_json seq = m.prompt;
          for (auto& x : *a) seq.push_back(x);
          lens[i].push_back(encoder.encode_messages(seq).full_length);
        }
      }
      if (lens[i].empty()) error[i] = "no answer to measure";
    } catch (const Error& e) {
      error[i] = e.what();
    }
  }
  std::vector<Record> kept;
  for (int64_t i = 0; i < n; i++) {
    Record& r = recs[i];
    if (!error[i].empty()) {
      counts.drop("cannot encode", r.source.where() + ": " + error[i]);
      continue;
    }
    const size_t longest = *std::max_element(lens[i].begin(), lens[i].end());
    const size_t shortest = *std::min_element(lens[i].begin(), lens[i].end());
    if (f.truncation == "drop" && f.max_seq_length > 0 && longest > size_t(f.max_seq_length)) {
      counts.drop("longer than max_seq_length", fmt::format("{}: {} tokens", r.source.where(), longest));
      continue;
    }
    if (shortest < f.min_tokens) {
      counts.drop("too short (tokens)", fmt::format("{}: {} tokens", r.source.where(), shortest));
      continue;
    }
    for (size_t l : lens[i]) {
      before.push_back(l);
      after.push_back(f.max_seq_length > 0 ? std::min(l, size_t(f.max_seq_length)) : l);
    }
    kept.push_back(std::move(r));
  }
  recs.swap(kept);
  counts.out = recs.size();
  return counts;
}

}  // namespace lathe::data
