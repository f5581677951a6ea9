// The stage driver of `lathe data prepare`. Each stage is one function that takes the surviving
// records and returns its StageCounts (in = out + dropped, each drop with its reason), so the report
// can show in/out/dropped-by-reason per stage and check they reconcile; run_pipeline only chains them.
#include "lathe/data/pipeline.h"

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/threads.h"
#include "lathe/data/dedup.h"
#include "lathe/data/json_fast.h"
#include "lathe/data/pii.h"
#include "lathe/data/pipeline_internal.h"
#include "lathe/data/preference_stage.h"
#include "lathe/data/review_stage.h"
#include "lathe/dist/comm.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/formats/token_shard.h"
#include "lathe/records/record_format.h"
#include "lathe/tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace lathe::data {

const char* const kSplitNames[3] = {"train", "validation", "test"};

std::string snippet(std::string s, size_t n) {
  if (s.size() > n) s.resize(n);
  repair_utf8(s);
  return s;
}

// 4. personal data: detected per text, redacted, dropped or only reported by policy.
namespace {
PiiOptions pii_options(const PiiStageOptions& o) {
  PiiOptions po;
  po.min_confidence = o.min_confidence;
  for (auto& t : o.types) po.types.push_back(pii_type_from_name(t));
  po.ip_ranges = ip_ranges_from_name(o.ip_ranges);
  return po;
}
}  // namespace

PiiPass::PiiPass(const PiiStageOptions& o) : o_(o), det_(o.policy == "off" ? PiiOptions{} : pii_options(o)) {}

void PiiPass::find(nlohmann::json& rec, Found& found) const {
  if (off()) return;
  for_each_text(rec, [&](std::string& s) {
    auto m = det_.detect(s);
    if (m.empty()) return;
    for (auto& x : m) found.emplace_back(pii_type_name(x.type), mask_for_report(s, x));
    if (o_.policy == "redact") s = redact(s, m);
  });
}

bool PiiPass::tally(const Record& r, const Found& found, StageCounts& counts, PiiSummary& sum) const {
  for (auto& [t, ex] : found) {
    sum.hits[t]++;
    auto& e = sum.examples[t];
    if (e.size() < kExamplesPerReason) e.push_back(r.source.where() + ": " + ex);
  }
  if (drops(found)) {
    counts.drop("personal data (" + found[0].first + ")", r.source.where() + ": " + found[0].second);
    return false;
  }
  return true;
}

StageCounts pii_stage(std::vector<Record>& recs, const PiiStageOptions& o, PiiSummary& sum) {
  StageCounts counts("pii");
  counts.in = recs.size();
  const PiiPass pass(o);
  if (pass.off()) {
    counts.out = recs.size();
    return counts;
  }
  const int64_t n = int64_t(recs.size());
  std::vector<PiiPass::Found> found(n);  // (type, masked context)
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; i++) pass.find(recs[i].json, found[i]);
  std::vector<Record> kept;
  kept.reserve(recs.size());
  for (int64_t i = 0; i < n; i++)
    if (pass.tally(recs[i], found[i], counts, sum)) kept.push_back(std::move(recs[i]));
  recs.swap(kept);
  counts.out = recs.size();
  return counts;
}

// A reviewer's edited records: their text was typed after the personal-data stage, so it goes through
// that stage now (a phone number typed into an answer is redacted, dropped or reported by the same
// policy). Stage "review pii": every record in, the edited ones checked, in order.
StageCounts pii_on_edited(std::vector<Record>& recs, const std::vector<char>& edited, const PiiStageOptions& o,
                          PiiSummary& sum) {
  std::vector<Record> sub;
  std::vector<std::string> ids;  // of the edited records, in order (recs[i] is moved from below)
  for (size_t i = 0; i < recs.size(); i++)
    if (edited[i]) {
      ids.push_back(recs[i].id);
      sub.push_back(std::move(recs[i]));
    }
  const size_t checked = sub.size();
  StageCounts c = pii_stage(sub, o, sum);
  c.stage = "review pii";
  c.in = recs.size();
  c.out = recs.size() - (checked - sub.size());
  std::vector<Record> kept;
  kept.reserve(c.out);
  size_t next = 0, k = 0;  // pii_stage keeps the order of what it does not drop
  for (size_t i = 0; i < recs.size(); i++) {
    if (!edited[i]) {
      kept.push_back(std::move(recs[i]));
    } else if (next < sub.size() && sub[next].id == ids[k++]) {
      kept.push_back(std::move(sub[next++]));
    }
  }
  recs.swap(kept);
  return c;
}

