// The streaming driver's record facts and its Streamer (pipeline_stream.cpp: reading, the per-record
// pass and dedup; pipeline_stream_write.cpp: format, split and the writers). Internal to lathe_data.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include <xxhash.h>

#include "lathe/core/file_io.h"
#include "lathe/data/dedup.h"
#include "lathe/data/pipeline_internal.h"
#include "lathe/data/prepare_spool.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/records/record_format.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe::data::stream_detail {

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
  kIdsPacked = 1024,  // token ids spooled bit-packed (packed_id_width bits each, in the bits below)
};
constexpr int kIdWidthShift = 11;  // flags bits 11-15: the packed ids' width (1-31)

// What stages 5-7 and the writers need of a record (56 bytes: at 6 M records this array is most of
// the resident memory); its text and tokens stay in the spools.
struct Meta {
  uint64_t off = 0;  // record spool: rec_bytes of text statistics + records-file line
  uint64_t id = 0;
  uint32_t rec_bytes = 0, ntok = 0;
  uint32_t pos = 0;  // the source line, page or item (flags say which)
  uint32_t file = 0, stratum = 0;
  int32_t contaminated = -1;  // eval prompt index
  uint32_t full_length = 0, first_loss = 0;
  uint16_t flags = 0;
  // Token spool: ntok ids (3 bytes or int32), then the labels, at tok_off (48 bits, in what would be
  // padding).
  uint16_t tok_off_hi = 0;
  uint32_t tok_off_lo = 0;
  uint64_t tok_off() const { return uint64_t(tok_off_hi) << 32 | tok_off_lo; }
  void set_tok_off(uint64_t v) {
    LATHE_CHECK(v < (uint64_t(1) << 48), "token spool offset {} past 2^48", v);
    tok_off_hi = uint16_t(v >> 32);
    tok_off_lo = uint32_t(v);
  }
  int id_width() const { return flags >> kIdWidthShift; }
  uint64_t id_bytes() const { return flags & kIdsPacked ? packed_id_bytes(ntok, id_width()) : 4 * uint64_t(ntok); }
  uint64_t label_bytes() const { return flags & kLabelBits ? (uint64_t(ntok) + 7) / 8 : 4 * uint64_t(ntok); }
  uint64_t tok_bytes() const { return id_bytes() + label_bytes(); }
};
static_assert(sizeof(Meta) == 56);

// The dedup text of a record, as the in-memory dedup stage takes it for SFT records.
std::string dedup_text(const nlohmann::json& j);

// Exact duplicates found while the records stream by: the normalized dedup texts of the most recent
// records (up to `cap` bytes), by hash. A record whose text is there already is known to equal that
// earlier record without either being read back; dedup then reads back only the hash groups this
// could not settle (their first member was gone from here when a twin came, or a collision).
class RecentTexts {
 public:
  explicit RecentTexts(uint64_t cap) : cap_(cap) {}
  // Record i (records come in order) with its hash and normalized dedup text; true when an earlier
  // record's text here equals it (the pair goes into `same`).
  bool add(uint32_t i, uint64_t hash, std::string&& text);
  // (record, the earlier record whose text it equals), in record order; the earlier one is never in
  // this list as a record itself (it was new here when it came).
  std::vector<std::pair<uint32_t, uint32_t>> same;

 private:
  struct Entry {
    uint32_t first, last;  // the record that brought the text, the last one that had it
    std::string text;
  };
  std::unordered_map<uint64_t, Entry> map_;
  std::deque<std::pair<uint64_t, uint32_t>> order_;  // (hash, record) as they came; stale once `last` moved on
  uint64_t bytes_ = 0;
  const uint64_t cap_;
};

// The records file of a run whose records all go to one split (one nonzero split ratio; no near dedup
// and no eval prompts, whose verdicts come only after the last record), written as the records come
// rather than by the writers' pass over the spool at the end, which read the spool and wrote the file
// with the cores idle (~1 s of a 1 GB run that was disk-bound there). What it writes is a prediction:
// a record is kept by dedup unless recent_ saw its text before, and by format when format_passes says
// so. finish() compares that with what dedup and format decide and commits the file only when they
// agree; a duplicate beyond recent_'s reach, or a hash shared by two texts, sends the run back to the
// writers' pass (the file is then dropped, never seen).
class OneSplitRecords {
 public:
  OneSplitRecords(const std::string& path, int split);
  ~OneSplitRecords();
  OneSplitRecords(const OneSplitRecords&) = delete;
  OneSplitRecords& operator=(const OneSplitRecords&) = delete;
  int split() const { return split_; }
  // Record i (in record order) predicted kept: its spool bytes (text statistics, then its line),
  // written when `formatted`.
  void add(uint32_t i, std::string_view rec, bool formatted);
  // The records add() took are exactly `kept` (record indices, rising), and it wrote those of them
  // that `formatted` (by position in `kept`) marks.
  bool matches(const std::vector<uint32_t>& kept, const std::vector<char>& formatted) const;
  // After matches(): the file renamed into place; its hash (hex) and record count, and the text
  // statistics of the kept records (script counts added to `scripts`).
  void commit(std::string& hash, size_t& count, std::map<std::string, size_t>& scripts, LengthHistogram& chars);

 private:
  static bool bit(const std::vector<uint64_t>& v, uint32_t i) { return i / 64 < v.size() && (v[i / 64] >> (i % 64)) & 1; }
  static void set(std::vector<uint64_t>& v, uint32_t i);
  const int split_;
  AtomicFileWriter out_;
  XXH3_state_t* h_;
  std::vector<uint64_t> taken_, wrote_;  // one bit a record (by index): predicted kept, written
  size_t taken_n_ = 0, wrote_n_ = 0;
  std::map<std::string, size_t> scripts_;
  LengthHistogram chars_;
};

