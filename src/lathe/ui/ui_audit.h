// The audit trail of the workbench: every decision a reviewer makes (data review, overrules,
// corrections, ratings, runs started and stopped, logins), with the reviewer's name and the time,
// in SQLite at PROJECT/.lathe/ui_audit.sqlite. Rows are only ever added.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace lathe {
class SqliteDb;
}

namespace lathe::ui {

class AuditLog {
 public:
  explicit AuditLog(const std::string& path);  // creates the file and table when missing
  ~AuditLog();
  // action: e.g. "data.reject"; target: the record / case / completion id; detail: the decision as JSON.
  void add(const std::string& reviewer, const std::string& action, const std::string& target,
           const nlohmann::json& detail);
  // The newest `limit` rows: [{"id","at","reviewer","action","target","detail"}].
  nlohmann::json recent(int limit);

 private:
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace lathe::ui