// Prompts of an evaluation file: the user turns of any record shape, or each line of plain text.
std::vector<std::string> read_eval_prompts(const std::vector<std::string>& files, const CollectOptions& co) {
  std::vector<std::string> prompts;
  for (auto& f : files) {
    CollectResult cr;
    CollectOptions o = co;
    o.strict = false;
    collect_file(f, o, cr);
    for (auto& r : cr.records) {
      try {
        for (auto& p : record_prompts(r.json)) prompts.push_back(std::move(p));
      } catch (const RecordError&) {
        // An evaluation record that is no record has no prompt to protect; the file is not ours to
        // validate (`lathe eval` reports it), and one bad line must not stop the preparation.
      }
    }
  }
  return prompts;
}

// 5. dedup: exact and near duplicates, and records that contain an evaluation prompt. `info` gets
// the report's clusters and contamination figures.
StageCounts dedup_stage(std::vector<Record>& recs, const DataConfig& cfg, DatasetKind kind, nlohmann::json& info) {
  const auto& o = cfg.dedup;
  StageCounts counts("dedup");
  info = {{"exact_clusters", nlohmann::json::array()}, {"near_clusters", nlohmann::json::array()}};
  counts.in = recs.size();
  std::vector<std::string> texts(recs.size());
  const bool by_prompt = o.preference_key == "prompt";
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < int64_t(recs.size()); i++)
    texts[i] = kind != DatasetKind::Sft                ? preference_dedup_text(recs[i].json, by_prompt)
               : recs[i].json.contains("input_ids") ? recs[i].json["input_ids"].dump()
                                                     : record_text(recs[i].json);
  std::vector<char> drop(recs.size(), 0);
  auto views = [&] {
    std::vector<std::string_view> v;
    for (size_t i = 0; i < texts.size(); i++)
      if (!drop[i]) v.push_back(texts[i]);
    return v;
  };
  auto alive_index = [&] {
    std::vector<size_t> idx;
    for (size_t i = 0; i < texts.size(); i++)
      if (!drop[i]) idx.push_back(i);
    return idx;
  };
  auto report_clusters = [&](const std::vector<int64_t>& cl, const std::vector<size_t>& idx, nlohmann::json& out) {
    std::map<int64_t, std::vector<size_t>> groups;
    for (size_t k = 0; k < cl.size(); k++)
      if (cl[k] != int64_t(k)) groups[cl[k]].push_back(k);
    for (auto& [rep, members] : groups) {
      if (out.size() >= 20) break;
      nlohmann::json c{{"kept", recs[idx[rep]].source.where()}, {"kept_text", snippet(texts[idx[rep]])}, {"size", members.size() + 1}};
      for (size_t m = 0; m < std::min<size_t>(members.size(), 3); m++) c["duplicates"].push_back(recs[idx[members[m]]].source.where());
      out.push_back(c);
    }
  };
  if (o.exact) {
    auto idx = alive_index();
    auto cl = exact_duplicate_clusters(views());
    report_clusters(cl, idx, info["exact_clusters"]);
    for (size_t k = 0; k < cl.size(); k++)
      if (cl[k] != int64_t(k)) {
        drop[idx[k]] = 1;
        counts.drop("exact duplicate", recs[idx[k]].source.where() + ": duplicate of " + recs[idx[cl[k]]].source.where());
      }
  }
  MinHashOptions mo;
  mo.threshold = o.threshold;
  mo.ngram = o.ngram;
  if (o.near) {
    auto idx = alive_index();
    auto cl = near_duplicate_clusters(views(), mo);
    report_clusters(cl, idx, info["near_clusters"]);
    for (size_t k = 0; k < cl.size(); k++) {
      recs[idx[k]].cluster = int64_t(idx[cl[k]]);
      if (cl[k] != int64_t(k) && o.near_action == "drop") {
        drop[idx[k]] = 1;
        counts.drop("near duplicate", recs[idx[k]].source.where() + ": near " + recs[idx[cl[k]]].source.where());
      }
    }
  }
  if (!o.eval_prompts.empty()) {
    auto prompts = read_eval_prompts(o.eval_prompts, cfg.collect);
    std::vector<std::string_view> pv(prompts.begin(), prompts.end());
    auto idx = alive_index();
    auto m = contamination_matches(views(), pv, mo);
    size_t hits = 0;
    for (size_t k = 0; k < m.size(); k++) {
      if (m[k] < 0) continue;
      hits++;
      std::string ex = recs[idx[k]].source.where() + ": matches eval prompt \"" + snippet(prompts[m[k]], 80) + "\"";
      if (o.contamination_action == "drop") {
        drop[idx[k]] = 1;
        counts.drop("contaminated (eval prompt)", ex);
      } else if (info["contamination_examples"].size() < 10) {
        info["contamination_examples"].push_back(ex);
      }
    }
    info["eval_prompts"] = prompts.size();
    info["contaminated"] = hits;
  }
  std::vector<Record> kept;
  for (size_t i = 0; i < recs.size(); i++)
    if (!drop[i]) kept.push_back(std::move(recs[i]));
  recs.swap(kept);
  counts.out = recs.size();
  // Cluster ids are indices into the pre-compaction vector; renumber them by representative id.
  std::map<int64_t, int64_t> remap;
  for (size_t i = 0; i < recs.size(); i++)
    if (recs[i].cluster >= 0 && !remap.count(recs[i].cluster)) remap[recs[i].cluster] = int64_t(i);
  for (auto& r : recs)
    if (r.cluster >= 0) r.cluster = remap[r.cluster];
  return counts;
}

