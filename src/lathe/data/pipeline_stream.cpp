// The streaming driver of `lathe data prepare` (issue #22): memory bounded by data.max_memory and
// 64 bytes per record, not by the corpus.
//
//   1. Records come from collect in batches (a JSONL file is read in pieces). Each batch goes through
//      map, clean and personal data (the in-memory driver's stage functions, whose counts and
//      examples add up over batches as over one pass), then per record: the dedup text's 64-bit hash,
//      MinHash band keys (near dedup), the contamination check, rendering + tokenizing, and its
//      records-file line. Line, text statistics and tokens go to the record spool (prepare_spool.h:
//      in memory under the budget, on disk beyond it); what the later stages need stays in memory as
//      a Meta (and 8 bytes per band, spooled, with near dedup).
//   2. Dedup, format verdicts and split run on the Metas: exact duplicates by hash, byte-compared by
//      reading only records whose hashes collide; near duplicates from the band keys, with signatures
//      recomputed for candidate pairs; the drops and examples in record order as before.
//   3. One pass over the spool copies the kept lines into the records files and adds up the text
//      statistics; each split's token shard is written from the spool into a safetensors file whose
//      header is known from the lengths. When every record goes to one split, that split's records
//      file was written while the records came (OneSplitRecords), and this pass is left out when what
//      it wrote proves to be what dedup and format kept.
//
// The outputs are the in-memory driver's byte for byte (tests/data_pipeline/prepare_identity_golden.cpp,
// and prepare_stream_e2e.cpp against LATHE_DATA_IN_MEMORY=1).
#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

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

