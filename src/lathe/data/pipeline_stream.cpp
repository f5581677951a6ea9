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
//      header is known from the lengths.
//
// The outputs are the in-memory driver's byte for byte (tests/data_pipeline/prepare_identity_golden.cpp,
// and prepare_stream_e2e.cpp against LATHE_DATA_IN_MEMORY=1).
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

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/ignore_index.h"
#include "lathe/data/dedup.h"
#include "lathe/data/json_fast.h"
#include "lathe/data/pipeline_internal.h"
#include "lathe/data/prepare_spool.h"
#include "lathe/formats/token_shard.h"
#include "lathe/records/record_format.h"
#include "lathe/records/token_labels.h"
#include "lathe/tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace lathe::data {

namespace {

// Records per batch (at least; a batch is a JSONL piece): LATHE_DATA_BATCH_RECORDS overrides it.
// A batch's records are parsed into DOMs before the per-record pass and freed after it, so its size
// is how much memory is written and read back cold: 8,192 records (8 MiB pieces) took 3-6 % fewer
// CPU-seconds at one thread than 32,768 (32 MiB), and 80 MB less memory, for 100 MB with Qwen3.
// Much smaller batches were cheaper still at one thread but cost more at two (a barrier per stage
// and batch, and a thread spinning at each on a busy machine).
const size_t kBatchRecords = knob("LATHE_DATA_BATCH_RECORDS", 8192);

enum : uint16_t {
  kFailed = 1,
  kTruncated = 2,
  kEndsEos = 4,
  kHasMessages = 8,
  kHasKeys = 16,
  kLabelBits = 32,  // labels spooled as one bit per token: ids[j] (set) or kIgnoreIndex
  // Which of Source's positions Meta::pos holds (none: all are 0); kPosWide: positions that do not
  // fit it, kept in Streamer::wide_pos_.
  kPosLine = 64,
  kPosPage = 128,
  kPosItem = 256,
  kPosWide = 512,
  kIds24 = 1024,  // token ids spooled in 3 bytes each (all below 2^24: every vocabulary we load)
};

// What stages 5-7 and the writers need of a record (56 bytes: at 6 M records this array is most of
// the resident memory); its text and tokens stay in the spool.
struct Meta {
  uint64_t off = 0;  // spool: rec_bytes of text statistics + records-file line, ntok ids (3 bytes or int32), labels
  uint64_t id = 0;
  uint32_t rec_bytes = 0, ntok = 0;
  uint32_t pos = 0;  // the source line, page or item (flags say which)
  uint32_t file = 0, stratum = 0;
  int32_t contaminated = -1;  // eval prompt index
  uint32_t full_length = 0, first_loss = 0;
  uint16_t flags = 0;
  uint64_t id_bytes() const { return (flags & kIds24 ? 3 : 4) * uint64_t(ntok); }
  uint64_t label_bytes() const { return flags & kLabelBits ? (uint64_t(ntok) + 7) / 8 : 4 * uint64_t(ntok); }
  uint64_t spool_bytes() const { return rec_bytes + id_bytes() + label_bytes(); }
};
static_assert(sizeof(Meta) == 56);

// The dedup text of a record, as the in-memory dedup stage takes it for SFT records.
std::string dedup_text(const nlohmann::json& j) {
  return j.contains("input_ids") ? j["input_ids"].dump() : record_text(j);
}

class Streamer {
 public:
  Streamer(const DataConfig& cfg, const Tokenizer* tok)
      : cfg_(cfg),
        tok_(tok),
        budget_(memory_budget(cfg)),
        // LATHE_DATA_SPOOL_BYTES: both spools' memory (tests spill them to disk mid-run with a few bytes).
        spool_(cfg.output, ".lathe-prepare-spool", knob("LATHE_DATA_SPOOL_BYTES", budget_ / 4)),
        key_spool_(cfg.output, ".lathe-prepare-keys", knob("LATHE_DATA_SPOOL_BYTES", budget_ / 16)) {
    mo_.threshold = cfg.dedup.threshold;
    mo_.ngram = cfg.dedup.ngram;
    if (cfg.dedup.near) hasher_ = std::make_unique<MinHasher>(mo_);
    if (!cfg.dedup.eval_prompts.empty()) prompts_ = read_eval_prompts(cfg.dedup.eval_prompts, cfg.collect);
    if (tok) {
      RecordFormatOptions ro;
      ro.train_on_inputs = cfg.format.train_on_inputs;
      ro.max_seq_length = cfg.format.max_seq_length;
      encoder_ = std::make_unique<RecordEncoder>(
          RecordEncoder::for_model(*tok, cfg.format.model, cfg.format.chat_template, ro));
    }
  }