namespace {
const std::vector<size_t> kHistEdges{16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
}  // namespace

size_t LengthHistogram::bin(size_t x) {
  return size_t(std::upper_bound(kHistEdges.begin(), kHistEdges.end(), x) - kHistEdges.begin());
}

LengthHistogram::LengthHistogram() : counts(kHistEdges.size() + 1, 0) {}

nlohmann::json LengthHistogram::json() const { return {{"edges", kHistEdges}, {"counts", counts}}; }

nlohmann::json hist_json(const std::vector<size_t>& v) {
  LengthHistogram h;
  for (size_t x : v) h.add(x);
  return h.json();
}

// First-fit decreasing: sequences (indices into lens) into bins of at most `cap` tokens.
std::vector<std::vector<size_t>> pack(const std::vector<size_t>& lens, size_t cap) {
  std::vector<size_t> order(lens.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lens[a] > lens[b]; });
  std::vector<std::vector<size_t>> bins;
  std::vector<size_t> room;
  for (size_t i : order) {
    size_t b = 0;
    while (b < bins.size() && room[b] < lens[i]) b++;
    if (b == bins.size()) {
      bins.emplace_back();
      room.push_back(cap);
    }
    bins[b].push_back(i);
    room[b] -= std::min(room[b], lens[i]);
  }
  return bins;
}

// XXH3 of a file, read 1 MiB at a time (the same digest as hashing it whole): the token shards run to
// tens of MB, and read_file's stringstream copied each twice (4% of `data prepare --model`'s time).
std::string hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("io", "{}: cannot open: {}", path, std::strerror(errno));
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  std::vector<char> buf(size_t(1) << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    if (in.gcount() > 0) XXH3_64bits_update(h, buf.data(), size_t(in.gcount()));
  }
  const bool failed = in.bad();
  const uint64_t digest = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  if (failed) fail("io", "{}: read error: {}", path, std::strerror(errno));
  return hex64(digest);
}

std::vector<int> assign_splits(const std::vector<Record>& recs, const SplitOptions& o) {
  return assign_splits(
      recs.size(), [&](size_t i) -> const std::string& { return recs[i].id; },
      [&](size_t i) -> const std::string& { return recs[i].stratum; }, [&](size_t i) { return recs[i].cluster; }, o);
}

int only_split(const SplitOptions& o) {
  int shares = 0, only = -1;
  for (int s = 0; s < 3; s++)
    if (o.ratios[size_t(s)] > 0) shares++, only = s;
  return shares == 1 ? only : -1;
}

