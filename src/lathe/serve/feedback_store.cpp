#include "lathe/serve/feedback_store.h"

#include <sqlite3.h>

#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/records/record_shape.h"

namespace lathe::serve {
namespace {

// One prepared statement, finalized on scope exit; bind/step/column helpers throw "[feedback] ...".
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      fail("feedback", "prepare failed: {} ({})", sqlite3_errmsg(db), sql);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  void bind(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT); }
  void bind(int i, const std::optional<std::string>& v) {
    if (v) bind(i, *v);
    else sqlite3_bind_null(s_, i);
  }
  void bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(s_, i, v); }
  bool step() {  // true while a row is available
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("feedback", "sqlite: {}", sqlite3_errmsg(db_));
  }
  std::optional<std::string> text(int i) {
    if (sqlite3_column_type(s_, i) == SQLITE_NULL) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s_, i)), size_t(sqlite3_column_bytes(s_, i)));
  }
  int64_t i64(int i) { return sqlite3_column_int64(s_, i); }
  double f64(int i) { return sqlite3_column_double(s_, i); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// --with-context: the user turn the model saw (retrieved passages + question) replaces the one the
// client sent. Completions without retrieval, or whose turn was not logged, stay as asked.
void put_context(nlohmann::json& messages, const std::optional<std::string>& retrieval) {
  if (!retrieval || !messages.is_array()) return;
  nlohmann::json r = nlohmann::json::parse(*retrieval, nullptr, false);
  if (!r.is_object() || !r.contains("user_message") || !r["user_message"].is_string()) return;
  const int64_t i = r.value("message_index", int64_t(-1));
  if (i < 0 || size_t(i) >= messages.size() || !messages[size_t(i)].is_object()) return;
  messages[size_t(i)]["content"] = r["user_message"];
}

}  // namespace

std::string FeedbackStore::db_path(const std::string& data_dir) { return data_dir + "/feedback.sqlite"; }

FeedbackStore::FeedbackStore(const std::string& data_dir) : path_(db_path(data_dir)) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    fail("feedback", "{}: cannot open: {}", path_, msg);
  }
  sqlite3_busy_timeout(db_, 5000);  // `lathe feedback export` may read while the server writes
  // WAL lets readers work beside the writer; FULL syncs the WAL on every commit, so a row whose
  // insert returned is on disk before the HTTP 200 goes out.
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec("CREATE TABLE IF NOT EXISTS completions ("
       " id TEXT PRIMARY KEY, created INTEGER NOT NULL, model TEXT NOT NULL, adapter TEXT NOT NULL,"
       " kind TEXT NOT NULL, request TEXT, answer TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,"
       " latency_s REAL, finish_reason TEXT)");
  exec("CREATE TABLE IF NOT EXISTS feedback ("
       " id INTEGER PRIMARY KEY AUTOINCREMENT, completion_id TEXT NOT NULL REFERENCES completions(id),"
       " created INTEGER NOT NULL, rating INTEGER NOT NULL, correction TEXT, comment TEXT, tags TEXT)");
  exec("CREATE INDEX IF NOT EXISTS feedback_completion ON feedback(completion_id)");
  // Added with retrieval (lathe serve --index); a database written before it gets the column here.
  bool has_retrieval = false;
  {
    Stmt t(db_, "SELECT 1 FROM pragma_table_info('completions') WHERE name = 'retrieval'");
    has_retrieval = t.step();
  }
  if (!has_retrieval) exec("ALTER TABLE completions ADD COLUMN retrieval TEXT");
}

FeedbackStore::~FeedbackStore() { sqlite3_close(db_); }

void FeedbackStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    fail("feedback", "{}: {} ({})", path_, msg, sql);
  }
}

void FeedbackStore::add_completion(const CompletionRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "INSERT OR REPLACE INTO completions (id, created, model, adapter, kind, request, answer, prompt_tokens,"
         " completion_tokens, latency_s, finish_reason, retrieval) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, r.id);
  s.bind(2, r.created);
  s.bind(3, r.model);
  s.bind(4, r.adapter);
  s.bind(5, r.kind);
  s.bind(6, r.request_json);
  s.bind(7, r.answer);
  s.bind(8, int64_t(r.prompt_tokens));
  s.bind(9, int64_t(r.completion_tokens));
  s.bind(10, r.latency_s);
  s.bind(11, r.finish_reason);
  s.bind(12, r.retrieval_json);
  s.step();
}

bool FeedbackStore::has_completion(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT 1 FROM completions WHERE id = ?");
  s.bind(1, id);
  return s.step();
}

int64_t FeedbackStore::add_feedback(const FeedbackRecord& f) {
  std::lock_guard<std::mutex> lock(mu_);
  {
    Stmt s(db_, "SELECT 1 FROM completions WHERE id = ?");
    s.bind(1, f.completion_id);
    if (!s.step()) fail("feedback", "unknown completion_id '{}'", f.completion_id);
  }
  Stmt s(db_, "INSERT INTO feedback (completion_id, created, rating, correction, comment, tags) VALUES (?,?,?,?,?,?)");
  s.bind(1, f.completion_id);
  s.bind(2, f.created);
  s.bind(3, int64_t(f.rating));
  s.bind(4, f.correction);
  s.bind(5, f.comment);
  s.bind(6, nlohmann::json(f.tags).dump());
  s.step();
  return sqlite3_last_insert_rowid(db_);
}

