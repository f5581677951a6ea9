// Shared between the stage driver (pipeline.cpp) and its sharded front end (pipeline_dist.cpp): the
// stages that look at one record at a time (collect → map → clean → personal data), whose results a
// job under mpirun computes per rank on a share of the input files and joins on rank 0 before the
// stages that compare records (dedup, contamination, split) and the writing of the dataset.
#pragma once
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lathe/data/pending_tokenizer.h"
#include "lathe/data/pipeline.h"
#include "lathe/data/pii.h"
#include "lathe/dist/comm.h"
#include "lathe/formats/dataset_manifest.h"

namespace lathe {
class Communicator;
class Tokenizer;
}  // namespace lathe

namespace lathe::data {

// Examples kept per drop reason or personal-data type (StageCounts::drop's default, the PII stage's):
// a merge of two parts keeps the first this many of their concatenation, as one pass would.
inline constexpr size_t kExamplesPerReason = 5;
// `into` followed by `part`, as one stage over both would have counted (examples capped as above).
void merge_counts(StageCounts& into, const StageCounts& part);

struct PiiSummary {
  std::map<std::string, size_t> hits;
  std::map<std::string, std::vector<std::string>> examples;
};

// What the per-record stages produce: the surviving records (cr.records) in input order and
// everything the report and manifest say about these stages.
struct RecordStages {
  CollectResult cr;  // cr.counts is the collect stage
  StageCounts map{"map"}, clean{"clean"}, pii{"pii"};
  std::map<std::string, size_t> shapes;
  KindSeen kind;
  PiiSummary pii_summary;
};

// The collect options of a run: the config's, counting chunk tokens with `tok` when there is one.
CollectOptions collect_options(const DataConfig& cfg, const Tokenizer* tok);

// collect_options counting chunk tokens with the pending tokenizer (waited for only when a document
// is chunked by tokens).
CollectOptions collect_options(const DataConfig& cfg, const PendingTokenizer& tok);

// Map, clean and personal data over rs.cr.records (collected already); `lap` is told each stage's end.
void run_record_stages(const DataConfig& cfg, RecordStages& rs, const std::function<void(const char*)>& lap);

// The per-record stages of a job of several ranks: rank 0 lists the input files and sends the list
// to every rank, each rank collects a contiguous share of them (balanced by bytes) and runs
// run_record_stages on it, and rank 0 receives every rank's results in rank order, which is the
// input order, so that `rs` on rank 0 equals what one process computes. Returns false on the other
// ranks, which have then nothing left to do.
bool sharded_record_stages(const DataConfig& cfg, const Tokenizer* tok, Communicator& comm, RecordStages& rs,
                           const std::function<void(const char*)>& lap);

// Which rank collects each of `n` files of the given sizes: contiguous ranges, each file going to
// the rank whose equal share of the total bytes holds the file's middle (by count when all are empty).
std::vector<int> shard_files(const std::vector<uint64_t>& sizes, int ranks);

// LATHE_VERBOSE=1: wall seconds per step, summed over batches (collect = reading and parsing, the
// time between batches), printed when the run ends — the profile that says where a run goes.
struct StepProfile {
  const bool on = std::getenv("LATHE_VERBOSE") != nullptr;
  struct Step {
    const char* what;
    double wall, cpu;  // seconds; cpu: the process's user + system time (cpu / wall: cores busy)
  };
  std::vector<Step> secs;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  double last_cpu = process_cpu_seconds();
  static double process_cpu_seconds() {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
  }
  void operator()(const char* what) {
    if (!on) return;
    const auto now = std::chrono::steady_clock::now();
    const double d = std::chrono::duration<double>(now - last).count();
    const double cpu = process_cpu_seconds(), c = cpu - last_cpu;
    last = now;
    last_cpu = cpu;
    for (Step& s : secs)
      if (std::strcmp(s.what, what) == 0) {
        s.wall += d;
        s.cpu += c;
        return;
      }
    secs.push_back({what, d, c});
  }
  void print() const {
    if (!on) return;
    double total = 0;
    for (const Step& s : secs) total += s.wall;
    for (const Step& s : secs)
      std::fprintf(stderr, "lathe data: %-22s %8.3f s %5.1f%%  %8.3f CPU-s\n", s.what, s.wall, 100 * s.wall / total,
                   s.cpu);
  }
};

// ---- the stages' pieces that the in-memory driver (pipeline.cpp) and the streaming one
// (pipeline_stream.cpp) share ----

extern const char* const kSplitNames[3];             // train, validation, test
std::string snippet(std::string s, size_t n = 160);  // at most n bytes, cut characters repaired
StageCounts map_stage(std::vector<Record>& recs, const DataConfig& cfg, std::map<std::string, size_t>& shapes,
                      KindSeen& kind);
StageCounts clean_stage(std::vector<Record>& recs, const CleanOptions& o);
StageCounts pii_stage(std::vector<Record>& recs, const PiiStageOptions& o, PiiSummary& sum);
// pii_stage for one record at a time: find() detects personal data in every text of a record (and
// redacts it under policy "redact"), the matches as (type, masked context); tally() then counts them,
// in record order, and says whether the record stays (policy "drop" drops a record with a match).
// pii_stage is find over the records in parallel and tally in order; the streaming driver runs find
// inside its per-record pass.
class PiiPass {
 public:
  using Found = std::vector<std::pair<std::string, std::string>>;
  explicit PiiPass(const PiiStageOptions& o);
  bool off() const { return o_.policy == "off"; }
  void find(nlohmann::json& rec, Found& found) const;
  bool drops(const Found& found) const { return o_.policy == "drop" && !found.empty(); }
  bool tally(const Record& r, const Found& found, StageCounts& counts, PiiSummary& sum) const;

