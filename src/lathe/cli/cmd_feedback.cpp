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
  std::string data_dir = "lathe-data", output, format = "sft", model, adapter, scale = "auto";
  int min_rating = 0;
  bool corrections_only = false, with_context = false, json = false;
};

// "wrote 12 records (dpo) to F from 12 of 20 rated completions; skipped: 5 no correction, 3 other model".
std::string summary_line(const lathe::serve::ExportSummary& s, const Opts& o) {
  std::string line = fmt::format("wrote {} records ({}) to {} from {} of {} rated completions", s.written, o.format,
                                 o.output, s.used, s.rated);
  if (!s.scale.empty())
    line += fmt::format(" ({} desirable, {} undesirable; rating scale {}{})", s.desirable, s.undesirable, s.scale,
                        o.scale == "auto" ? ", automatic" : "");
  std::string skipped;
  for (auto& [reason, n] : s.skipped) skipped += fmt::format("{}{} {}", skipped.empty() ? "" : ", ", n, reason);
  if (!skipped.empty()) line += "; skipped: " + skipped;
  return line;
}

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.require_subcommand(1);
  auto* exp = app.add_subcommand("export", "Write rated completions as training JSONL: SFT records or preference data");
  exp->add_option("--data-dir", o->data_dir, "The server's --data-dir")->capture_default_str();
  exp->add_option("--format", o->format,
                  "sft: {\"messages\"} with corrections in place; dpo: {\"prompt\",\"chosen\",\"rejected\"} from corrections; "
                  "kto: {\"prompt\",\"completion\",\"label\"} from ratings and corrections")
      ->check(CLI::IsMember({"sft", "dpo", "kto"}))
      ->capture_default_str();
  auto* mr = exp->add_option("--min-rating", o->min_rating,
                             "sft: keep completions rated at least R (+1/-1 or 1..5); corrections always kept");
  exp->add_flag("--corrections-only", o->corrections_only, "Only completions with a correction");
  exp->add_flag("--with-context", o->with_context,
                "Completions answered with retrieval: the user turn as the model saw it (passages + question), "
                "not the question as asked");
  auto* mo = exp->add_option("--model", o->model, "Only completions of this served model");
  auto* ao = exp->add_option("--adapter", o->adapter, "Only completions of this adapter ('-': the base model, no adapter)");
  auto* so = exp->add_option("--rating-scale", o->scale,
                             "kto: auto | thumbs (+1 desirable, -1 undesirable) | stars (4-5 desirable, 1-2 undesirable, 3 skipped)")
                 ->check(CLI::IsMember({"auto", "thumbs", "stars"}));
  exp->add_flag("--json", o->json, "Print the summary as JSON");
  exp->add_option("--output", o->output, "Output JSONL file")->required();
  auto* st = app.add_subcommand("stats", "Ratings per model and adapter per day");
  st->add_option("--data-dir", o->data_dir, "The server's --data-dir")->capture_default_str();
  st->add_flag("--json", o->json, "Print JSON");
  return [o, exp, st, mr, mo, ao, so] {
    using lathe::serve::ExportFormat;
    if (exp->parsed()) {
      // Options that mean nothing for a format are refused rather than ignored.
      if (mr->count() && o->format != "sft")
        lathe::fail("feedback", "--min-rating applies to --format sft (dpo pairs come from corrections, kto labels from the "
                    "ratings: docs/serve.md)");
      if (so->count() && o->format != "kto") lathe::fail("feedback", "--rating-scale applies to --format kto");
    }
    if (!std::filesystem::exists(lathe::serve::FeedbackStore::db_path(o->data_dir)))
      lathe::fail("feedback", "{}: no feedback.sqlite here (the server's --data-dir)", o->data_dir);
    lathe::serve::FeedbackStore store(o->data_dir);
    if (exp->parsed()) {
      lathe::serve::ExportOptions eo;
      eo.format = o->format == "dpo" ? ExportFormat::Dpo : o->format == "kto" ? ExportFormat::Kto : ExportFormat::Sft;
      if (mr->count()) eo.min_rating = o->min_rating;
      eo.corrections_only = o->corrections_only;
      eo.with_context = o->with_context;
      if (mo->count()) eo.model = o->model;
      if (ao->count()) eo.adapter = o->adapter == "-" ? "" : o->adapter;
      eo.scale = o->scale == "thumbs"  ? lathe::serve::RatingScale::Thumbs
                 : o->scale == "stars" ? lathe::serve::RatingScale::Stars
                                       : lathe::serve::RatingScale::Auto;
      std::string out;
      lathe::serve::ExportSummary s = store.export_jsonl(eo, &out);
      lathe::write_file_atomic(o->output, out);
      if (o->json) {
        nlohmann::ordered_json j = s.to_json();
        j["format"] = o->format;
        j["output"] = o->output;
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        std::printf("%s\n", summary_line(s, *o).c_str());
      }
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