int ExportSummary::skipped_total() const {
  int n = 0;
  for (auto& [reason, count] : skipped) n += count;
  return n;
}

nlohmann::ordered_json ExportSummary::to_json() const {
  nlohmann::ordered_json j{{"rated", rated}, {"used", used}, {"written", written}};
  if (!scale.empty()) {
    j["desirable"] = desirable;
    j["undesirable"] = undesirable;
    j["rating_scale"] = scale;
  }
  j["skipped"] = nlohmann::ordered_json::object();
  for (auto& [reason, count] : skipped) j["skipped"][reason] = count;
  j["reconciles"] = reconciles();
  return j;
}

namespace {

// One rated completion as export reads it: the completion and its newest feedback row.
struct Rated {
  std::string id, model, adapter, kind;
  std::optional<std::string> request, answer, correction, retrieval;
  int rating = 0;
};

// Kto's label for a rating: +1 desirable, -1 undesirable, 0 neutral.
int rating_label(int rating, RatingScale scale) {
  if (rating < 0) return -1;
  if (scale == RatingScale::Thumbs) return rating > 0 ? 1 : -1;
  return rating >= 4 ? 1 : rating <= 2 ? -1 : 0;
}

RatingScale resolve_scale(RatingScale asked, const std::vector<const Rated*>& rows) {
  if (asked != RatingScale::Auto) return asked;
  bool thumbs_down = false, stars = false;
  for (const Rated* r : rows) {
    thumbs_down |= r->rating == -1;
    stars |= r->rating >= 2 && r->rating <= 5;
  }
  if (thumbs_down && stars)
    fail("feedback", "the ratings mix thumbs (-1) and stars (2..5), so a rating of 1 means either; give --rating-scale thumbs|stars "
         "(or --model/--adapter to export one deployment)");
  return stars ? RatingScale::Stars : RatingScale::Thumbs;
}

}  // namespace

ExportSummary FeedbackStore::export_jsonl(const ExportOptions& o, std::string* out) {
  std::vector<Rated> rows;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // One row per rated completion, its newest feedback row winning when rated twice.
    Stmt s(db_,
           "SELECT c.id, c.model, c.adapter, c.kind, c.request, c.answer, f.rating, f.correction, c.retrieval"
           " FROM feedback f JOIN completions c ON c.id = f.completion_id"
           " WHERE f.id = (SELECT MAX(f2.id) FROM feedback f2 WHERE f2.completion_id = f.completion_id)"
           " ORDER BY f.id");
    while (s.step()) {
      Rated r{*s.text(0), *s.text(1), *s.text(2), *s.text(3), s.text(4), s.text(5), s.text(7), s.text(8), int(s.i64(6))};
      if (r.correction && r.correction->empty()) r.correction.reset();
      rows.push_back(std::move(r));
    }
  }
  ExportSummary sum;
  sum.rated = int(rows.size());
  auto skip = [&](const char* reason) { sum.skipped[reason]++; };
  // Filters first, so the automatic rating scale reads only the ratings being exported.
  std::vector<const Rated*> selected;
  for (const Rated& r : rows) {
    if (o.model && r.model != *o.model) skip("other model");
    else if (o.adapter && r.adapter != *o.adapter) skip("other adapter");
    else if (o.corrections_only && !r.correction) skip("no correction (--corrections-only)");
    else if (o.format == ExportFormat::Sft && o.min_rating && r.rating < *o.min_rating && !r.correction) skip("rated below --min-rating");
    else selected.push_back(&r);
  }
  RatingScale scale = RatingScale::Stars;
  if (o.format == ExportFormat::Kto) {
    scale = resolve_scale(o.scale, selected);
    sum.scale = scale == RatingScale::Stars ? "stars" : "thumbs";
  }
  auto line = [&](const nlohmann::ordered_json& rec) {
    out->append(rec.dump());
    out->push_back('\n');
    sum.written++;
  };
  auto meta = [](nlohmann::ordered_json& rec, const Rated& r) {
    rec["completion_id"] = r.id;
    rec["model"] = r.model;
    rec["adapter"] = r.adapter;
  };
  for (const Rated* rp : selected) {
    const Rated& r = *rp;
    if (!r.request) {
      skip("no logged request");  // served with --log-prompts off
      continue;
    }
    nlohmann::json req = nlohmann::json::parse(*r.request, nullptr, false);
    if (req.is_discarded() || (r.kind == "chat" && !req.is_array())) {
      skip("unreadable request");
      continue;
    }
    if (r.kind == "chat" && o.with_context) put_context(req, r.retrieval);
    const bool chat = r.kind == "chat";
    const std::string text_prompt = chat ? "" : req.is_string() ? req.get<std::string>() : req.dump();
    // An answer in the record's form: an assistant message list for chat, the text itself otherwise.
    auto answer = [&](const std::string& a) -> nlohmann::ordered_json {
      if (!chat) return a;
      return nlohmann::ordered_json::array({{{"role", "assistant"}, {"content", a}}});
    };
    auto prompt = [&]() -> nlohmann::ordered_json { return chat ? chat_prompt(req) : nlohmann::ordered_json(text_prompt); };
    // A correction equal to the served answer confirms it: no preference between them.
    const bool corrected = r.correction && (!r.answer || *r.correction != *r.answer);
    if (o.format == ExportFormat::Sft) {
      if (!r.answer && !r.correction) {
        skip("no logged answer");
        continue;
      }
      const std::string& reply = r.correction ? *r.correction : *r.answer;
      line(chat ? chat_record(req, reply) : completion_record(text_prompt, reply));
    } else if (o.format == ExportFormat::Dpo) {
      if (!r.correction) {
        skip("no correction");
        continue;
      }
      if (!r.answer) {
        skip("no logged answer");
        continue;
      }
      if (!corrected) {
        skip("correction equals the answer");
        continue;
      }
      nlohmann::ordered_json rec;
      rec["prompt"] = prompt();
      rec["chosen"] = answer(*r.correction);
      rec["rejected"] = answer(*r.answer);
      meta(rec, r);
      line(rec);
    } else {
      const int label = rating_label(r.rating, scale);
      auto kto = [&](const std::string& completion, bool desirable) {
        nlohmann::ordered_json rec;
        rec["prompt"] = prompt();
        rec["completion"] = answer(completion);
        rec["label"] = desirable;
        meta(rec, r);
        line(rec);
        (desirable ? sum.desirable : sum.undesirable)++;
      };
      if (corrected) {
        // The correction is what the answer should have been; the served answer was wanting unless
        // its rating says it was good (a correction may improve a good answer).
        kto(*r.correction, true);
        if (r.answer) kto(*r.answer, label > 0);
      } else if (!r.answer) {
        skip("no logged answer");
        continue;
      } else if (label == 0) {
        skip("neutral rating (3 of 5)");
        continue;
      } else {
        kto(*r.answer, label > 0);
      }
    }
    sum.used++;
  }
  return sum;
}

