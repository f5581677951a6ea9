// The run registry: every `lathe run` of a project, in SQLite at PROJECT/.lathe/runs.sqlite — when it
// ran, the config it ran with, the hashes of its data and base model, each stage's outcome (ran,
// skipped as unchanged, failed), the metrics and gate verdict, and where the artifacts are. `lathe
// runs` lists and compares them, so a team can see which config change moved the pass rate.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>


namespace lathe {
class SqliteDb;
}

namespace lathe::project {

struct StageRecord {
  std::string stage, status;  // status: ran | skipped | failed | gate-failed
  std::string fingerprint;
  double seconds = 0;
  int exit_code = 0;
};

struct RunRecord {
  int64_t id = 0;
  std::string started_at, finished_at;  // ISO 8601 UTC
  nlohmann::ordered_json config;
  std::string data_hash, base_hash;
  nlohmann::ordered_json metrics;     // the eval summary (pass rates, perplexities, forgetting)
  std::string verdict;                // pass | fail | incomplete
  nlohmann::ordered_json artifacts;   // {"data": dir, "adapter": dir, "eval_report": file, ...}
  std::vector<StageRecord> stages;
};

class RunRegistry {
 public:
  explicit RunRegistry(const std::string& db_path);  // creates the file and schema when missing
  ~RunRegistry();
  RunRegistry(const RunRegistry&) = delete;
  RunRegistry& operator=(const RunRegistry&) = delete;

  int64_t begin_run(const nlohmann::ordered_json& config);
  void add_stage(int64_t run, const StageRecord& s);
  void finish_run(int64_t run, const RunRecord& r);  // data/base hashes, metrics, verdict, artifacts
  std::vector<RunRecord> list(int limit = 50) const;  // newest first, with stages
  std::optional<RunRecord> get(int64_t id) const;

 private:
  std::unique_ptr<SqliteDb> db_;
  std::string path_;
};

std::string utc_now_iso();

}  // namespace lathe::project
