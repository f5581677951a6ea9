#include "lathe/project/run_registry.h"

#include <sqlite3.h>

#include <ctime>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"

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

// A prepared statement that finalizes itself; errors name the database file.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  const std::string& path;
  Stmt(sqlite3* db, const std::string& p, const char* sql) : path(p) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      fail("project", "{}: {}", path, sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.c_str(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s, i, v);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("project", "{}: {}", path, sqlite3_errmsg(sqlite3_db_handle(s)));
  }
  std::string text(int c) const {
    const unsigned char* t = sqlite3_column_text(s, c);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  ordered_json json_col(int c) const {
    std::string t = text(c);
    if (t.empty()) return nullptr;
    ordered_json j;  // a damaged or over-deep column reads as discarded, as before
    if (!try_parse_json_bounded(t, j)) return ordered_json(ordered_json::value_t::discarded);
    return j;
  }
};

}  // namespace

RunRegistry::RunRegistry(const std::string& db_path) : path_(db_path) {
  std::filesystem::create_directories(std::filesystem::path(db_path).parent_path());
  if (sqlite3_open(db_path.c_str(), &db_) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    fail("project", "{}: cannot open the run registry: {}", db_path, msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, "
       "finished_at TEXT, config TEXT NOT NULL, data_hash TEXT, base_hash TEXT, metrics TEXT, verdict TEXT, "
       "artifacts TEXT)");
  exec("CREATE TABLE IF NOT EXISTS stages (run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, "
       "stage TEXT NOT NULL, status TEXT NOT NULL, fingerprint TEXT, seconds REAL, exit_code INTEGER, "
       "PRIMARY KEY (run_id, seq))");
}

RunRegistry::~RunRegistry() { sqlite3_close(db_); }

void RunRegistry::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    fail("project", "{}: {}", path_, msg);
  }
}

int64_t RunRegistry::begin_run(const ordered_json& config) {
  Stmt st(db_, path_, "INSERT INTO runs (started_at, config, verdict) VALUES (?, ?, 'incomplete')");
  st.bind(1, utc_now_iso()).bind(2, config.dump()).step();
  return sqlite3_last_insert_rowid(db_);
}

void RunRegistry::add_stage(int64_t run, const StageRecord& s) {
  Stmt st(db_, path_,
          "INSERT INTO stages (run_id, seq, stage, status, fingerprint, seconds, exit_code) VALUES "
          "(?, (SELECT COUNT(*) FROM stages WHERE run_id = ?), ?, ?, ?, ?, ?)");
  st.bind(1, run).bind(2, run).bind(3, s.stage).bind(4, s.status).bind(5, s.fingerprint).bind(6, s.seconds)
      .bind(7, int64_t(s.exit_code)).step();
}

void RunRegistry::finish_run(int64_t run, const RunRecord& r) {
  Stmt st(db_, path_,
          "UPDATE runs SET finished_at = ?, data_hash = ?, base_hash = ?, metrics = ?, verdict = ?, artifacts = ? "
          "WHERE id = ?");
  st.bind(1, utc_now_iso()).bind(2, r.data_hash).bind(3, r.base_hash).bind(4, r.metrics.dump()).bind(5, r.verdict)
      .bind(6, r.artifacts.dump()).bind(7, run).step();
}

std::vector<RunRecord> RunRegistry::list(int limit) const {
  std::vector<RunRecord> out;
  {
    Stmt st(db_, path_,
            "SELECT id, started_at, finished_at, config, data_hash, base_hash, metrics, verdict, artifacts FROM runs "
            "ORDER BY id DESC LIMIT ?");
    st.bind(1, int64_t(limit));
    while (st.step()) {
      RunRecord r;
      r.id = sqlite3_column_int64(st.s, 0);
      r.started_at = st.text(1);
      r.finished_at = st.text(2);
      r.config = st.json_col(3);
      r.data_hash = st.text(4);
      r.base_hash = st.text(5);
      r.metrics = st.json_col(6);
      r.verdict = st.text(7);
      r.artifacts = st.json_col(8);
      out.push_back(std::move(r));
    }
  }
  for (RunRecord& r : out) {
    Stmt st(db_, path_, "SELECT stage, status, fingerprint, seconds, exit_code FROM stages WHERE run_id = ? ORDER BY seq");
    st.bind(1, r.id);
    while (st.step())
      r.stages.push_back({st.text(0), st.text(1), st.text(2), sqlite3_column_double(st.s, 3),
                          sqlite3_column_int(st.s, 4)});
  }
  return out;
}

std::optional<RunRecord> RunRegistry::get(int64_t id) const {
  for (RunRecord& r : list(1 << 30))
    if (r.id == id) return r;
  return std::nullopt;
}

}  // namespace lathe::project