  // Stages 1-4 and the per-record work; false when the records are preference records.
  bool read_all() {
    try {
      const size_t piece =
          knob("LATHE_DATA_PIECE_BYTES", std::clamp<uint64_t>(budget_ / 128, 1u << 20, 64u << 20));
      collect_batches(
          cfg_.inputs, collect_options(cfg_, tok_), kBatchRecords, piece,
          [&](std::vector<Record>& b) { take_batch(b); }, rs_.cr);
    } catch (const NotStreamed&) {
      return false;
    }
    return true;
  }

  void finish(nlohmann::json& report);

 private:
  struct NotStreamed {};
  void take_batch(std::vector<Record>& recs);
  void progress();
  StepProfile steps_;  // LATHE_VERBOSE=1: wall seconds per step (collect = reading and parsing)
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_progress_ = start_;
  Source source_of(size_t i) const {
    const Meta& m = meta_[i];
    Source s{files_[m.file], 0, 0, 0};
    if (m.flags & kPosWide) {
      const auto& w = wide_pos_.at(i);
      s.line = w[0], s.page = w[1], s.item = w[2];
    } else {
      (m.flags & kPosLine ? s.line : m.flags & kPosPage ? s.page : s.item) = m.pos;
    }
    return s;
  }
  std::string where(size_t i) const { return source_of(i).where(); }
  std::string read_dedup_text(size_t i) const;
  void read_tokens(size_t i, std::vector<int32_t>& ids, std::vector<int32_t>& labels, bool want_labels) const;
  StageCounts dedup(nlohmann::json& info, std::vector<int64_t>& cluster, std::vector<uint32_t>& kept);
  void report_clusters(const std::vector<std::pair<size_t, size_t>>& pairs, nlohmann::json& out) const;
  void write_records_and_statistics(const std::vector<uint32_t>& kept, const std::vector<char>& formatted,
                                    const std::vector<int8_t>& split_of, nlohmann::json& report,
                                    DatasetManifest& m);