std::vector<int> assign_splits(size_t n, const std::function<const std::string&(size_t)>& id_of,
                               const std::function<const std::string&(size_t)>& stratum_of,
                               const std::function<int64_t(size_t)>& cluster_of, const SplitOptions& o) {
  // Group = near-duplicate cluster representative (its index) or the record itself. Members of a group
  // in record order: records sorted by (group, index), one range per group. Without clusters (no near
  // dedup, or none found) every record is its own group and no array is made: at millions of records
  // this is the moment memory peaks in a streamed run.
  LATHE_CHECK(n < (size_t(1) << 32), "assign_splits: {} records, at most 2^32", n);
  // One split with a share: every group lands in it (a cut below would fall at or past each stratum's
  // end, mid <= total - 0.5 against total x r / r), so no hash, no sort (0.6 s of a 5 GB run).
  if (const int only = only_split(o); only >= 0) return std::vector<int>(n, only);
  bool clustered = false;  // a record whose group is not itself
  for (size_t i = 0; i < n && !clustered; i++) {
    const int64_t c = cluster_of(i);
    clustered = c >= 0 && c != int64_t(i);
  }
  std::vector<uint32_t> group, order;  // 32-bit: indices below n
  if (clustered) {
    group.resize(n);
    for (size_t i = 0; i < n; i++) {
      const int64_t c = cluster_of(i);
      group[i] = uint32_t(c >= 0 ? c : int64_t(i));
    }
    order.resize(n);
    std::iota(order.begin(), order.end(), 0u);
    if (!std::is_sorted(group.begin(), group.end()))  // only with clusters kept
      std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return group[a] < group[b]; });
  }
  auto order_at = [&](size_t k) -> size_t { return clustered ? order[k] : k; };
  auto group_at = [&](size_t k) -> size_t { return clustered ? group[order[k]] : k; };  // of order_at(k)
  // 16 bytes a group (a streamed corpus has millions): the group id is group_at(first).
  struct Group {
    uint64_t hash;
    uint32_t first, count;  // range of `order`
  };
  std::map<std::string, std::vector<Group>> strata;
  const std::string prefix = fmt::format("{}\x1f", o.seed);  // the hash key is "{seed}\x1f{id}"
  std::string key;
  std::vector<Group>* last = nullptr;
  const std::string* last_stratum = nullptr;
  for (size_t a = 0; a < n;) {
    size_t b = a + 1;
    while (b < n && group_at(b) == group_at(a)) b++;
    const size_t g = group_at(a);
    const size_t m0 = order_at(a);
    // (g indexes the records as dedup left them; a later drop shifts them: kept as the golden has it)
    key.assign(prefix).append(id_of(g < n ? g : m0));
    const std::string& st = stratum_of(m0);
    if (!last_stratum || *last_stratum != st) {
      last = &strata[st];
      last_stratum = &st;
    }
    last->push_back({XXH3_64bits(key.data(), key.size()), uint32_t(a), uint32_t(b - a)});
    a = b;
  }
  double sum = o.ratios[0] + o.ratios[1] + o.ratios[2];
  std::vector<int> split(n, 0);
  for (auto& [s, groups] : strata) {
    std::sort(groups.begin(), groups.end(), [&](const Group& x, const Group& y) {
      return x.hash != y.hash ? x.hash < y.hash : group_at(x.first) < group_at(y.first);
    });
    size_t total = 0;
    for (auto& gr : groups) total += gr.count;
    // Cumulative record targets; a group goes to the split whose cumulative target it starts under.
    double t0 = total * o.ratios[0] / sum, t1 = total * (o.ratios[0] + o.ratios[1]) / sum;
    size_t done = 0;
    for (auto& gr : groups) {
      double mid = done + 0.5;
      int sp = mid < t0 ? 0 : mid < t1 ? 1 : 2;
      for (size_t k = gr.first; k < gr.first + gr.count; k++) split[order_at(k)] = sp;
      done += gr.count;
    }
  }
  return split;
}

// 2. map: every record to its canonical shape; `shapes` counts the shapes seen.
StageCounts map_stage(std::vector<Record>& recs, const DataConfig& cfg, std::map<std::string, size_t>& shapes,
                      KindSeen& kind) {
  StageCounts counts("map");
  MappingOptions mo = cfg.mapping;
  if (mo.system_prompt.empty()) mo.system_prompt = cfg.format.system_prompt;
  map_records(recs, mo, counts, shapes, &kind);
  return counts;
}

// 3. clean: normalization and the quality filters.
StageCounts clean_stage(std::vector<Record>& recs, const CleanOptions& o) {
  StageCounts counts("clean");
  clean_records(recs, o, counts);
  return counts;
}

// Text statistics (scripts, sources, character lengths) of what survived dedup; no records change.
void text_statistics(const std::vector<Record>& recs, nlohmann::json& report) {
  std::map<std::string, size_t> scripts, sources;
  std::vector<size_t> char_lens(recs.size());
#pragma omp parallel
  {
    std::map<std::string, size_t> mine;
#pragma omp for schedule(dynamic, 256)
    for (int64_t i = 0; i < int64_t(recs.size()); i++) {
      std::string t = record_text(recs[i].json);
      count_scripts(t, mine);
      char_lens[i] = utf8_length(t);
    }
#pragma omp critical
    for (auto& [k, v] : mine) scripts[k] += v;
  }
  for (auto& r : recs) sources[r.source.file]++;
  report["scripts"] = scripts;
  std::vector<std::pair<size_t, std::string>> top;
  for (auto& [f, n] : sources) top.emplace_back(n, f);
  std::sort(top.rbegin(), top.rend());
  for (size_t i = 0; i < std::min<size_t>(top.size(), 20); i++) report["top_sources"].push_back({{"file", top[i].second}, {"records", top[i].first}});
  report["char_length_histogram"] = hist_json(char_lens);
}