namespace lathe::data {

namespace stream_detail {

namespace {

// Records per batch (at least; a batch is a JSONL piece): LATHE_DATA_BATCH_RECORDS overrides it.
// A batch's records are parsed into DOMs before the per-record pass and freed after it, so its size
// is how much memory is written and read back cold: 8,192 records (8 MiB pieces) took 3-6 % fewer
// CPU-seconds at one thread than 32,768 (32 MiB), and 80 MB less memory, for 100 MB with Qwen3.
// Much smaller batches were cheaper still at one thread but cost more at two (a barrier per stage
// and batch, and a thread spinning at each on a busy machine).
const size_t kBatchRecords = knob("LATHE_DATA_BATCH_RECORDS", 8192);
// Records per run of the per-record pass (see take_batch); LATHE_DATA_RUN_RECORDS: tests cross runs
// inside a batch with a few records.
const int64_t kRunRecords = int64_t(std::max<uint64_t>(1, knob("LATHE_DATA_RUN_RECORDS", 4096)));

// Meta::pos holds the one nonzero position a source has (line, page or item), when it fits 32 bits.
void set_position(Meta& mt, const Source& s, size_t index, std::map<size_t, std::array<int64_t, 3>>& wide) {
  const int nonzero = (s.line != 0) + (s.page != 0) + (s.item != 0);
  const int64_t v = s.line ? s.line : s.page ? s.page : s.item;
  if (nonzero > 1 || v < 0 || v > int64_t(UINT32_MAX)) {
    mt.flags |= kPosWide;
    wide[index] = {s.line, s.page, s.item};
    return;
  }
  mt.pos = uint32_t(v);
  if (s.line)
    mt.flags |= kPosLine;
  else if (s.page)
    mt.flags |= kPosPage;
  else if (s.item)
    mt.flags |= kPosItem;
}

// Labels are the ids with the prompt masked (kIgnoreIndex) for every record the encoder makes; they
// then travel as one bit a token, a ninth of the int32s (full labels otherwise).
void spool_tokens(const EncodedRecord& e, Meta& mt, std::string& out) {
  const size_t n = e.input_ids.size();
  // Ids bit-packed (no negative one): 17-18 bits each where int32 takes 32.
  if (const int w = packed_id_width(e.input_ids.data(), n)) {
    append_packed_ids(e.input_ids.data(), n, w, out);
    mt.flags |= uint16_t(kIdsPacked | (w << kIdWidthShift));
  } else {
    out.append(reinterpret_cast<const char*>(e.input_ids.data()), sizeof(int32_t) * n);
  }
  // One pass that writes the bits and checks they say it all (eight labels a byte, without branches:
  // the compiler vectorizes it); int32 labels instead when one is neither.
  const size_t at = out.size();
  out.resize(at + (n + 7) / 8);
  const int32_t* l = e.labels.data();
  const int32_t* ids = e.input_ids.data();
  bool bits = true;
  for (size_t j0 = 0; j0 < n; j0 += 8) {
    uint32_t b = 0;
    bool ok = true;
    for (size_t k = 0; k < 8 && j0 + k < n; k++) {
      const int32_t v = l[j0 + k];
      ok &= (v == kIgnoreIndex) | (v == ids[j0 + k]);
      b |= uint32_t(v != kIgnoreIndex) << k;
    }
    bits &= ok;
    out[at + j0 / 8] = char(b);
  }
  if (bits) {
    mt.flags |= kLabelBits;
    return;
  }
  out.resize(at);
  out.append(reinterpret_cast<const char*>(l), sizeof(int32_t) * n);
}

// The index of `s` in `names` (added when new). Records of a file come one after another, so the last
// name answers most calls without a map lookup.
uint32_t intern(const std::string& s, std::map<std::string, uint32_t, std::less<>>& ix,
                std::vector<std::string>& names) {
  if (!names.empty() && names.back() == s) return uint32_t(names.size() - 1);
  auto it = ix.find(s);
  if (it != ix.end()) return it->second;
  ix.emplace(s, uint32_t(names.size()));
  names.push_back(s);
  return uint32_t(names.size() - 1);
}

}  // namespace

std::string dedup_text(const nlohmann::json& j) {
  return j.contains("input_ids") ? j["input_ids"].dump() : record_text(j);
}

bool Streamer::read_all() {
  const int only = only_split(cfg_.split);
  // LATHE_DATA_EARLY_RECORDS=0: the writers' pass always (tests compare the two).
  const char* early = std::getenv("LATHE_DATA_EARLY_RECORDS");
  if (only >= 0 && !cfg_.dedup.near && prompts_.empty() && !(early && std::string_view(early) == "0")) {
    fs::create_directories(cfg_.output);
    early_ = std::make_unique<OneSplitRecords>(cfg_.output + "/" + kSplitNames[only] + ".records.jsonl", only);
  }
  try {
    const size_t piece =
        knob("LATHE_DATA_PIECE_BYTES", std::clamp<uint64_t>(budget_ / 128, 1u << 20, 64u << 20));
    CollectOptions co = collect_options(cfg_, tok_);
    co.whole_jsonl = whole_jsonl_;
    collect_batches(
        cfg_.inputs, co, kBatchRecords, piece,
        [&](std::vector<Record>& b) { offer_batch(b); }, rs_.cr);
    take_waiting();
  } catch (const NotStreamed&) {
    return false;
  }
  return true;
}

// The first batches arrive while the tokenizer may still be loading (0.15 s for Qwen3's): they wait
// here, and collect reads and parses the next piece meanwhile, instead of take_batch waiting for the
// load with the input untouched. In order: a batch goes on only after those that came before it.
void Streamer::offer_batch(std::vector<Record>& recs) {
  if (!encoder_made_ && waiting_.size() < kWaitingBatches && !tok_.ready()) {
    waiting_.push_back(std::move(recs));
    recs.clear();
    steps_("collect");
    return;
  }
  take_waiting();
  take_batch(recs);
}

void Streamer::take_waiting() {
  for (std::vector<Record>& w : waiting_) take_batch(w);
  waiting_.clear();
}

void Streamer::make_encoder() {
  if (encoder_made_) return;
  encoder_made_ = true;
  const Tokenizer* tok = tok_.get();
  if (!tok) return;
  RecordFormatOptions ro;
  ro.train_on_inputs = cfg_.format.train_on_inputs;
  ro.max_seq_length = cfg_.format.max_seq_length;
  encoder_ = std::make_unique<RecordEncoder>(RecordEncoder::for_model(*tok, cfg_.format.model, cfg_.format.chat_template, ro));
}

void Streamer::take_batch(std::vector<Record>& recs) {
  steps_("collect");
  make_encoder();
  steps_("tokenizer wait");
  StageCounts m = map_stage(recs, cfg_, rs_.shapes, rs_.kind);
  if (rs_.kind.kind.value_or(DatasetKind::Sft) != DatasetKind::Sft) throw NotStreamed{};
  merge_counts(rs_.map, m);
  steps_("map");
  // Clean and personal data run inside the per-record pass below, not as passes over the batch: a
  // record's text is cleaned, searched for personal data, hashed, tokenized and written out while it
  // is in the cache. Their counts are taken afterwards in record order, as clean_stage and pii_stage
  // take them (clean_records and pii_stage are the same per-record functions run over the batch).
  if (!pii_) pii_.emplace(cfg_.pii);
  const PiiPass& pii = *pii_;
  const int64_t n = int64_t(recs.size());
  const int B = mo_.bands;
  const size_t un = recs.size();
  std::vector<Meta> metas(un);
  std::vector<uint64_t> hashes(un);
  std::vector<uint64_t> keys(hasher_ ? un * B : 0);
  std::vector<std::string> texts(prompts_.empty() ? 0 : un);
  std::vector<std::string> bytes(un), toks(un), errors(un);
  std::vector<std::string> norms(cfg_.dedup.exact ? un : 0);  // normalized dedup texts, for recent_
  size_t batch_live = 0;  // the batch's records spooled so far
  std::vector<std::exception_ptr> fatal(un);
  std::vector<std::optional<std::string>> unclean(un);  // why clean drops the record
  std::vector<PiiPass::Found> found(un);
  std::vector<char> alive(un, 0);  // kept by clean and personal data: spooled
  // In runs of 4,096 records: a batch's spool bytes (its lines and tokens, ~3x the piece with a
  // tokenizer) are never all in memory at once. A run's bytes are copied into the spool by one thread
  // while the others start the next run (the copy and its fresh pages were a serial step: 0.2-0.3 s a
  // 100 MB at two threads); their offsets are fixed before, in record order, so the spool's bytes are
  // the same as appending each run before the next.
  for (int64_t r0 = 0; r0 < n; r0 += kRunRecords) {
    const int64_t r1 = std::min(n, r0 + kRunRecords);
    Unspooled to_spool;
    std::swap(to_spool, unspooled_);
    std::exception_ptr spool_error;
#pragma omp parallel
    {
#pragma omp single nowait
      try {
        spool_in_order(to_spool);
      } catch (...) {
        spool_error = std::current_exception();
      }
#pragma omp for schedule(dynamic, 16) nowait
      for (int64_t i = r0; i < r1; i++) {
        try {
          Record& r = recs[i];
          RecordTextFacts facts;
          if ((unclean[i] = clean_record(r.json, cfg_.clean, &facts))) continue;
          pii.find(r.json, found[i]);
          if (pii.drops(found[i])) continue;
          alive[i] = 1;
          Meta& mt = metas[i];
          // The text the filters read is the dedup text too, unless personal data was found in it since
          // (redacted) or there was none to read (pre-tokenized): read again then.
          const bool read_once = facts.has && found[i].empty();
          std::string text = read_once ? std::move(facts.text) : dedup_text(r.json);
          std::string norm = dedup_normalize(text);
          hashes[i] = XXH3_64bits(norm.data(), norm.size());
          if (hasher_ && hasher_->band_keys(norm, keys.data() + i * B)) mt.flags |= kHasKeys;
          if (cfg_.dedup.exact) norms[i] = std::move(norm);
          std::string& out = bytes[i];
          // The record as the records file will hold it, after its text statistics (the same text as the
          // dedup text unless the record is pretokenized).
          if (read_once) put_text_statistics(out, text, facts.chars);
          else put_text_statistics(out, r.json.contains("input_ids") ? record_text(r.json) : text);
          if (!texts.empty()) texts[i] = std::move(text);
          if (r.json.contains("messages")) mt.flags |= kHasMessages;
          json_dump_record(r.json, r.id, r.source, out);
          out += '\n';
          mt.rec_bytes = uint32_t(out.size());
          LATHE_CHECK(out.size() < UINT32_MAX, "{}: a record of {} bytes", r.source.where(), out.size());
          // Encoded after its line is written, so the encoder can take the record's strings over instead
          // of copying them (the record is not read again; its line got "_source" and "_id" without
          // their being added to it).
          EncodedRecord e;
          if (encoder_) {
            try {
              e = encoder_->encode(std::move(r.json));
            } catch (const Error& ex) {
              mt.flags |= kFailed;
              errors[i] = ex.what();
            }
          }
          if (encoder_ && !(mt.flags & kFailed)) {
            mt.ntok = uint32_t(e.input_ids.size());
            mt.full_length = uint32_t(e.full_length);
            mt.first_loss = uint32_t(first_loss_index(e.labels));
            if (e.truncated) mt.flags |= kTruncated;
            if (e.ends_with_eos) mt.flags |= kEndsEos;
            spool_tokens(e, mt, toks[i]);
          }
          // The record's DOM is read no more (the tallies below read its source): freed here, in
          // parallel, rather than by recs.clear() on one thread (8,192 DOMs a batch).
          nlohmann::json().swap(r.json);
        } catch (...) {
          fatal[i] = std::current_exception();
        }
      }
    }
    if (spool_error) std::rethrow_exception(spool_error);
    for (int64_t i = r0; i < r1; i++)
      if (fatal[i]) std::rethrow_exception(fatal[i]);
    steps_("per-record pass");
    for (int64_t i = r0; i < r1; i++) {
      if (!alive[i]) continue;
      Meta& mt = metas[i];
      LATHE_CHECK(bytes[i].size() == mt.rec_bytes && toks[i].size() == mt.tok_bytes(),
                  "record {}: {} + {} spool bytes, {} + {} expected", meta_.size() + size_t(i), bytes[i].size(),
                  toks[i].size(), mt.rec_bytes, mt.tok_bytes());
      mt.off = spool_end_;  // where spool_in_order will append them
      mt.set_tok_off(tok_end_);
      spool_end_ += bytes[i].size();
      tok_end_ += toks[i].size();
      unspooled_.recs.push_back(std::move(bytes[i]));
      unspooled_.toks.push_back(std::move(toks[i]));
      if (early_) {
        unspooled_.index.push_back(uint32_t(meta_.size() + batch_live));
        unspooled_.formats.push_back(!encoder_ || format_passes(facts_of(mt), cfg_.format));
      }
      // (its index once the batch's Metas are added below)
      if (!norms.empty()) unspooled_.texts.emplace_back(uint32_t(meta_.size() + batch_live), hashes[i], std::move(norms[i]));
      batch_live++;
    }
    steps_("spool");
  }
  // The clean and personal-data counts, in record order, as the stages over the batch count them.
  StageCounts cc("clean"), pc("pii");
  cc.in = cc.out = un;
  for (int64_t i = 0; i < n; i++)
    if (unclean[i]) clean_drop(recs[i], *unclean[i], cc), cc.out--;
  pc.in = pc.out = cc.out;
  for (int64_t i = 0; i < n; i++)
    if (!unclean[i] && !pii.tally(recs[i], found[i], pc, rs_.pii_summary)) pc.out--;
  merge_counts(rs_.clean, cc);
  merge_counts(rs_.pii, pc);
  std::vector<uint32_t> live;  // the batch's records that go on, in order
  for (int64_t i = 0; i < n; i++)
    if (alive[i]) live.push_back(uint32_t(i));
  const size_t nl = live.size();
  if (meta_.size() + nl >= UINT32_MAX)
    fail("data",
         "more than {} records in one run (dedup indexes them in 32 bits): prepare the input in parts",
         UINT32_MAX - 1);
  std::vector<int64_t> contaminated;
  if (!prompts_.empty()) {
    std::vector<std::string_view> tv, pv(prompts_.begin(), prompts_.end());
    for (uint32_t i : live) tv.push_back(texts[i]);
    contaminated = contamination_matches(tv, pv, mo_);
  }
  for (size_t k = 0; k < nl; k++) {
    const uint32_t i = live[k];
    Record& r = recs[i];
    Meta& mt = metas[i];
    mt.file = intern(r.source.file, file_ix_, files_);
    mt.stratum = intern(r.stratum, stratum_ix_, strata_);
    set_position(mt, r.source, meta_.size(), wide_pos_);
    // (from_chars: strtoull's locale and whitespace handling made it a serial step's largest part)
    const auto [end, ec] = std::from_chars(r.id.data(), r.id.data() + r.id.size(), mt.id, 16);
    LATHE_CHECK(r.id.size() == 16 && ec == std::errc() && end == r.id.data() + 16, "record id '{}' is not 16 hex digits",
                r.id);
    if (!contaminated.empty()) mt.contaminated = int32_t(contaminated[k]);
    if (!errors[i].empty()) errors_[meta_.size()] = std::move(errors[i]);
    meta_.push_back(mt);
    hashes_.push_back(hashes[i]);
  }
  if (hasher_ && nl > 0) {  // transposed to band-major for the key spool
    std::vector<uint64_t> t(nl * B);
    for (size_t k = 0; k < nl; k++)
      for (int b = 0; b < B; b++) t[size_t(b) * nl + k] = keys[size_t(live[k]) * B + b];
    key_blocks_.push_back(
        {meta_.size() - nl, nl, key_spool_.append({reinterpret_cast<const char*>(t.data()), 8 * t.size()})});
    key_spool_.seal();
  }
  recs.clear();
  steps_("spool");
  progress();
}

// A line on stderr every 10 s of a long run: records and bytes so far, and the rates.
void Streamer::progress() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_progress_ < std::chrono::seconds(10)) return;
  last_progress_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double mb = double(rs_.cr.bytes_read) / 1e6;
  const double n = double(rs_.cr.counts.in);
  std::fprintf(stderr, "data prepare: %.0f records, %.1f MB read in %.0f s (%.1f MB/s, %.0f records/s)\n", n,
               mb, secs, mb / secs, n / secs);
}