 private:
  PiiStageOptions o_;
  PiiDetector det_;
};
std::vector<std::string> read_eval_prompts(const std::vector<std::string>& files, const CollectOptions& co);
nlohmann::json hist_json(const std::vector<size_t>& v);
// The report's length histograms (fixed edges: 16, 32, ..., 8192), added to one length at a time.
struct LengthHistogram {
  LengthHistogram();
  std::vector<size_t> counts;
  void add(size_t x) { counts[bin(x)]++; }
  void add(const LengthHistogram& o) {
    for (size_t b = 0; b < counts.size(); b++) counts[b] += o.counts[b];
  }
  nlohmann::json json() const;
  static size_t bin(size_t x);
};
// First-fit decreasing: sequences (indices into lens) into bins of at most `cap` tokens.
std::vector<std::vector<size_t>> pack(const std::vector<size_t>& lens, size_t cap);
std::string hash_file(const std::string& path);

// The format stage's verdict on one encoded record, taken in record order.
struct FormatFacts {
  bool failed = false;
  const std::string* error = nullptr;  // when failed
  bool truncated = false, ends_with_eos = false, has_messages = false;
  size_t full_length = 0, tokens = 0, first_loss = 0;
};
struct FormatTally {
  StageCounts counts{"format"};  // `in` set by the caller
  size_t no_eos = 0, long_prompts = 0;
  LengthHistogram before, after;  // token lengths of the kept records (two vectors of 8 bytes a record before)
};
bool format_keep(const FormatFacts& e, const Source& src, const FormatOptions& f, FormatTally& t,
                 std::vector<std::string>& warnings);
// format_keep's verdict alone (no counts, no warnings).
bool format_passes(const FormatFacts& e, const FormatOptions& f);
// The last warning, the token-length histograms and counts.out.
void format_finish(FormatTally& t, std::vector<std::string>& warnings, nlohmann::json& report);

// report.json / report.html: per-stage accounting, totals, splits, inputs and sources.
void write_report(const DataConfig& cfg, const std::vector<StageCounts>& stages, size_t kept,
                  const DatasetManifest& m, const CollectResult& cr, const std::vector<std::string>& warnings,
                  bool tokenized, nlohmann::json& report);
// The manifest's entries after the splits (tokenizer, chat template, inputs, stage totals, content hash),
// then the file itself.
void finish_manifest(const DataConfig& cfg, DatasetManifest& m, bool tokenized,
                     const std::string& template_source, const CollectResult& cr,
                     const std::vector<StageCounts>& stages, const std::string& all_hashes);

// Runs the whole pipeline on records streamed through batches and a spool file, holding per record
// only what dedup, split and the writers need (pipeline_stream.cpp); false, having written nothing,
// when the data is of a kind it does not stream (preference records), for the in-memory driver.
bool run_streaming(const DataConfig& cfg, const PendingTokenizer& tok, nlohmann::json& report);

// LATHE_VERBOSE=1 prints each step's wall time (kept out of report.json, which stays deterministic).
class Laps {
 public:
  void operator()(const char* what) {
    auto now = std::chrono::steady_clock::now();
    if (verbose_)
      std::fprintf(stderr, "lathe data: %s%-8s %.3f s\n", prefix_.c_str(), what,
                   std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

 private:
  bool verbose_ = std::getenv("LATHE_VERBOSE") != nullptr;
  std::string prefix_ = verbose_ ? rank_prefix() : "";
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// Appends `v` as an LEB128 varint (the compact form below and the streaming spool's records).
void put_varint(std::string& out, uint64_t v);

// The compact binary form in which records travel between ranks (exact: the JSON value with its
// number types, the source, id and stratum come back as they were).
void encode_record(const Record& r, std::string& out, std::string& last_file);
// Decodes records from `bytes` until it ends; `what` names the bytes in errors.
void decode_records(std::string_view bytes, std::vector<Record>& out, const std::string& what);

}  // namespace lathe::data
