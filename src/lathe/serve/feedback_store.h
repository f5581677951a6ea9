// The feedback store: every completion the server returns (id, model/adapter, request, answer,
// token counts, latency) and every rating posted for it, in one SQLite database under --data-dir.
// WAL journal with synchronous=FULL: a write that returned has been fsynced to the WAL, so feedback
// acknowledged with 200 survives kill -9 (and power loss) of the server.
#pragma once
#include <cstdint>
#include <map>
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

// What `lathe feedback export` writes (docs/serve.md, "Feedback as preference data"):
//   Sft  {"messages"} / {"prompt","completion"} per rated completion, the correction replacing the answer;
//   Dpo  {"prompt","chosen","rejected"} per completion with a correction: chosen = the correction,
//        rejected = the served answer;
//   Kto  {"prompt","completion","label"} per rated completion: the label from the rating (see
//        RatingScale); a correction adds the corrected answer as desirable, and the served answer
//        counts as undesirable unless its rating says desirable.
// Dpo and Kto records also carry "completion_id", "model" and "adapter" (trainers ignore them).
enum class ExportFormat { Sft, Dpo, Kto };
// How Kto reads a rating. Thumbs: +1 desirable, -1 undesirable. Stars: 4-5 desirable, 1-2 (and -1)
// undesirable, 3 neutral (not exported, counted). Auto: stars when a selected rating is 2..5, thumbs
// otherwise (a -1 next to 2..5 is an error: give the scale).
enum class RatingScale { Auto, Thumbs, Stars };

struct ExportOptions {
  ExportFormat format = ExportFormat::Sft;
  std::optional<int> min_rating;   // Sft: keep feedback with rating >= this (corrections always kept)
  bool corrections_only = false;
  // Completions answered with retrieval: false writes the user's question as asked (the next round's
  // retrieval-augmented training adds passages itself); true writes the user turn as the model saw
  // it, passages included.
  bool with_context = false;
  // Only completions of this served model / this adapter ("" = the base model, no adapter).
  std::optional<std::string> model, adapter;
  RatingScale scale = RatingScale::Auto;  // Kto
};

// Every rated completion (its newest feedback row) is either used (gave records) or skipped for one
// reason: rated = used + sum(skipped). Kto can write two records for one completion.
struct ExportSummary {
  int rated = 0, used = 0, written = 0;
  int desirable = 0, undesirable = 0;     // Kto
  std::map<std::string, int> skipped;     // reason -> completions
  std::string scale;                      // Kto: the scale applied ("thumbs" / "stars")
  int skipped_total() const;
  bool reconciles() const { return rated == used + skipped_total(); }
  nlohmann::ordered_json to_json() const;
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

  // Records of `o.format`, one JSON object per line, for every completion with feedback passing `o`
  // (Sft: {"messages":[...]} with the correction replacing the answer; text completions as
  // {"prompt","completion"}). Retrieval's sources stay in the database, not in the records. Throws
  // "[feedback] ..." when Kto's automatic rating scale meets both -1 and 2..5.
  ExportSummary export_jsonl(const ExportOptions& o, std::string* out);
  // Ratings per model (and adapter) per day: count, mean, thumbs up/down, corrections.
  nlohmann::ordered_json stats();
  // The inbox of `lathe ui`: the newest `limit` completions (rated ones only when `rated_only`), each
  // {"id","created","model","adapter","kind","request" (parsed), "answer","retrieval" (parsed or null),
  // "feedback": its newest feedback row {"id","rating","correction","comment","tags","created"} or null}.
  nlohmann::ordered_json inbox(int limit, bool rated_only);

  static std::string db_path(const std::string& data_dir);

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::mutex mu_;
  std::string path_;
};

}  // namespace lathe::serve