bool format_passes(const FormatFacts& e, const FormatOptions& f) {
  return !e.failed && !(e.truncated && f.truncation == "drop") && e.tokens >= f.min_tokens &&
         e.first_loss != e.tokens;
}

bool format_keep(const FormatFacts& e, const Source& src, const FormatOptions& f, FormatTally& t,
                 std::vector<std::string>& warnings) {
  if (!format_passes(e, f)) {  // why, in format_passes' order
    if (e.failed)
      t.counts.drop("cannot encode", src.where() + ": " + *e.error);
    else if (e.truncated && f.truncation == "drop")
      t.counts.drop("longer than max_seq_length", fmt::format("{}: {} tokens", src.where(), e.full_length));
    else if (e.tokens < f.min_tokens)
      t.counts.drop("too short (tokens)", fmt::format("{}: {} tokens", src.where(), e.tokens));
    else
      t.counts.drop("no loss tokens", src.where() + ": every token is masked (answer truncated away?)");
    return false;
  }
  if (!e.ends_with_eos && e.has_messages && t.no_eos++ < 5)
    warnings.push_back(src.where() + ": answer never ends (no end-of-turn token after truncation)");
  if (f.max_seq_length > 0 && e.first_loss > size_t(f.max_seq_length) * 3 / 4 && t.long_prompts++ < 5)
    warnings.push_back(fmt::format("{}: very long prompt ({} of {} tokens before the answer)", src.where(), e.first_loss, e.tokens));
  t.before.add(e.full_length);
  t.after.add(e.tokens);
  return true;
}

void format_finish(FormatTally& t, std::vector<std::string>& warnings, nlohmann::json& report) {
  if (t.no_eos > 5) warnings.push_back(fmt::format("{} records in all end without an end-of-turn token", t.no_eos));
  report["token_length_histogram"] = {{"before", t.before.json()}, {"after", t.after.json()}};
  t.counts.out = t.counts.in;
  for (auto& [k, v] : t.counts.dropped) t.counts.out -= v;
}

struct Formatted {
  std::vector<EncodedRecord> enc;  // enc[i] belongs to recs[i]
  std::string template_source;
};

// 6. format + tokenize: each record rendered with the chat template and encoded with its loss mask;
// records that cannot be encoded, are too long (truncation: drop), too short or carry no loss are
// dropped. Without a tokenizer every record passes untokenized.
StageCounts format_stage(std::vector<Record>& recs, const DataConfig& cfg, const Tokenizer* tok, Formatted& out,
                         std::vector<std::string>& warnings, nlohmann::json& report) {
  StageCounts counts("format");
  counts.in = recs.size();
  if (!tok) {
    warnings.push_back("no --model: records were not tokenized and the dataset has no token shards (the trainer needs them; rerun with --model)");
    counts.out = recs.size();
    return counts;
  }
  const FormatOptions& f = cfg.format;
  RecordFormatOptions ro;
  ro.train_on_inputs = f.train_on_inputs;
  ro.max_seq_length = f.max_seq_length;
  RecordEncoder encoder = RecordEncoder::for_model(*tok, f.model, f.chat_template, ro);
  out.template_source = encoder.chat_template().source();
  // Rendering and encoding are independent per record (the encoder is const, the tokenizer's word
  // cache is per thread): done in parallel, then the drops and warnings in record order, so the output
  // is the same whatever the thread count.
  const int64_t n = int64_t(recs.size());
  std::vector<EncodedRecord> encoded(recs.size());
  std::vector<std::string> errors(recs.size());
  std::vector<char> failed(recs.size(), 0);
  std::vector<std::exception_ptr> fatal(recs.size());  // anything but a lathe::Error ends the run, as before
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; i++) {
    try {
      encoded[i] = encoder.encode(recs[i].json);
      std::string().swap(encoded[i].text);  // the rendered text is not written anywhere: free it now
    } catch (const Error& ex) {
      failed[i] = 1;
      errors[i] = ex.what();
    } catch (...) {
      fatal[i] = std::current_exception();
    }
  }
  for (auto& f : fatal)
    if (f) std::rethrow_exception(f);
  std::vector<Record> kept;
  FormatTally tally;
  tally.counts = std::move(counts);
  for (int64_t i = 0; i < n; i++) {
    Record& r = recs[i];
    EncodedRecord& e = encoded[i];
    FormatFacts ff;
    ff.failed = failed[i];
    ff.error = &errors[i];
    ff.truncated = e.truncated;
    ff.full_length = e.full_length;
    ff.tokens = e.input_ids.size();
    ff.first_loss = failed[i] ? 0 : first_loss_index(e.labels);
    ff.ends_with_eos = e.ends_with_eos;
    ff.has_messages = r.json.contains("messages");
    if (!format_keep(ff, r.source, f, tally, warnings)) continue;
    out.enc.push_back(std::move(e));
    kept.push_back(std::move(r));
  }
  recs.swap(kept);
  format_finish(tally, warnings, report);
  counts = std::move(tally.counts);
  counts.out = recs.size();
  return counts;
}

