// The streaming driver's second half (pipeline_stream.cpp has the first): the format verdicts from the
// Metas, the split, and the writers (records files and their statistics, token shards, manifest and
// report), all reading the record spool.
#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <omp.h>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/ignore_index.h"
#include "lathe/data/dedup.h"
#include "lathe/data/json_fast.h"
#include "lathe/data/pipeline_internal.h"
#include "lathe/data/pipeline_stream_internal.h"
#include "lathe/data/prepare_spool.h"
#include "lathe/formats/token_shard.h"
#include "lathe/records/record_format.h"
#include "lathe/records/token_labels.h"
#include "lathe/tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace lathe::data::stream_detail {

OneSplitRecords::OneSplitRecords(const std::string& path, int split)
    : split_(split), out_(path, /*direct=*/true), h_(XXH3_createState()) {
  XXH3_64bits_reset(h_);
}

OneSplitRecords::~OneSplitRecords() { XXH3_freeState(h_); }

void OneSplitRecords::set(std::vector<uint64_t>& v, uint32_t i) {
  if (i / 64 >= v.size()) v.resize(std::max<size_t>(i / 64 + 1, 2 * v.size()), 0);
  v[i / 64] |= uint64_t(1) << (i % 64);
}

void OneSplitRecords::add(uint32_t i, std::string_view rec, bool formatted) {
  set(taken_, i);
  taken_n_++;
  size_t chars = 0;
  const size_t at = get_text_statistics(rec, chars, &scripts_);
  chars_.add(chars);
  if (!formatted) return;
  set(wrote_, i);
  wrote_n_++;
  const std::string_view line = rec.substr(at);
  out_.write(line.data(), line.size());
  XXH3_64bits_update(h_, line.data(), line.size());
}

bool OneSplitRecords::matches(const std::vector<uint32_t>& kept, const std::vector<char>& formatted) const {
  if (kept.size() != taken_n_) return false;
  size_t wrote = 0;
  for (size_t k = 0; k < kept.size(); k++) {
    if (!bit(taken_, kept[k]) || bit(wrote_, kept[k]) != bool(formatted[k])) return false;
    wrote += formatted[k] != 0;
  }
  return wrote == wrote_n_;
}

void OneSplitRecords::commit(std::string& hash, size_t& count, std::map<std::string, size_t>& scripts,
                             LengthHistogram& chars) {
  out_.commit();
  hash = hex64(XXH3_64bits_digest(h_));
  count = wrote_n_;
  for (auto& [k, v] : scripts_) scripts[k] += v;
  chars.add(chars_);
}