  const DataConfig& cfg_;
  const Tokenizer* tok_;
  const uint64_t budget_;
  Spool spool_;
  // Near dedup's band keys, per batch band by band (batch j's band b: count_j keys at off_j + 8·b·count_j),
  // so that clustering reads one band at a time instead of holding bands × 8 bytes per record.
  Spool key_spool_;
  struct KeyBlock {
    size_t first = 0, count = 0;
    uint64_t off = 0;
  };
  std::vector<KeyBlock> key_blocks_;
  MinHashOptions mo_;
  std::unique_ptr<MinHasher> hasher_;
  std::vector<std::string> prompts_;
  std::unique_ptr<RecordEncoder> encoder_;
  std::optional<PiiPass> pii_;  // made at the first batch, where pii_stage would make its detector
  RecordStages rs_;
  ChunkedArray<Meta> meta_;
  // XXH3-64 of each normalized dedup text (exact dedup: records with equal hashes are compared byte
  // for byte, so the hash only has to make such groups rare, not prove equality).
  ChunkedArray<uint64_t> hashes_;
  std::vector<std::string> files_, strata_;
  std::map<std::string, uint32_t, std::less<>> file_ix_, stratum_ix_;
  std::map<size_t, std::string> errors_;               // format errors by record
  std::map<size_t, std::array<int64_t, 3>> wide_pos_;  // (line, page, item) of records flagged kPosWide
};

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
  // Ids in 3 bytes when they fit: a quarter less spool (memory, and pages the kernel faults in and zeroes).
  if (append_ids24(e.input_ids.data(), n, out)) mt.flags |= kIds24;
  else out.append(reinterpret_cast<const char*>(e.input_ids.data()), sizeof(int32_t) * n);
  bool bits = true;
  for (size_t j = 0; j < n && bits; j++) bits = e.labels[j] == kIgnoreIndex || e.labels[j] == e.input_ids[j];
  if (!bits) {
    out.append(reinterpret_cast<const char*>(e.labels.data()), sizeof(int32_t) * n);
    return;
  }
  mt.flags |= kLabelBits;
  const size_t at = out.size();
  out.resize(at + (n + 7) / 8, '\0');
  for (size_t j = 0; j < n; j++)
    if (e.labels[j] != kIgnoreIndex) out[at + j / 8] = char(uint8_t(out[at + j / 8]) | (1u << (j % 8)));
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

void Streamer::take_batch(std::vector<Record>& recs) {
  steps_("collect");
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
  std::vector<std::string> bytes(un), errors(un);
  std::vector<std::exception_ptr> fatal(un);
  std::vector<std::optional<std::string>> unclean(un);  // why clean drops the record
  std::vector<PiiPass::Found> found(un);
  std::vector<char> alive(un, 0);  // kept by clean and personal data: spooled
  // In runs of 4,096 records, each spooled before the next starts: a batch's spool bytes (its lines
  // and tokens, ~3x the piece with a tokenizer) are never all in memory at once.
  constexpr int64_t kRun = 4096;
  for (int64_t r0 = 0; r0 < n; r0 += kRun) {
    const int64_t r1 = std::min(n, r0 + kRun);
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = r0; i < r1; i++) {
      try {
        Record& r = recs[i];
        if ((unclean[i] = clean_record(r.json, cfg_.clean))) continue;
        pii.find(r.json, found[i]);
        if (pii.drops(found[i])) continue;
        alive[i] = 1;
        Meta& mt = metas[i];
        std::string text = dedup_text(r.json);
        const std::string norm = dedup_normalize(text);
        hashes[i] = XXH3_64bits(norm.data(), norm.size());
        if (hasher_ && hasher_->band_keys(norm, keys.data() + i * B)) mt.flags |= kHasKeys;
        std::string& out = bytes[i];
        // The record as the records file will hold it, after its text statistics (the same text as the
        // dedup text unless the record is pretokenized).
        put_text_statistics(out, r.json.contains("input_ids") ? record_text(r.json) : text);
        if (!texts.empty()) texts[i] = std::move(text);
        if (r.json.contains("messages")) mt.flags |= kHasMessages;
        r.json["_source"] = r.source.to_json();
        r.json["_id"] = r.id;
        json_dump_fast(r.json, out);
        out += '\n';
        mt.rec_bytes = uint32_t(out.size());
        LATHE_CHECK(out.size() < UINT32_MAX, "{}: a record of {} bytes", r.source.where(), out.size());
        // Encoded after its line is written, so the encoder can take the record's strings over instead
        // of copying them (the record is not read again; "_source" and "_id" are no field it reads).
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
          spool_tokens(e, mt, out);
        }
      } catch (...) {
        fatal[i] = std::current_exception();
      }
    }
    for (int64_t i = r0; i < r1; i++)
      if (fatal[i]) std::rethrow_exception(fatal[i]);
    steps_("per-record pass");
    for (int64_t i = r0; i < r1; i++) {
      if (!alive[i]) continue;
      Meta& mt = metas[i];
      mt.off = spool_.append(bytes[i]);
      LATHE_CHECK(bytes[i].size() == mt.spool_bytes(), "record {}: {} spool bytes, {} expected",
                  meta_.size() + size_t(i), bytes[i].size(), mt.spool_bytes());
      std::string().swap(bytes[i]);
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
    LATHE_CHECK(r.id.size() == 16, "record id '{}' is not 16 hex digits", r.id);
    mt.id = std::stoull(r.id, nullptr, 16);
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

// The dedup text of a spooled record, from its records-file line (whose added "_source" and "_id"
// the dedup text does not read).
std::string Streamer::read_dedup_text(size_t i) const {
  std::string b(meta_[i].rec_bytes, '\0');
  spool_.read(meta_[i].off, b.size(), b.data());
  size_t char_len = 0;
  const size_t at = get_text_statistics(b, char_len, nullptr);
  const std::string_view line = std::string_view(b).substr(at, b.size() - at - 1);
  nlohmann::json j;
  if (!json_parse_fast(line, j)) j = nlohmann::json::parse(line);
  return dedup_text(j);
}

void Streamer::read_tokens(size_t i, std::vector<int32_t>& ids, std::vector<int32_t>& labels,
                           bool want_labels) const {
  const Meta& m = meta_[i];
  ids.resize(m.ntok);
  if (m.flags & kIds24) {
    thread_local std::string packed;
    packed.resize(m.id_bytes());
    spool_.read(m.off + m.rec_bytes, packed.size(), packed.data());
    read_ids24(packed.data(), m.ntok, ids.data());
  } else {
    spool_.read(m.off + m.rec_bytes, sizeof(int32_t) * m.ntok, ids.data());
  }
  if (!want_labels) return;
  labels.resize(m.ntok);
  const uint64_t labels_at = m.off + m.rec_bytes + m.id_bytes();
  if (!(m.flags & kLabelBits)) {
    spool_.read(labels_at, sizeof(int32_t) * m.ntok, labels.data());
    return;
  }
  std::string bits(m.label_bytes(), '\0');
  spool_.read(labels_at, bits.size(), bits.data());
  for (size_t j = 0; j < m.ntok; j++)
    labels[j] = (uint8_t(bits[j / 8]) >> (j % 8)) & 1 ? ids[j] : kIgnoreIndex;
}

// Up to 20 clusters (by representative, in record order), as the in-memory dedup reports them;
// `pairs` = (representative, member) of every dropped or clustered member, in member order.
void Streamer::report_clusters(const std::vector<std::pair<size_t, size_t>>& pairs,
                               nlohmann::json& out) const {
  std::map<size_t, std::vector<size_t>> groups;
  for (auto& [rep, member] : pairs) {
    auto it = groups.find(rep);
    if (it == groups.end() && groups.size() >= 20 && rep > groups.rbegin()->first) continue;
    groups[rep].push_back(member);
    if (groups.size() > 20) groups.erase(std::prev(groups.end()));
  }
  for (auto& [rep, members] : groups) {
    nlohmann::json c{
        {"kept", where(rep)}, {"kept_text", snippet(read_dedup_text(rep))}, {"size", members.size() + 1}};
    for (size_t m = 0; m < std::min<size_t>(members.size(), 3); m++)
      c["duplicates"].push_back(where(members[m]));
    out.push_back(c);
  }
}

// Stage 5 on the Metas: `kept` = the surviving records in order, `cluster` their near-duplicate
// cluster as an index into `kept` (-1: none), as the in-memory dedup stage renumbers them.
StageCounts Streamer::dedup(nlohmann::json& info, std::vector<int64_t>& cluster,
                            std::vector<uint32_t>& kept) {
  const auto& o = cfg_.dedup;
  StageCounts counts("dedup");
  info = {{"exact_clusters", nlohmann::json::array()}, {"near_clusters", nlohmann::json::array()}};
  const size_t n = meta_.size();
  counts.in = n;
  // Record indices as 32 bits (take_batch stops a run before 2^32 - 1 records): these arrays and the
  // Metas are what is resident when dedup runs.
  constexpr uint32_t kNone = UINT32_MAX;
  std::vector<char> drop(n, 0);
  std::vector<uint32_t> cl_of(n, kNone);
  if (o.exact) {
    // Records in (hash, record) order; within a run of equal hashes the normalized texts are compared,
    // so a collision never merges two texts (the records read again are only those with a twin hash).
#pragma pack(push, 4)
    struct Keyed {
      uint64_t h;
      uint32_t i;
    };
#pragma pack(pop)
    static_assert(sizeof(Keyed) == 12);
    std::vector<Keyed> order(n);
    for (size_t i = 0; i < n; i++) order[i] = {hashes_[i], uint32_t(i)};
    hashes_.clear();  // needed no more
    std::sort(order.begin(), order.end(),
              [](const Keyed& a, const Keyed& b) { return a.h != b.h ? a.h < b.h : a.i < b.i; });
    std::vector<uint32_t> rep(n, kNone);
    for (size_t s = 0; s < n;) {
      size_t e = s + 1;
      while (e < n && order[e].h == order[s].h) e++;
      if (e - s > 1) {
        std::vector<std::string> norm(e - s);
        for (size_t k = s; k < e; k++) norm[k - s] = dedup_normalize(read_dedup_text(order[k].i));
        std::vector<size_t> reps;  // positions in [s, e) of distinct texts, first seen first
        for (size_t k = s; k < e; k++) {
          size_t r = k;
          for (size_t q : reps)
            if (norm[q - s] == norm[k - s]) {
              r = q;
              break;
            }
          if (r == k)
            reps.push_back(k);
          else
            rep[order[k].i] = order[r].i;
        }
      }
      s = e;
    }
    std::vector<Keyed>().swap(order);
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t i = 0; i < n; i++)
      if (rep[i] != kNone) {
        pairs.emplace_back(size_t(rep[i]), i);
        drop[i] = 1;
        counts.drop("exact duplicate", where(i) + ": duplicate of " + where(size_t(rep[i])));
      }
    report_clusters(pairs, info["exact_clusters"]);
  }
  hashes_.clear();
  if (o.near) {
    std::vector<uint32_t> idx;
    for (size_t i = 0; i < n; i++)
      if (!drop[i]) idx.push_back(uint32_t(i));
    std::vector<uint32_t> pos(n, kNone);  // record -> its place in idx
    for (size_t k = 0; k < idx.size(); k++) pos[idx[k]] = uint32_t(k);
    std::vector<uint64_t> block;
    auto cl = near_clusters_from_keys(
        int64_t(idx.size()),
        [&](int band, std::vector<std::pair<uint64_t, int64_t>>& bucket) {
          for (const KeyBlock& kb : key_blocks_) {
            block.resize(kb.count);
            key_spool_.read(kb.off + 8 * uint64_t(band) * kb.count, 8 * kb.count, block.data());
            for (size_t j = 0; j < kb.count; j++) {
              const size_t i = kb.first + j;
              if (pos[i] != kNone && (meta_[i].flags & kHasKeys))
                bucket.emplace_back(block[j], int64_t(pos[i]));
            }
          }
        },
        [&](int64_t k, uint32_t* sig) { hasher_->signature(dedup_normalize(read_dedup_text(idx[k])), sig); },
        mo_);
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t k = 0; k < cl.size(); k++) {
      const size_t i = idx[k], r = idx[size_t(cl[k])];
      cl_of[i] = uint32_t(r);
      if (cl[k] == int64_t(k)) continue;
      pairs.emplace_back(r, i);
      if (o.near_action == "drop") {
        drop[i] = 1;
        counts.drop("near duplicate", where(i) + ": near " + where(r));
      }
    }
    report_clusters(pairs, info["near_clusters"]);
  }
  if (!prompts_.empty()) {
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
      if (drop[i] || meta_[i].contaminated < 0) continue;
      hits++;
      std::string ex =
          where(i) + ": matches eval prompt \"" + snippet(prompts_[size_t(meta_[i].contaminated)], 80) + "\"";
      if (o.contamination_action == "drop") {
        drop[i] = 1;
        counts.drop("contaminated (eval prompt)", ex);
      } else if (info["contamination_examples"].size() < 10) {
        info["contamination_examples"].push_back(ex);
      }
    }
    info["eval_prompts"] = prompts_.size();
    info["contaminated"] = hits;
  }
  for (size_t i = 0; i < n; i++)
    if (!drop[i]) kept.push_back(uint32_t(i));
  counts.out = kept.size();
  // Cluster ids were record indices; renumbered as indices into `kept` of each cluster's first survivor.
  std::map<uint32_t, int64_t> remap;
  cluster.assign(kept.size(), -1);
  for (size_t k = 0; k < kept.size(); k++) {
    const uint32_t c = cl_of[kept[k]];
    if (c != kNone && !remap.count(c)) remap[c] = int64_t(k);
  }
  for (size_t k = 0; k < kept.size(); k++)
    if (cl_of[kept[k]] != kNone) cluster[k] = remap[cl_of[kept[k]]];
  return counts;
}