// 6. preference records: measured, not encoded (preference_stage.h); the report's token lengths.
StageCounts format_preference_stage(std::vector<Record>& recs, const DataConfig& cfg, const Tokenizer* tok,
                                    std::vector<std::string>& warnings, nlohmann::json& report) {
  warnings.push_back("preference records: written as records (<split>.records.jsonl) without token shards; the preference "
                     "trainer tokenizes each pair");
  std::vector<size_t> before, after;
  StageCounts counts = measure_preference_records(recs, cfg.format, tok, before, after);
  if (tok) report["token_length_histogram"] = {{"before", hist_json(before)}, {"after", hist_json(after)}};
  return counts;
}

// 7. split: train/validation/test per record (assign_splits); no record is dropped.
StageCounts split_stage(const std::vector<Record>& recs, const SplitOptions& o, std::vector<int>& split) {
  StageCounts counts("split");
  counts.in = counts.out = recs.size();
  split = assign_splits(recs, o);
  return counts;
}

// <split>.records.jsonl: serialised in parallel in blocks of records and written a window of blocks at
// a time in split order, so the file's text is never held whole; returns its XXH3 hash. "_source" and
// "_id" go into the records themselves (nothing reads them after this), which spares a copy of every
// record.
std::string write_records_jsonl(const std::string& path, std::vector<Record>& recs, const std::vector<size_t>& idx) {
  constexpr int64_t kBlock = 1024, kWindow = 32;  // 32K records in flight
  const int64_t nblocks = (int64_t(idx.size()) + kBlock - 1) / kBlock;
  AtomicFileWriter out(path);
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  std::vector<std::string> blocks(kWindow);
  for (int64_t w0 = 0; w0 < nblocks; w0 += kWindow) {
    const int64_t w1 = std::min(nblocks, w0 + kWindow);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = w0; b < w1; b++) {
      std::string& buf = blocks[b - w0];
      buf.clear();
      for (int64_t k = b * kBlock; k < std::min<int64_t>(int64_t(idx.size()), (b + 1) * kBlock); k++) {
        Record& r = recs[idx[k]];
        r.json["_source"] = r.source.to_json();
        r.json["_id"] = r.id;
        json_dump_fast(r.json, buf);
        buf += '\n';
      }
    }
    for (int64_t b = w0; b < w1; b++) {
      out.write(blocks[b - w0]);
      XXH3_64bits_update(h, blocks[b - w0].data(), blocks[b - w0].size());
    }
  }
  const uint64_t digest = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  out.commit();
  return hex64(digest);
}

// The split's token shard (packed into bins of max_seq_length when packing), recorded in `sp`.
void write_shard(const DataConfig& cfg, const char* name, const std::vector<EncodedRecord>& enc,
                 const std::vector<size_t>& idx, DatasetSplit& sp) {
  TokenShardWriter w;
  size_t total = 0;
  for (size_t i : idx) total += enc[i].input_ids.size();
  w.reserve(idx.size(), total);
  size_t label_tokens = 0;
  auto add = [&](size_t i) {
    w.add(enc[i].input_ids, enc[i].labels);
    label_tokens += count_loss_labels(enc[i].labels);
  };
  if (cfg.format.packing && cfg.format.max_seq_length > 0) {
    std::vector<size_t> lens;
    for (size_t i : idx) lens.push_back(enc[i].input_ids.size());
    auto bins = pack(lens, size_t(cfg.format.max_seq_length));
    for (auto& b : bins) {
      for (size_t k : b) add(idx[k]);
      w.end_bin();
    }
    sp.bins = bins.size();
    sp.packed = true;
  } else {
    for (size_t i : idx) add(i);
  }
  std::string shard = std::string(name) + ".tokens-00000.safetensors";
  w.write(cfg.output + "/" + shard, {{"split", name}});
  sp.shards.push_back(shard);
  sp.sequences = w.sequences();
  sp.tokens = w.tokens();
  sp.label_tokens = label_tokens;
  sp.shard_hashes.push_back(hash_file(cfg.output + "/" + shard));
}