// Appends records' bytes whose offsets take_batch fixed (spool_end_), in that order, and frees them
// (finish() checks that the spool ends where the offsets said).
// With early_, also writes the records file as far as these records go (see OneSplitRecords).
void Streamer::spool_in_order(Unspooled& u) {
  for (size_t j = 0; j < u.recs.size(); j++) {
    spool_.append(u.recs[j]);
    tok_spool_.append(u.toks[j]);
    bool seen = false;  // an earlier record's text (exact dedup drops this one)
    if (!u.texts.empty()) {
      auto& [i, h, text] = u.texts[j];
      seen = recent_.add(i, h, std::move(text));
    }
    if (early_ && !seen) early_->add(u.index[j], u.recs[j], u.formats[j]);
    std::string().swap(u.recs[j]);
    std::string().swap(u.toks[j]);
  }
  u = {};
}

FormatFacts Streamer::facts_of(const Meta& mt) const {
  FormatFacts ff;
  ff.failed = mt.flags & kFailed;
  ff.truncated = mt.flags & kTruncated;
  ff.ends_with_eos = mt.flags & kEndsEos;
  ff.has_messages = mt.flags & kHasMessages;
  ff.full_length = mt.full_length;
  ff.tokens = mt.ntok;
  ff.first_loss = mt.first_loss;
  return ff;
}
// Record i's ids, or its labels, into dst (meta ntok values): decoded from the spool's bytes in place
// where they sit in memory, through `in`'s read-ahead when spilled to disk.
void Streamer::read_tokens(size_t i, bool labels, int32_t* dst, SpoolReader& in) const {
  const Meta& m = meta_[i];
  if (m.flags & kIdsPacked) {
    read_packed_ids(in.view(m.tok_off(), m.id_bytes()).data(), m.ntok, m.id_width(), dst);
  } else {
    std::memcpy(dst, in.view(m.tok_off(), sizeof(int32_t) * m.ntok).data(), sizeof(int32_t) * m.ntok);
  }
  if (!labels) return;
  const uint64_t labels_at = m.tok_off() + m.id_bytes();
  if (!(m.flags & kLabelBits)) {
    std::memcpy(dst, in.view(labels_at, sizeof(int32_t) * m.ntok).data(), sizeof(int32_t) * m.ntok);
    return;
  }
  const auto* bits = reinterpret_cast<const uint8_t*>(in.view(labels_at, m.label_bytes()).data());
  for (size_t j = 0; j < m.ntok; j++)
    if (!((bits[j / 8] >> (j % 8)) & 1)) dst[j] = kIgnoreIndex;
}

}  // namespace stream_detail

bool run_streaming(const DataConfig& cfg, const PendingTokenizer& tok, nlohmann::json& report) {
  std::vector<std::string> whole;  // JSONL files found not to be UTF-8 after records of theirs went on
  while (true) {
    try {
      stream_detail::Streamer st(cfg, tok);
      st.read_jsonl_whole(whole);
      if (!st.read_all()) return false;
      st.finish(report);
      return true;
    } catch (const JsonlNotUtf8& e) {
      // From the start, that file read whole: rare (a file that is UTF-8 for a piece or more, then not).
      std::fprintf(stderr, "data prepare: %s is not UTF-8 past its first piece: reading again, that file whole\n",
                   e.path.c_str());
      whole.push_back(e.path);
    }
  }
}

}  // namespace lathe::data