// Records files of the three splits and the text statistics of every record dedup kept, in one pass
// over the spool: blocks of records read and serialized in parallel, written in record order.
void Streamer::write_records_and_statistics(const std::vector<uint32_t>& kept,
                                            const std::vector<char>& formatted,
                                            const std::vector<int8_t>& split_of, nlohmann::json& report,
                                            DatasetManifest& m) {
  constexpr int64_t kBlock = 1024, kWindow = 32;
  std::array<std::unique_ptr<AtomicFileWriter>, 3> out;
  std::array<XXH3_state_t*, 3> h{};
  std::array<size_t, 3> count{};
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = m.splits[kSplitNames[s]];
    sp.records = std::string(kSplitNames[s]) + ".records.jsonl";
    out[s] = std::make_unique<AtomicFileWriter>(cfg_.output + "/" + sp.records);
    h[s] = XXH3_createState();
    XXH3_64bits_reset(h[s]);
  }
  std::map<std::string, size_t> scripts, sources;
  std::vector<size_t> char_lens(kept.size());
  const int64_t nblocks = (int64_t(kept.size()) + kBlock - 1) / kBlock;
  std::vector<std::array<std::string, 3>> blocks(kWindow);
  std::vector<std::map<std::string, size_t>> block_scripts(kWindow);
  for (int64_t w0 = 0; w0 < nblocks; w0 += kWindow) {
    const int64_t w1 = std::min(nblocks, w0 + kWindow);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = w0; b < w1; b++) {
      auto& bufs = blocks[b - w0];
      for (auto& x : bufs) x.clear();
      auto& sc = block_scripts[b - w0];
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
        const size_t at = get_text_statistics(rec, char_lens[k], &sc);
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
    }
  }
  for (size_t k = 0; k < kept.size(); k++) sources[files_[meta_[kept[k]].file]]++;
  for (size_t k = 0; k < kept.size(); k++)
    if (formatted[k]) count[size_t(split_of[k])]++;
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = m.splits[kSplitNames[s]];
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
  report["char_length_histogram"] = hist_json(char_lens);
}