// Writes the dataset directory: per split its records and (tokenized) token shard, then the manifest.
DatasetManifest write_dataset(const DataConfig& cfg, std::vector<Record>& recs, const std::vector<int>& split,
                              const Tokenizer* tok, const Formatted& formatted, const CollectResult& cr,
                              const std::vector<StageCounts>& stages, DatasetKind kind) {
  fs::create_directories(cfg.output);
  DatasetManifest m;
  m.config = cfg.to_json();
  if (kind != DatasetKind::Sft) {
    m.preference = dataset_kind_name(kind);
    tok = nullptr;  // preference records are stored as records only: no shards, no tokenizer entry
  }
  std::string all_hashes;
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = m.splits[kSplitNames[s]];
    std::vector<size_t> idx;
    for (size_t i = 0; i < recs.size(); i++)
      if (split[i] == s) idx.push_back(i);
    sp.records = std::string(kSplitNames[s]) + ".records.jsonl";
    sp.records_hash = write_records_jsonl(cfg.output + "/" + sp.records, recs, idx);
    sp.records_count = idx.size();
    all_hashes += sp.records_hash;
    if (tok && !idx.empty()) {
      write_shard(cfg, kSplitNames[s], formatted.enc, idx, sp);
      all_hashes += sp.shard_hashes.back();
    }
  }
  finish_manifest(cfg, m, tok != nullptr, formatted.template_source, cr, stages, all_hashes);
  return m;
}

void finish_manifest(const DataConfig& cfg, DatasetManifest& m, bool tokenized, const std::string& template_source,
                     const CollectResult& cr, const std::vector<StageCounts>& stages, const std::string& all_hashes) {
  if (tokenized) {
    std::string tj = fs::is_directory(cfg.format.model) ? cfg.format.model + "/tokenizer.json" : cfg.format.model;
    m.tokenizer = DatasetManifest::Tokenizer{cfg.format.model, fs::exists(tj) ? hash_file(tj) : ""};
    m.chat_template = template_source;
  }
  for (auto& f : cr.inputs) m.inputs.push_back({f.path, f.hash, f.format, f.records});
  for (auto& st : stages) {
    DatasetStageTotals& t = m.counts[st.stage];
    t.in = st.in;
    t.out = st.out;
    t.dropped.insert(st.dropped.begin(), st.dropped.end());
  }
  m.content_hash = hex64(XXH3_64bits(all_hashes.data(), all_hashes.size()));
  write_dataset_manifest(cfg.output, m);
}

// report.json / report.html: per-stage accounting (each stage reconciles, and each stage's input is
// the previous one's output), totals, splits, inputs and sources.
void write_report(const DataConfig& cfg, const std::vector<StageCounts>& stages, size_t kept, const DatasetManifest& m,
                  const CollectResult& cr, const std::vector<std::string>& warnings, bool tokenized,
                  nlohmann::json& report) {
  nlohmann::json st = nlohmann::json::array();
  bool ok = true;
  for (size_t i = 0; i < stages.size(); i++) {
    st.push_back(stages[i].to_json());
    ok &= stages[i].reconciles() && (i == 0 || stages[i].in == stages[i - 1].out);
  }
  size_t dropped = 0;
  for (auto& s : stages)
    for (auto& [k, v] : s.dropped) dropped += v;
  report["stages"] = st;
  report["totals"] = {{"records_in", stages[0].in}, {"records_kept", kept}, {"records_dropped", dropped},
                      {"reconciles", ok && stages[0].in == kept + dropped}};
  report["splits"] = {{"train", m.split("train")->records_count}, {"validation", m.split("validation")->records_count},
                      {"test", m.split("test")->records_count}};
  report["inputs"] = m.to_json()["inputs"];
  // Every source the inputs named: read, or skipped with its reason (seen = read + skipped).
  nlohmann::json skipped = nlohmann::json::array();
  for (auto& k : cr.skipped) skipped.push_back({{"path", k.path}, {"reason", k.reason}, {"detail", k.detail}});
  report["sources"] = {{"seen", cr.inputs.size() + cr.skipped.size()}, {"read", cr.inputs.size()},
                       {"skipped", skipped}};
  report["warnings"] = warnings;
  report["tokenized"] = tokenized;
  write_file_atomic(cfg.output + "/report.json", report.dump(2) + "\n");
  write_file_atomic(cfg.output + "/report.html", render_report_html(report));
}


// 1. collect: every input read into records (the tokenizer, when given, counts chunk tokens).
CollectOptions collect_options(const DataConfig& cfg, const Tokenizer* tok) {
  CollectOptions co = cfg.collect;
  if (tok) co.count_tokens = [tok](std::string_view s) { return tok->encode(s, false).size(); };
  return co;
}