void Streamer::write_records_and_statistics(const std::vector<uint32_t>& kept,
                                            const std::vector<char>& formatted,
                                            const std::vector<int8_t>& split_of, nlohmann::json& report,
                                            DatasetManifest& m) {
  constexpr int64_t kBlock = 1024, kWindow = 32;
  // Written as the records came (early_, when its prediction held): only the other two splits' files,
  // empty, are left to write, and nothing is read back.
  const bool early = early_ && early_->matches(kept, formatted);
  if (early_ && steps_.on)
    std::fprintf(stderr, "lathe data: the %s records file %s\n", kSplitNames[early_->split()],
                 early ? "was written as the records came" : "is written again (dedup or format decided otherwise)");
  if (early_ && !early) early_.reset();  // its file goes; the pass below writes the right one
  std::array<std::unique_ptr<AtomicFileWriter>, 3> out;
  std::array<XXH3_state_t*, 3> h{};
  std::array<size_t, 3> count{};
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = m.splits[kSplitNames[s]];
    sp.records = std::string(kSplitNames[s]) + ".records.jsonl";
    if (early && s == early_->split()) continue;
    out[s] = std::make_unique<AtomicFileWriter>(cfg_.output + "/" + sp.records, /*direct=*/true);
    h[s] = XXH3_createState();
    XXH3_64bits_reset(h[s]);
  }
  std::map<std::string, size_t> scripts, sources;
  LengthHistogram chars;  // of the kept records' character counts (sums: added per block)
  std::vector<LengthHistogram> block_chars(kWindow);
  const int64_t nblocks = early ? 0 : (int64_t(kept.size()) + kBlock - 1) / kBlock;
  std::vector<std::array<std::string, 3>> blocks(kWindow);
  std::vector<std::map<std::string, size_t>> block_scripts(kWindow);
  for (int64_t w0 = 0; w0 < nblocks; w0 += kWindow) {
    const int64_t w1 = std::min(nblocks, w0 + kWindow);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = w0; b < w1; b++) {
      auto& bufs = blocks[b - w0];
      for (auto& x : bufs) x.clear();
      auto& sc = block_scripts[b - w0];
      LengthHistogram& ch = block_chars[b - w0];
      ch = LengthHistogram();
      sc.clear();
      // The block's records lie in order in the spool: one read from the first to the last, unless
      // what dedup dropped between them makes that span large.
      const int64_t k0 = b * kBlock, k1 = std::min<int64_t>(int64_t(kept.size()), (b + 1) * kBlock);
      const Meta &first = meta_[kept[k0]], &last = meta_[kept[k1 - 1]];
      const uint64_t span_bytes = last.off + last.rec_bytes - first.off;
      std::string scratch, one;
      std::string_view span;
      if (span_bytes <= (64u << 20)) span = spool_.view(first.off, span_bytes, scratch);
      for (int64_t k = k0; k < k1; k++) {
        const Meta& mt = meta_[kept[k]];
        const std::string_view rec =
            span.empty() ? spool_.view(mt.off, mt.rec_bytes, one) : span.substr(mt.off - first.off, mt.rec_bytes);
        size_t char_len = 0;
        const size_t at = get_text_statistics(rec, char_len, &sc);
        ch.add(char_len);
        if (formatted[k]) bufs[size_t(split_of[k])].append(rec.substr(at));
      }
    }
    for (int64_t b = w0; b < w1; b++) {
      for (int s = 0; s < 3; s++) {
        out[s]->write(blocks[b - w0][s]);
        XXH3_64bits_update(h[s], blocks[b - w0][s].data(), blocks[b - w0][s].size());
      }
      // Script counts are sums: adding per block equals adding per record.
      for (auto& [k, v] : block_scripts[b - w0]) scripts[k] += v;
      chars.add(block_chars[b - w0]);
    }
  }
  for (size_t k = 0; k < kept.size(); k++) sources[files_[meta_[kept[k]].file]]++;
  for (size_t k = 0; k < kept.size(); k++)
    if (formatted[k]) count[size_t(split_of[k])]++;
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = m.splits[kSplitNames[s]];
    if (!out[s]) {
      early_->commit(sp.records_hash, sp.records_count, scripts, chars);
      LATHE_CHECK(sp.records_count == count[s], "{}: {} records written, {} formatted", sp.records,
                  sp.records_count, count[s]);
      continue;
    }
    sp.records_hash = hex64(XXH3_64bits_digest(h[s]));
    XXH3_freeState(h[s]);
    sp.records_count = count[s];
    out[s]->commit();
  }
  report["scripts"] = scripts;
  std::vector<std::pair<size_t, std::string>> top;
  for (auto& [f, c] : sources) top.emplace_back(c, f);
  std::sort(top.rbegin(), top.rend());
  for (size_t i = 0; i < std::min<size_t>(top.size(), 20); i++)
    report["top_sources"].push_back({{"file", top[i].second}, {"records", top[i].first}});
  report["char_length_histogram"] = chars.json();
}

