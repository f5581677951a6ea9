// Shared between the stage driver (pipeline.cpp) and its sharded front end (pipeline_dist.cpp): the
// stages that look at one record at a time (collect → map → clean → personal data), whose results a
// job under mpirun computes per rank on a share of the input files and joins on rank 0 before the
// stages that compare records (dedup, contamination, split) and the writing of the dataset.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lathe/data/pipeline.h"

namespace lathe {
class Communicator;
class Tokenizer;
}  // namespace lathe

namespace lathe::data {

// Examples kept per drop reason or personal-data type (StageCounts::drop's default, the PII stage's):
// a merge of two parts keeps the first this many of their concatenation, as one pass would.
inline constexpr size_t kExamplesPerReason = 5;

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

// The compact binary form in which records travel between ranks (exact: the JSON value with its
// number types, the source, id and stratum come back as they were).
void encode_record(const Record& r, std::string& out, std::string& last_file);
// Decodes records from `bytes` until it ends; `what` names the bytes in errors.
void decode_records(std::string_view bytes, std::vector<Record>& out, const std::string& what);

}  // namespace lathe::data