CollectOptions collect_options(const DataConfig& cfg, const PendingTokenizer& tok) {
  CollectOptions co = cfg.collect;
  if (tok.wanted()) co.count_tokens = [&tok](std::string_view s) { return tok.get()->encode(s, false).size(); };
  return co;
}

// 2-4: map, clean, personal data.
void run_record_stages(const DataConfig& cfg, RecordStages& rs, const std::function<void(const char*)>& lap) {
  rs.map = map_stage(rs.cr.records, cfg, rs.shapes, rs.kind);
  lap("map");
  rs.clean = clean_stage(rs.cr.records, cfg.clean);
  lap("clean");
  rs.pii = pii_stage(rs.cr.records, cfg.pii, rs.pii_summary);
  lap("pii");
}

nlohmann::json run_pipeline(const DataConfig& cfg) {
  if (cfg.inputs.empty()) fail("data", "no inputs (give --input or data.inputs)");
  if (cfg.output.empty()) fail("data", "no output directory (give --output or data.output)");
  nlohmann::json report{{"format", "lathe-data-report-v1"}, {"config", cfg.to_json()}};
  std::vector<StageCounts> stages;
  std::vector<std::string> warnings;
  Laps lap;
  // Under mpirun the ranks share the per-record stages; rank 0 alone runs the rest and writes.
  Communicator& comm = world();
  const bool sharded = comm.size() > 1;
  if (sharded && !std::getenv("OMP_NUM_THREADS") && comm.local_size() > 1) set_num_threads(default_threads_per_rank());
  const bool streams = !sharded && cfg.review.empty() && !std::getenv("LATHE_DATA_IN_MEMORY");
  const PendingTokenizer pending(comm.is_root() || cfg.collect.chunk_tokens > 0 ? cfg.format.model : "");
  // One process, no reviewer's decisions: the streaming driver, unless the records turn out to be
  // preference records (it hands those back before writing anything). It reads its input while the
  // tokenizer loads; the in-memory driver waits for it first, as it always did.
  if (streams && run_streaming(cfg, pending, report)) return report;
  const Tokenizer* tok_ptr = pending.get();
  RecordStages rs;
  if (sharded) {
    if (!sharded_record_stages(cfg, tok_ptr, comm, rs, std::ref(lap))) return nullptr;
  } else {
    rs.cr = collect(cfg.inputs, collect_options(cfg, tok_ptr));
    lap("collect");
    run_record_stages(cfg, rs, std::ref(lap));
  }
  CollectResult& cr = rs.cr;
  stages = {cr.counts, rs.map, rs.clean, rs.pii};
  warnings = cr.warnings;
  std::vector<Record> recs = std::move(cr.records);
  const DatasetKind kind = rs.kind.kind.value_or(DatasetKind::Sft);
  report["shapes"] = rs.shapes;
  // Preference data: every count below is of records = pairs (paired) or labelled completions.
  if (kind != DatasetKind::Sft) report["preference"] = dataset_kind_name(kind);
  const PiiSummary& ps = rs.pii_summary;
  report["pii"] = {{"policy", cfg.pii.policy}, {"hits", ps.hits}, {"examples", ps.examples}};
  // A reviewer's decisions (lathe ui): on the records as the review page showed them (mapped, cleaned,
  // redacted), before dedup, so an edit that now duplicates another record is caught there.
  if (!cfg.review.empty()) {
    std::vector<char> edited;
    stages.push_back(review_stage(recs, load_review(cfg.review), cfg.review, report["review"], &edited));
    stages.push_back(pii_on_edited(recs, edited, cfg.pii, rs.pii_summary));
    report["pii"] = {{"policy", cfg.pii.policy}, {"hits", ps.hits}, {"examples", ps.examples}};
  }
  stages.push_back(dedup_stage(recs, cfg, kind, report["dedup"]));
  if (kind != DatasetKind::Sft) report["dedup"]["records_sharing_a_prompt"] = group_by_prompt(recs);
  lap("dedup");
  text_statistics(recs, report);
  lap("stats");
  Formatted formatted;
  if (kind == DatasetKind::Sft) stages.push_back(format_stage(recs, cfg, tok_ptr, formatted, warnings, report));
  else stages.push_back(format_preference_stage(recs, cfg, tok_ptr, warnings, report));
  std::vector<int> split;
  stages.push_back(split_stage(recs, cfg.split, split));
  lap("format+split");
  DatasetManifest manifest = write_dataset(cfg, recs, split, tok_ptr, formatted, cr, stages, kind);
  lap("write");
  write_report(cfg, stages, recs.size(), manifest, cr, warnings, tok_ptr != nullptr && kind == DatasetKind::Sft, report);
  lap("report");
  return report;
}

}  // namespace lathe::data
