#include "lathe/ui/ui_audit.h"

#include "lathe/formats/sqlite_db.h"
#include "lathe/project/run_registry.h"

namespace lathe::ui {

AuditLog::AuditLog(const std::string& path) : db_(std::make_unique<SqliteDb>(path, SqliteDb::Mode::ReadWrite, "ui")) {
  db_->exec("PRAGMA journal_mode=WAL");
  db_->exec("PRAGMA synchronous=FULL");  // a decision acknowledged to the page is on disk
  db_->exec("CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,"
            " reviewer TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL)");
}

AuditLog::~AuditLog() = default;

void AuditLog::add(const std::string& reviewer, const std::string& action, const std::string& target,
                   const nlohmann::json& detail) {
  std::lock_guard<std::mutex> lock(mu_);
  SqliteStmt s(*db_, "INSERT INTO audit (at, reviewer, action, target, detail) VALUES (?,?,?,?,?)");
  s.bind(1, project::utc_now_iso()).bind(2, reviewer).bind(3, action).bind(4, target).bind(5, detail.dump());
  s.run();
}

nlohmann::json AuditLog::recent(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  SqliteStmt s(*db_, "SELECT id, at, reviewer, action, target, detail FROM audit ORDER BY id DESC LIMIT ?");
  s.bind(1, int64_t(limit));
  nlohmann::json out = nlohmann::json::array();
  while (s.step())
    out.push_back({{"id", s.i64(0)},
                   {"at", s.text(1)},
                   {"reviewer", s.text(2)},
                   {"action", s.text(3)},
                   {"target", s.text(4)},
                   {"detail", nlohmann::json::parse(s.text(5), nullptr, false)}});
  return out;
}

}  // namespace lathe::ui