class Streamer {
 public:
  Streamer(const DataConfig& cfg, const PendingTokenizer& tok)
      : cfg_(cfg),
        tok_(tok),
        budget_(memory_budget(cfg)),
        // LATHE_DATA_SPOOL_BYTES: both spools' memory (tests spill them to disk mid-run with a few bytes).
        // A quarter of the budget for the two spools, shared as their bytes are (records ~3:2 tokens).
        spool_(cfg.output, ".lathe-prepare-spool", knob("LATHE_DATA_SPOOL_BYTES", budget_ / 32 * 5)),
        tok_spool_(cfg.output, ".lathe-prepare-tokens", knob("LATHE_DATA_SPOOL_BYTES", budget_ / 32 * 3)),
        key_spool_(cfg.output, ".lathe-prepare-keys", knob("LATHE_DATA_SPOOL_BYTES", budget_ / 16)),
        // 4 MiB at the default budget (~4,000 records of 1 KB): a 1 GB run took 0.5 s longer in the
        // per-record pass with 32 MiB (the texts crowd the caches). LATHE_DATA_RECENT_BYTES: tests hold
        // a text or none.
        recent_(cfg.dedup.exact ? knob("LATHE_DATA_RECENT_BYTES", budget_ / 256) : 0) {
    mo_.threshold = cfg.dedup.threshold;
    mo_.ngram = cfg.dedup.ngram;
    if (cfg.dedup.near) hasher_ = std::make_unique<MinHasher>(mo_);
    if (!cfg.dedup.eval_prompts.empty()) prompts_ = read_eval_prompts(cfg.dedup.eval_prompts, cfg.collect);
  }

  // Stages 1-4 and the per-record work; false when the records are preference records.
  bool read_all();
  // JSONL files read_all() reads whole (CollectOptions::whole_jsonl).
  void read_jsonl_whole(std::vector<std::string> paths) { whole_jsonl_ = std::move(paths); }

  void finish(nlohmann::json& report);

 private:
  struct NotStreamed {};
  // The encoder, made once the tokenizer has loaded (at the first batch, or at finish() without one).
  void make_encoder();
  void take_batch(std::vector<Record>& recs);
  void offer_batch(std::vector<Record>& recs);
  void take_waiting();
  static constexpr size_t kWaitingBatches = 4;  // collected while the tokenizer loads, at most
  std::vector<std::vector<Record>> waiting_;
  std::vector<std::string> whole_jsonl_;
  struct Unspooled {  // a run's spool bytes and recent texts, added in order beside the next run's work
    std::vector<std::string> recs, toks;
    std::vector<std::tuple<uint32_t, uint64_t, std::string>> texts;  // with exact dedup
    std::vector<uint32_t> index;  // of each record (with early_)
    std::vector<char> formats;    // format_passes (with early_)
  };
  void spool_in_order(Unspooled& u);
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
  // The dedup text of a record from its spooled bytes (text statistics + records-file line); of record i.
  static std::string dedup_text_of(std::string_view rec);
  std::string read_dedup_text(size_t i) const;
  // fn(k0, k1, rec) for consecutive ranges of `recs` (rising record indices, hence rising spool offsets),
  // where rec(k) is the spooled bytes of record recs[k], k in [k0, k1), valid during the call (and safe
  // to call from several threads). On disk, each range is one read, the next read while fn runs.
  using RecordBytes = std::function<std::string_view(size_t)>;
  using ScanWindow = std::function<void(size_t k0, size_t k1, const RecordBytes& rec)>;
  void scan_records(const std::vector<uint32_t>& recs, const ScanWindow& fn) const;
  std::vector<uint32_t> exact_duplicates();
  void read_tokens(size_t i, bool labels, int32_t* dst, SpoolReader& in) const;
  StageCounts dedup(nlohmann::json& info, std::vector<int64_t>& cluster, std::vector<uint32_t>& kept);
  void report_clusters(const std::vector<std::pair<size_t, size_t>>& pairs, nlohmann::json& out) const;
  void write_records_and_statistics(const std::vector<uint32_t>& kept, const std::vector<char>& formatted,
                                    const std::vector<int8_t>& split_of, nlohmann::json& report,
                                    DatasetManifest& m);
  void write_token_shards(const std::vector<uint32_t>& kept, const std::vector<int8_t>& split_of,
                          std::array<DatasetSplit, 3>& shards) const;

  const DataConfig& cfg_;
  const PendingTokenizer& tok_;
  bool encoder_made_ = false;
  const uint64_t budget_;
  // Records (text statistics + records-file line) and tokens (ids + labels) in two spools: the
  // records files read only the first, the token shards only the second (twice: ids, then labels).
  Spool spool_, tok_spool_;
  // The last run's records and tokens, offsets fixed (Meta::off, tok_off) but not yet in the spools,
  // and its dedup texts: added while the next run is worked on, or by finish() before the spools are
  // read. spool_end_, tok_end_: the spools' sizes once they are.
  Unspooled unspooled_;
  uint64_t spool_end_ = 0, tok_end_ = 0;
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
  RecentTexts recent_;
  std::unique_ptr<OneSplitRecords> early_;  // made by read_all() when the run qualifies
  FormatFacts facts_of(const Meta& mt) const;
  std::vector<std::string> files_, strata_;
  std::map<std::string, uint32_t, std::less<>> file_ix_, stratum_ix_;
  std::map<size_t, std::string> errors_;               // format errors by record
  std::map<size_t, std::array<int64_t, 3>> wide_pos_;  // (line, page, item) of records flagged kPosWide
};

}  // namespace lathe::data::stream_detail
