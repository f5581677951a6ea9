#include "lathe/formats/sqlite_db.h"

#include <sqlite3.h>

#include "lathe/core/error.h"

namespace lathe {

SqliteDb::SqliteDb(const std::string& path, Mode mode, std::string tag) : path_(path), tag_(std::move(tag)) {
  int flags = mode == Mode::ReadOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    fail(tag_.c_str(), "{}: cannot open: {}", path, msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  // A file that is not a database only fails on the first read: check here so the error names it.
  char* err = nullptr;
  if (sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    sqlite3_close(db_);
    db_ = nullptr;
    fail(tag_.c_str(), "{}: not a readable SQLite database: {}", path, msg);
  }
}

SqliteDb::~SqliteDb() { sqlite3_close(db_); }

void SqliteDb::fail_sql(std::string_view what, std::string_view sql) const {
  std::string s(sql.substr(0, 120));
  fail(tag_.c_str(), "{}: {}: {} (in: {})", path_, what, sqlite3_errmsg(db_), s);
}

void SqliteDb::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    fail(tag_.c_str(), "{}: {} (in: {})", path_, msg, s.substr(0, 120));
  }
}

std::optional<std::string> SqliteDb::scalar_text(std::string_view sql) {
  SqliteStmt st(*this, sql);
  if (!st.step() || st.is_null(0)) return std::nullopt;
  return st.text(0);
}

int64_t SqliteDb::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

bool SqliteDb::has_table(const std::string& name) {
  SqliteStmt st(*this, "SELECT 1 FROM sqlite_master WHERE name = ?");
  st.bind(1, name);
  return st.step();
}

SqliteStmt::SqliteStmt(SqliteDb& db, std::string_view sql) : db_(db), sql_(sql) {
  if (sqlite3_prepare_v2(db.handle(), sql_.c_str(), int(sql_.size()), &s_, nullptr) != SQLITE_OK)
    db.fail_sql("prepare failed", sql_);
}

SqliteStmt::~SqliteStmt() { sqlite3_finalize(s_); }

SqliteStmt& SqliteStmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStmt& SqliteStmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
SqliteStmt& SqliteStmt::bind(int i, double v) {
  sqlite3_bind_double(s_, i, v);
  return *this;
}
SqliteStmt& SqliteStmt::bind_blob(int i, const void* data, size_t bytes) {
  sqlite3_bind_blob64(s_, i, data, sqlite3_uint64(bytes), SQLITE_TRANSIENT);
  return *this;
}
SqliteStmt& SqliteStmt::bind_null(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

bool SqliteStmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail_sql("step failed", sql_);
}

void SqliteStmt::run() {
  while (step()) {
  }
}

void SqliteStmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

bool SqliteStmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
std::string SqliteStmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(s_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, col))) : std::string();
}
int64_t SqliteStmt::i64(int col) const { return sqlite3_column_int64(s_, col); }
double SqliteStmt::f64(int col) const { return sqlite3_column_double(s_, col); }
std::string_view SqliteStmt::blob(int col) const {
  const void* p = sqlite3_column_blob(s_, col);
  return p ? std::string_view(static_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, col))) : std::string_view();
}

SqliteTransaction::SqliteTransaction(SqliteDb& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
SqliteTransaction::~SqliteTransaction() {
  if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}
void SqliteTransaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace lathe