void Streamer::finish(nlohmann::json& report) {
  CollectResult& cr = rs_.cr;
  std::vector<StageCounts> stages = {cr.counts, rs_.map, rs_.clean, rs_.pii};
  std::vector<std::string> warnings = cr.warnings;
  report["shapes"] = rs_.shapes;
  const PiiSummary& ps = rs_.pii_summary;
  report["pii"] = {{"policy", cfg_.pii.policy}, {"hits", ps.hits}, {"examples", ps.examples}};
  std::vector<int64_t> cluster;  // by position in `kept`
  std::vector<uint32_t> kept;    // record indices
  steps_("collect");             // the last piece after the last batch
  spool_.seal();
  key_spool_.seal();
  stages.push_back(dedup(report["dedup"], cluster, kept));
  steps_("dedup");

  // 6. format verdicts, in record order, from what the encoder left in the Metas.
  std::vector<char> formatted(kept.size(), 1);
  if (encoder_) {
    FormatTally tally;
    tally.counts.in = kept.size();
    for (size_t k = 0; k < kept.size(); k++) {
      const Meta& mt = meta_[kept[k]];
      FormatFacts ff;
      ff.failed = mt.flags & kFailed;
      auto err = errors_.find(kept[k]);
      ff.error = err == errors_.end() ? nullptr : &err->second;
      ff.truncated = mt.flags & kTruncated;
      ff.ends_with_eos = mt.flags & kEndsEos;
      ff.has_messages = mt.flags & kHasMessages;
      ff.full_length = mt.full_length;
      ff.tokens = mt.ntok;
      ff.first_loss = mt.first_loss;
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
  std::vector<size_t> fk;  // positions in `kept`
  for (size_t k = 0; k < kept.size(); k++)
    if (formatted[k]) fk.push_back(k);
  std::string id_buf;
  std::vector<int> split = assign_splits(
      fk.size(),
      [&](size_t j) -> const std::string& {
        id_buf = hex64(meta_[kept[fk[j]]].id);
        return id_buf;
      },
      [&](size_t j) -> const std::string& { return strata_[meta_[kept[fk[j]]].stratum]; },
      [&](size_t j) { return cluster[fk[j]]; }, cfg_.split);
  StageCounts sc("split");
  sc.in = sc.out = fk.size();
  stages.push_back(sc);
  std::vector<int8_t> split_of(kept.size(), -1);
  for (size_t j = 0; j < fk.size(); j++) split_of[fk[j]] = int8_t(split[j]);
  // What the writers do not need goes now: the writing phase holds the Metas, `kept` and `split_of`.
  const size_t records_kept = fk.size();
  std::vector<int>().swap(split);
  std::vector<size_t>().swap(fk);
  std::vector<int64_t>().swap(cluster);

  // Writing: records and statistics, then the token shards, then manifest and report.
  fs::create_directories(cfg_.output);
  DatasetManifest m;
  m.config = cfg_.to_json();
  steps_("split");
  write_records_and_statistics(kept, formatted, split_of, report, m);
  steps_("records files");
  std::string all_hashes;
  for (int s = 0; s < 3; s++) {
    DatasetSplit& sp = m.splits[kSplitNames[s]];
    all_hashes += sp.records_hash;
    if (!encoder_ || sp.records_count == 0) continue;
    std::vector<uint32_t> idx;  // records of this split, in shard order
    for (size_t k = 0; k < kept.size(); k++)
      if (split_of[k] == s) idx.push_back(kept[k]);
    TokenShardPlan plan;
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
    std::vector<int32_t> ids, labels;
    const std::string shard = std::string(kSplitNames[s]) + ".tokens-00000.safetensors";
    const uint64_t shard_hash =
        write_token_shard_streamed(cfg_.output + "/" + shard, plan, {{"split", kSplitNames[s]}},
                                   [&](size_t q, bool want_labels, std::vector<int32_t>& buf) {
                                     read_tokens(idx[q], ids, labels, want_labels);
                                     if (want_labels) label_tokens += count_loss_labels(labels);
                                     buf.swap(want_labels ? labels : ids);
                                   });
    sp.shards.push_back(shard);
    sp.sequences = idx.size();
    sp.tokens = 0;
    for (size_t l : plan.lengths) sp.tokens += l;
    sp.label_tokens = label_tokens;
    sp.shard_hashes.push_back(hex64(shard_hash));
    all_hashes += sp.shard_hashes.back();
  }
  finish_manifest(cfg_, m, encoder_ != nullptr, encoder_ ? encoder_->chat_template().source() : "", cr,
                  stages, all_hashes);
  steps_("token shards");
  write_report(cfg_, stages, records_kept, m, cr, warnings, encoder_ != nullptr, report);
  steps_("manifest+report");
  steps_.print();
}

}  // namespace

bool run_streaming(const DataConfig& cfg, const Tokenizer* tok, nlohmann::json& report) {
  Streamer st(cfg, tok);
  if (!st.read_all()) return false;
  st.finish(report);
  return true;
}

}  // namespace lathe::data
