#include "lathe/project/run_registry.h"

#include <ctime>
#include <filesystem>
#include <memory>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/formats/sqlite_db.h"

using nlohmann::ordered_json;

namespace lathe::project {

std::string utc_now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// A JSON column; a damaged or over-deep one reads as discarded, an empty one as null.
ordered_json json_col(const SqliteStmt& st, int c) {
  std::string t = st.text(c);
  if (t.empty()) return nullptr;
  ordered_json j;
  if (!try_parse_json_bounded(t, j)) return ordered_json(ordered_json::value_t::discarded);
  return j;
}

}  // namespace

RunRegistry::RunRegistry(const std::string& db_path) : path_(db_path) {
  std::filesystem::create_directories(std::filesystem::path(db_path).parent_path());
  db_ = std::make_unique<SqliteDb>(db_path, SqliteDb::Mode::ReadWrite, "project");
  db_->exec("PRAGMA journal_mode=WAL");
  db_->exec("CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, "
            "finished_at TEXT, config TEXT NOT NULL, data_hash TEXT, base_hash TEXT, metrics TEXT, verdict TEXT, "
            "artifacts TEXT)");
  db_->exec("CREATE TABLE IF NOT EXISTS stages (run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, "
            "stage TEXT NOT NULL, status TEXT NOT NULL, fingerprint TEXT, seconds REAL, exit_code INTEGER, "
            "PRIMARY KEY (run_id, seq))");
}

RunRegistry::~RunRegistry() = default;

int64_t RunRegistry::begin_run(const ordered_json& config) {
  SqliteStmt st(*db_, "INSERT INTO runs (started_at, config, verdict) VALUES (?, ?, 'incomplete')");
  st.bind(1, utc_now_iso()).bind(2, config.dump()).run();
  return db_->last_insert_rowid();
}

void RunRegistry::add_stage(int64_t run, const StageRecord& s) {
  SqliteStmt st(*db_,
                "INSERT INTO stages (run_id, seq, stage, status, fingerprint, seconds, exit_code) VALUES "
          "(?, (SELECT COUNT(*) FROM stages WHERE run_id = ?), ?, ?, ?, ?, ?)");
  st.bind(1, run).bind(2, run).bind(3, s.stage).bind(4, s.status).bind(5, s.fingerprint).bind(6, s.seconds)
      .bind(7, int64_t(s.exit_code)).run();
}

void RunRegistry::finish_run(int64_t run, const RunRecord& r) {
  SqliteStmt st(*db_,
                "UPDATE runs SET finished_at = ?, data_hash = ?, base_hash = ?, metrics = ?, verdict = ?, artifacts = ? "
          "WHERE id = ?");
  st.bind(1, utc_now_iso()).bind(2, r.data_hash).bind(3, r.base_hash).bind(4, r.metrics.dump()).bind(5, r.verdict)
      .bind(6, r.artifacts.dump()).bind(7, run).run();
}

std::vector<RunRecord> RunRegistry::list(int limit) const {
  std::vector<RunRecord> out;
  {
    SqliteStmt st(*db_,
                  "SELECT id, started_at, finished_at, config, data_hash, base_hash, metrics, verdict, artifacts FROM runs "
            "ORDER BY id DESC LIMIT ?");
    st.bind(1, int64_t(limit));
    while (st.step()) {
      RunRecord r;
      r.id = st.i64(0);
      r.started_at = st.text(1);
      r.finished_at = st.text(2);
      r.config = json_col(st, 3);
      r.data_hash = st.text(4);
      r.base_hash = st.text(5);
      r.metrics = json_col(st, 6);
      r.verdict = st.text(7);
      r.artifacts = json_col(st, 8);
      out.push_back(std::move(r));
    }
  }
  for (RunRecord& r : out) {
    SqliteStmt st(*db_, "SELECT stage, status, fingerprint, seconds, exit_code FROM stages WHERE run_id = ? ORDER BY seq");
    st.bind(1, r.id);
    while (st.step())
      r.stages.push_back({st.text(0), st.text(1), st.text(2), st.f64(3), int(st.i64(4))});
  }
  return out;
}

std::optional<RunRecord> RunRegistry::get(int64_t id) const {
  for (RunRecord& r : list(1 << 30))
    if (r.id == id) return r;
  return std::nullopt;
}

}  // namespace lathe::project
