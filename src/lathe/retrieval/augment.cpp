#include "lathe/retrieval/augment.h"

#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/records/record_shape.h"

namespace lathe::retrieval {

nlohmann::ordered_json AugmentReport::to_json() const {
  return {{"records_in", records_in},         {"conversational", conversational},
          {"with_top_passages", with_top_passages}, {"with_distractors", with_distractors},
          {"without_hits", without_hits},     {"passed_through", passed_through},
          {"written", written}};
}

std::vector<nlohmann::json> augment_records(const Index& index, const std::vector<nlohmann::json>& records,
                                            const std::vector<std::string>& wheres, const AugmentOptions& o,
                                            AugmentReport& r) {
  if (o.k < 1) fail("retrieval", "k {}: must be at least 1", o.k);
  if (!(o.distractor_fraction >= 0 && o.distractor_fraction <= 1))
    fail("retrieval", "distractor_fraction {}: must be in [0, 1]", o.distractor_fraction);
  std::vector<nlohmann::json> out;
  Rng rng(o.seed);
  SearchOptions so;
  so.k = 2 * o.k;  // the top k, then the k below them as distractors
  for (size_t i = 0; i < records.size(); i++) {
    const nlohmann::json& rec = records[i];
    r.records_in++;
    RecordShape shape = detect_record_shape(rec);
    if (!is_conversation(shape)) {
      r.passed_through++;
      out.push_back(rec);
      continue;
    }
    nlohmann::ordered_json msgs;
    try {
      msgs = record_to_messages(rec, shape);
    } catch (const Error& e) {
      fail("retrieval", "{}: {}", i < wheres.size() ? wheres[i] : std::to_string(i + 1), e.what());
    }
    size_t last_user = msgs.size();
    for (size_t m = 0; m < msgs.size(); m++)
      if (msgs[m]["role"] == "user") last_user = m;
    // A draw per conversational record, whatever the search finds, so the split is the seed's alone.
    const bool distract = rng.uniform() < o.distractor_fraction;
    if (last_user == msgs.size()) {
      r.passed_through++;
      out.push_back(rec);
      continue;
    }
    r.conversational++;
    if (o.keep_plain) out.push_back(rec);
    std::string question = msgs[last_user]["content"].get<std::string>();
    std::vector<Hit> hits = index.search(question, so);
    std::vector<Hit> ctx;
    if (distract) {
      if (hits.size() > size_t(o.k)) ctx.assign(hits.begin() + o.k, hits.end());
    } else {
      ctx.assign(hits.begin(), hits.begin() + std::min(hits.size(), size_t(o.k)));
    }
    if (ctx.empty()) {
      r.without_hits++;
      if (!o.keep_plain) out.push_back(rec);  // nothing to add: the plain record, once
      continue;
    }
    (distract ? r.with_distractors : r.with_top_passages)++;
    msgs[last_user]["content"] = rag_user_message(question, ctx, o.prompt);
    nlohmann::json aug = nlohmann::json::object();
    aug["messages"] = nlohmann::json::parse(msgs.dump());
    out.push_back(std::move(aug));
  }
  r.written = out.size();
  return out;
}

AugmentReport augment_file(const Index& index, const std::string& input, const std::string& output,
                           const AugmentOptions& o) {
  std::string path = input;
  if (std::filesystem::is_directory(input)) {
    if (!has_dataset_manifest(input)) fail("retrieval", "{}: no manifest.json (give a dataset directory or a .jsonl)", input);
    DatasetManifest m = read_dataset_manifest(input);
    const DatasetSplit* s = m.split("train");
    if (!s || s->records.empty()) fail("retrieval", "{}: the manifest has no train split with records", input);
    path = dataset_file(input, s->records);
  }
  std::vector<nlohmann::json> records;
  std::vector<std::string> wheres;
  JsonlReader in(path, "retrieval");
  nlohmann::json j;
  while (in.next(j)) {
    records.push_back(std::move(j));
    wheres.push_back(in.where());
  }
  AugmentReport r;
  std::vector<nlohmann::json> out = augment_records(index, records, wheres, o, r);
  std::string text;
  for (auto& rec : out) text += rec.dump() + "\n";
  std::filesystem::path op(output);
  if (op.has_parent_path()) std::filesystem::create_directories(op.parent_path());
  write_file_atomic(output, text);
  return r;
}

}  // namespace lathe::retrieval