// Each split's token shard, written from the spool; its facts (file, hash, counts, bins) go into
// shards[s], which the caller merges into the manifest: this runs beside the records writer.
void Streamer::write_token_shards(const std::vector<uint32_t>& kept, const std::vector<int8_t>& split_of,
                                  std::array<DatasetSplit, 3>& shards) const {
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = shards[size_t(s)];
    std::vector<uint32_t> idx;  // records of this split, in shard order
    for (size_t k = 0; k < kept.size(); k++)
      if (split_of[k] == s) idx.push_back(kept[k]);
    TokenShardPlan plan;
    if (idx.empty()) continue;  // a split without records has no shard
    if (cfg_.format.packing && cfg_.format.max_seq_length > 0) {
      std::vector<size_t> lens(idx.size());
      for (size_t j = 0; j < idx.size(); j++) lens[j] = meta_[idx[j]].ntok;
      const std::vector<std::vector<size_t>> bins = pack(lens, size_t(cfg_.format.max_seq_length));
      std::vector<uint32_t> order;
      order.reserve(idx.size());
      for (auto& b : bins) {
        for (size_t j : b) order.push_back(idx[j]);
        plan.bin_sizes.push_back(b.size());
      }
      idx.swap(order);
      sp.bins = bins.size();
      sp.packed = plan.packed = true;
    }
    plan.lengths.reserve(idx.size());
    for (uint32_t i : idx) plan.lengths.push_back(meta_[i].ntok);
    size_t label_tokens = 0;
    const std::string shard = std::string(kSplitNames[s]) + ".tokens-00000.safetensors";
    SpoolReader in(tok_spool_);
    const uint64_t shard_hash =
        write_token_shard_streamed(cfg_.output + "/" + shard, plan, {{"split", kSplitNames[s]}},
                                   [&](size_t q, bool want_labels, int32_t* dst) {
                                     read_tokens(idx[q], want_labels, dst, in);
                                     if (want_labels) label_tokens += count_loss_labels({dst, plan.lengths[q]});
                                   });
    sp.shards.push_back(shard);
    sp.sequences = idx.size();
    sp.tokens = 0;
    for (size_t l : plan.lengths) sp.tokens += l;
    sp.label_tokens = label_tokens;
    sp.shard_hashes.push_back(hex64(shard_hash));
  }
}

