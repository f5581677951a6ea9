// The feedback store: every completion the server returns (id, model/adapter, request, answer,
// token counts, latency) and every rating posted for it, in one SQLite database under --data-dir.
// WAL journal with synchronous=FULL: a write that returned has been fsynced to the WAL, so feedback
// acknowledged with 200 survives kill -9 (and power loss) of the server.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

struct sqlite3;

namespace lathe::serve {

struct CompletionRecord {
  std::string id;                  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;             // unix seconds
  std::string model, adapter;      // adapter empty for the base model
  std::string kind;                // "chat" or "text"
  std::optional<std::string> request_json;  // messages (chat) or prompt (text); empty when logging is off
  std::optional<std::string> answer;
  int prompt_tokens = 0, completion_tokens = 0;
  double latency_s = 0;
  std::string finish_reason;
  // A chat completion answered with retrieval (lathe serve --index): rag.h's retrieval_log_json.
  // request_json keeps the messages as the client sent them; this holds the sources and, when
  // prompts are logged, the user turn the model saw instead (passages + question).
  std::optional<std::string> retrieval_json;
};

struct FeedbackRecord {
  std::string completion_id;
  int rating = 0;                  // +1/-1 (thumbs) or 1..5 (stars)
  std::optional<std::string> correction, comment;
  std::vector<std::string> tags;
  int64_t created = 0;
};

struct ExportOptions {
  std::optional<int> min_rating;   // keep feedback with rating >= this
  bool corrections_only = false;
  // Completions answered with retrieval: false writes the user's question as asked (the next round's
  // retrieval-augmented training adds passages itself); true writes the user turn as the model saw
  // it, passages included.
  bool with_context = false;
};

struct ExportSummary {
  int written = 0, skipped_no_request = 0, skipped_filtered = 0;
};

class FeedbackStore {
 public:
  // Opens (creating) DIR/feedback.sqlite. Throws "[feedback] ..." when it cannot.
  explicit FeedbackStore(const std::string& data_dir);
  ~FeedbackStore();
  FeedbackStore(const FeedbackStore&) = delete;
  FeedbackStore& operator=(const FeedbackStore&) = delete;

  void add_completion(const CompletionRecord& r);
  bool has_completion(const std::string& id);
  // Returns the new feedback row id; throws "[feedback] ..." for an unknown completion id.
  int64_t add_feedback(const FeedbackRecord& f);

  // Training records {"messages":[...]} (the correction replaces the answer when given), one JSON
  // object per line, for every chat completion with feedback passing `o`. Text completions become
  // {"prompt","completion"} records. Retrieval's sources stay in the database, not in the records.
  ExportSummary export_jsonl(const ExportOptions& o, std::string* out);
  // Ratings per model (and adapter) per day: count, mean, thumbs up/down, corrections.
  nlohmann::ordered_json stats();

  static std::string db_path(const std::string& data_dir);

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::mutex mu_;
  std::string path_;
};

}  // namespace lathe::serve
