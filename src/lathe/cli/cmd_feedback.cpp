// lathe feedback export|stats: turn feedback stored by `lathe serve` into training records for the
// next round, and summarise ratings per model over time (docs/serve.md).
#include <cstdio>
#include <filesystem>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/serve/feedback_store.h"

namespace {

struct Opts {
  std::string data_dir = "lathe-data", output;
  int min_rating = 0;
  bool corrections_only = false, with_context = false, json = false;
};

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.require_subcommand(1);
  auto* exp = app.add_subcommand("export", "Write rated completions as training JSONL ({\"messages\":[...]})");
  exp->add_option("--data-dir", o->data_dir, "The server's --data-dir")->capture_default_str();
  auto* mr = exp->add_option("--min-rating", o->min_rating, "Keep completions rated at least R (+1/-1 or 1..5); corrections always kept");
  exp->add_flag("--corrections-only", o->corrections_only, "Only completions with a correction");
  exp->add_flag("--with-context", o->with_context,
                "Completions answered with retrieval: the user turn as the model saw it (passages + question), "
                "not the question as asked");
  exp->add_option("--output", o->output, "Output JSONL file")->required();
  auto* st = app.add_subcommand("stats", "Ratings per model and adapter per day");
  st->add_option("--data-dir", o->data_dir, "The server's --data-dir")->capture_default_str();
  st->add_flag("--json", o->json, "Print JSON");
  return [o, exp, st, mr] {
    if (!std::filesystem::exists(lathe::serve::FeedbackStore::db_path(o->data_dir)))
      lathe::fail("feedback", "{}: no feedback.sqlite here (the server's --data-dir)", o->data_dir);
    lathe::serve::FeedbackStore store(o->data_dir);
    if (exp->parsed()) {
      lathe::serve::ExportOptions eo;
      if (mr->count()) eo.min_rating = o->min_rating;
      eo.corrections_only = o->corrections_only;
      eo.with_context = o->with_context;
      std::string out;
      lathe::serve::ExportSummary s = store.export_jsonl(eo, &out);
      lathe::write_file_atomic(o->output, out);
      std::printf("wrote %d records to %s (%d filtered out, %d without a logged request)\n", s.written,
                  o->output.c_str(), s.skipped_filtered, s.skipped_no_request);
      return 0;
    }
    nlohmann::ordered_json j = store.stats();
    if (o->json || !st->parsed()) {
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("%lld completions recorded\n", static_cast<long long>(j["completions"].get<int64_t>()));
    std::printf("%-24s %-20s %-10s %6s %7s %5s %5s %6s\n", "model", "adapter", "day", "rated", "mean", "up", "down",
                "fixes");
    for (auto& r : j["by_model_day"])
      std::printf("%-24s %-20s %-10s %6lld %7.2f %5lld %5lld %6lld\n", r["model"].get<std::string>().c_str(),
                  r["adapter"].get<std::string>().empty() ? "-" : r["adapter"].get<std::string>().c_str(),
                  r["day"].get<std::string>().c_str(), static_cast<long long>(r["count"].get<int64_t>()),
                  r["mean_rating"].get<double>(), static_cast<long long>(r["thumbs_up"].get<int64_t>()),
                  static_cast<long long>(r["thumbs_down"].get<int64_t>()),
                  static_cast<long long>(r["corrections"].get<int64_t>()));
    return 0;
  };
}
LATHE_COMMAND("feedback", "Export feedback as training records; rating statistics", setup);

}  // namespace