void Streamer::finish(nlohmann::json& report) {
  make_encoder();  // a run without records has not made it yet
  CollectResult& cr = rs_.cr;
  std::vector<StageCounts> stages = {cr.counts, rs_.map, rs_.clean, rs_.pii};
  std::vector<std::string> warnings = cr.warnings;
  report["shapes"] = rs_.shapes;
  const PiiSummary& ps = rs_.pii_summary;
  report["pii"] = {{"policy", cfg_.pii.policy}, {"hits", ps.hits}, {"examples", ps.examples}};
  std::vector<int64_t> cluster;  // by position in `kept`
  std::vector<uint32_t> kept;    // record indices
  steps_("collect");             // the last piece after the last batch
  spool_in_order(unspooled_);
  LATHE_CHECK(spool_.size() == spool_end_ && tok_spool_.size() == tok_end_,
              "the spools hold {} + {} bytes, {} + {} planned", spool_.size(), tok_spool_.size(), spool_end_, tok_end_);
  spool_.seal();
  tok_spool_.seal();
  key_spool_.seal();
  stages.push_back(dedup(report["dedup"], cluster, kept));
  steps_("dedup");

  // 6. format verdicts, in record order, from what the encoder left in the Metas.
  std::vector<char> formatted(kept.size(), 1);
  if (encoder_) {
    FormatTally tally;
    tally.counts.in = kept.size();
    for (size_t k = 0; k < kept.size(); k++) {
      FormatFacts ff = facts_of(meta_[kept[k]]);
      auto err = errors_.find(kept[k]);
      ff.error = err == errors_.end() ? nullptr : &err->second;
      formatted[k] = format_keep(ff, source_of(kept[k]), cfg_.format, tally, warnings);
    }
    format_finish(tally, warnings, report);
    stages.push_back(tally.counts);
  } else {
    warnings.push_back(
        "no --model: records were not tokenized and the dataset has no token shards (the trainer needs them; "
        "rerun with --model)");
    StageCounts f("format");
    f.in = f.out = kept.size();
    stages.push_back(f);
  }

  steps_("format");
  // 7. split, over the records the format stage kept (`cluster` indexes `kept`, as in memory).
  std::vector<uint32_t> fk;  // positions in `kept`
  for (size_t k = 0; k < kept.size(); k++)
    if (formatted[k]) fk.push_back(uint32_t(k));
  // No cluster but each record's own (near dedup puts every record in one): 8 bytes a record less at
  // the moment memory peaks, and assign_splits sees none (its group of a record is then itself anyway).
  bool own = true;
  for (size_t j = 0; j < fk.size() && own; j++) own = cluster[fk[j]] < 0 || cluster[fk[j]] == int64_t(j);
  if (own) std::vector<int64_t>().swap(cluster);
  std::string id_buf;
  std::vector<int> split = assign_splits(
      fk.size(),
      [&](size_t j) -> const std::string& {
        id_buf = hex64(meta_[kept[fk[j]]].id);
        return id_buf;
      },
      [&](size_t j) -> const std::string& { return strata_[meta_[kept[fk[j]]].stratum]; },
      [&](size_t j) { return cluster.empty() ? int64_t(-1) : cluster[fk[j]]; }, cfg_.split);
  StageCounts sc("split");
  sc.in = sc.out = fk.size();
  stages.push_back(sc);
  std::vector<int8_t> split_of(kept.size(), -1);
  for (size_t j = 0; j < fk.size(); j++) split_of[fk[j]] = int8_t(split[j]);
  // What the writers do not need goes now: the writing phase holds the Metas, `kept` and `split_of`.
  const size_t records_kept = fk.size();
  std::vector<int>().swap(split);
  std::vector<uint32_t>().swap(fk);
  std::vector<int64_t>().swap(cluster);

  // Writing: the records files (and their statistics) and the token shards, side by side when there
  // are two threads or more (each reads the spool and writes its own files: at one thread each they
  // were 0.14 and 0.25 s of a 100 MB run, both after the parallel work), then manifest and report.
  fs::create_directories(cfg_.output);
  DatasetManifest m;
  m.config = cfg_.to_json();
  steps_("split");
  std::array<DatasetSplit, 3> shards;  // the shard facts of each split, merged below
  std::exception_ptr shard_error;
  std::thread beside;
  if (encoder_ && omp_get_max_threads() > 1)
    beside = std::thread([&] {
      try {
        write_token_shards(kept, split_of, shards);
      } catch (...) {
        shard_error = std::current_exception();
      }
    });
  try {
    write_records_and_statistics(kept, formatted, split_of, report, m);
  } catch (...) {
    if (beside.joinable()) beside.join();
    throw;
  }
  steps_("records files");
  if (beside.joinable()) beside.join();
  else if (encoder_) write_token_shards(kept, split_of, shards);
  if (shard_error) std::rethrow_exception(shard_error);
  std::string all_hashes;
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = m.splits[kSplitNames[s]];
    all_hashes += sp.records_hash;
    const DatasetSplit& t = shards[size_t(s)];  // all defaults for a split with no shard
    sp.shards = t.shards;
    sp.shard_hashes = t.shard_hashes;
    sp.sequences = t.sequences;
    sp.tokens = t.tokens;
    sp.label_tokens = t.label_tokens;
    sp.packed = t.packed;
    sp.bins = t.bins;
    if (!t.shard_hashes.empty()) all_hashes += t.shard_hashes.back();
  }
  finish_manifest(cfg_, m, encoder_ != nullptr, encoder_ ? encoder_->chat_template().source() : "", cr,
                  stages, all_hashes);
  steps_("token shards");
  write_report(cfg_, stages, records_kept, m, cr, warnings, encoder_ != nullptr, report);
  steps_("manifest+report");
  steps_.print();
}

}  // namespace lathe::data::stream_detail