nlohmann::ordered_json FeedbackStore::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "SELECT c.model, c.adapter, date(f.created, 'unixepoch') AS day, COUNT(*), AVG(f.rating),"
         " SUM(f.rating = 1), SUM(f.rating = -1), SUM(f.correction IS NOT NULL AND f.correction != ''),"
         " AVG(c.latency_s) FROM feedback f JOIN completions c ON c.id = f.completion_id"
         " GROUP BY c.model, c.adapter, day ORDER BY c.model, c.adapter, day");
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  while (s.step()) {
    rows.push_back({{"model", *s.text(0)},
                    {"adapter", *s.text(1)},
                    {"day", s.text(2).value_or("")},
                    {"count", s.i64(3)},
                    {"mean_rating", s.f64(4)},
                    {"thumbs_up", s.i64(5)},
                    {"thumbs_down", s.i64(6)},
                    {"corrections", s.i64(7)},
                    {"mean_latency_s", s.f64(8)}});
  }
  Stmt t(db_, "SELECT COUNT(*) FROM completions");
  t.step();
  return {{"completions", t.i64(0)}, {"by_model_day", rows}};
}

nlohmann::ordered_json FeedbackStore::inbox(int limit, bool rated_only) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql =
      "SELECT c.id, c.created, c.model, c.adapter, c.kind, c.request, c.answer, c.retrieval,"
      " f.id, f.rating, f.correction, f.comment, f.tags, f.created FROM completions c"
      " LEFT JOIN feedback f ON f.id = (SELECT MAX(id) FROM feedback WHERE completion_id = c.id)";
  if (rated_only) sql += " WHERE f.id IS NOT NULL";
  sql += " ORDER BY c.created DESC, c.rowid DESC LIMIT ?";
  Stmt s(db_, sql.c_str());
  s.bind(1, int64_t(limit));
  auto parsed = [](const std::optional<std::string>& t) {
    if (!t) return nlohmann::json(nullptr);
    nlohmann::json j = nlohmann::json::parse(*t, nullptr, false);
    return j.is_discarded() ? nlohmann::json(*t) : j;
  };
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  while (s.step()) {
    nlohmann::ordered_json r{{"id", *s.text(0)},         {"created", s.i64(1)},        {"model", *s.text(2)},
                             {"adapter", *s.text(3)},    {"kind", *s.text(4)},         {"request", parsed(s.text(5))},
                             {"answer", s.text(6) ? nlohmann::json(*s.text(6)) : nlohmann::json(nullptr)},
                             {"retrieval", parsed(s.text(7))}, {"feedback", nullptr}};
    if (s.text(8)) {
      auto opt = [](const std::optional<std::string>& t) { return t ? nlohmann::json(*t) : nlohmann::json(nullptr); };
      r["feedback"] = {{"id", s.i64(8)},           {"rating", s.i64(9)},          {"correction", opt(s.text(10))},
                       {"comment", opt(s.text(11))}, {"tags", parsed(s.text(12))}, {"created", s.i64(13)}};
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace lathe::serve
