// A thin owner of one SQLite connection and its prepared statements, for the layers that keep state
// in SQLite files (the retrieval index; the feedback store and the run registry have their own older
// copies). Every failure throws lathe::Error("[TAG] PATH: ...") naming the file and the statement, so a
// corrupt or locked database reads as such, never as a crash.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace lathe {

class SqliteDb;

// One prepared statement, finalized on scope exit. Bind indices are 1-based as in SQLite; column
// indices 0-based.
class SqliteStmt {
 public:
  SqliteStmt(SqliteDb& db, std::string_view sql);
  ~SqliteStmt();
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;

  SqliteStmt& bind(int i, std::string_view v);
  SqliteStmt& bind(int i, int64_t v);
  SqliteStmt& bind(int i, double v);
  SqliteStmt& bind_blob(int i, const void* data, size_t bytes);
  SqliteStmt& bind_null(int i);
  bool step();   // true while a row is available; throws on error
  void run();    // steps to the end (INSERT/UPDATE/DELETE)
  void reset();  // for re-use with new bindings (bindings are cleared)

  bool is_null(int col) const;
  std::string text(int col) const;
  int64_t i64(int col) const;
  double f64(int col) const;
  std::string_view blob(int col) const;

 private:
  SqliteDb& db_;
  sqlite3_stmt* s_ = nullptr;
  std::string sql_;
};

class SqliteDb {
 public:
  enum class Mode { ReadOnly, ReadWrite };
  // Opens (creating in ReadWrite mode) `path`; `tag` prefixes errors ("index", "feedback").
  SqliteDb(const std::string& path, Mode mode, std::string tag);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  void exec(std::string_view sql);  // one or more statements without results
  std::optional<std::string> scalar_text(std::string_view sql);  // first column of the first row
  int64_t last_insert_rowid() const;
  bool has_table(const std::string& name);

  [[noreturn]] void fail_sql(std::string_view what, std::string_view sql) const;
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  const std::string& tag() const { return tag_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_, tag_;
};

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless commit() ran, so a killed or
// failing build leaves the database as it was before.
class SqliteTransaction {
 public:
  explicit SqliteTransaction(SqliteDb& db);
  ~SqliteTransaction();
  void commit();

 private:
  SqliteDb& db_;
  bool done_ = false;
};

}  // namespace lathe
