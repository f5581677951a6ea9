// lathe index build|search|info: a searchable index of the user's documents for retrieval-augmented
// answers (docs/retrieval.md). build is incremental (content hashes); search prints ranked passages
// with their sources.
#include <cstdio>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/utf8.h"
#include "lathe/retrieval/augment.h"
#include "lathe/retrieval/index_options.h"

namespace {

std::function<int()> setup(CLI::App& app) {
  app.require_subcommand(1);
  auto* build = app.add_subcommand("build", "Index documents (incremental: unchanged files are kept)");
  auto* search = app.add_subcommand("search", "Search an index");
  auto* info = app.add_subcommand("info", "Settings, passages and files of an index (JSON)");
  auto* augment = app.add_subcommand("augment", "Training records with retrieved passages in the prompt (RAG fine-tuning)");
  const auto& at = lathe::retrieval::index_augment_options_table();
  auto aflags = std::make_shared<lathe::cli::CliOptions>(*augment, at);
  const auto& bt = lathe::retrieval::index_build_options_table();
  const auto& st = lathe::retrieval::index_search_options_table();
  auto bflags = std::make_shared<lathe::cli::CliOptions>(*build, bt);
  auto sflags = std::make_shared<lathe::cli::CliOptions>(*search, st);
  auto info_dir = std::make_shared<std::string>();
  info->add_option("--index", *info_dir, "Index directory")->required();
  return [=, &bt, &st, &at] {
    if (augment->parsed()) {
      lathe::retrieval::AugmentCommandOptions o;
      at.apply(o, aflags->overrides());
      at.check(o);
      lathe::retrieval::Index index(o.index);
      lathe::retrieval::AugmentOptions ao;
      ao.k = o.k;
      ao.distractor_fraction = o.distractor_fraction;
      ao.keep_plain = o.keep_plain;
      ao.seed = uint64_t(o.seed);
      if (!o.rag_template.empty()) ao.prompt = lathe::retrieval::RagPrompt::from_file(o.rag_template);
      auto r = lathe::retrieval::augment_file(index, o.data, o.output, ao);
      std::printf("augmented %zu of %zu records (%zu with the top %d passages, %zu with distractors, %zu without any "
                  "hit, %zu not conversational): %zu records written to %s\n",
                  r.with_top_passages + r.with_distractors, r.records_in, r.with_top_passages, o.k, r.with_distractors,
                  r.without_hits, r.passed_through, r.written, o.output.c_str());
      return 0;
    }
    if (build->parsed()) {
      lathe::retrieval::BuildOptions o;
      bt.apply(o, bflags->overrides());
      bt.check(o);
      auto r = lathe::retrieval::build_index(o);
      for (auto& p : r.problems) std::fprintf(stderr, "[index] skipped: %s\n", p.c_str());
      std::printf(
          "indexed %zu files (%zu new, %zu changed, %zu unchanged, %zu removed, %zu failed): %zu passages written, "
          "%zu dropped, %zu in the index; %.2f MB in %.2f s (%.2f MB/s)%s\n",
          r.files_seen, r.files_added, r.files_changed, r.files_unchanged, r.files_removed, r.files_failed,
          r.passages_out, r.passages_dropped, r.passages_total, double(r.bytes_read) / 1e6, r.seconds,
          r.seconds > 0 ? double(r.bytes_read) / 1e6 / r.seconds : 0.0, r.rebuilt_all ? " (full build)" : "");
      return 0;
    }
    if (search->parsed()) {
      lathe::retrieval::SearchCommandOptions o;
      st.apply(o, sflags->overrides());
      st.check(o);
      lathe::retrieval::Index index(o.index);
      lathe::retrieval::SearchOptions so;
      so.k = o.k;
      so.mode = o.mode;
      auto hits = index.search(o.query, so);
      if (o.json) {
        nlohmann::ordered_json j;
        j["hits"] = nlohmann::ordered_json::array();
        for (auto& h : hits) j["hits"].push_back(h.to_json());
        std::printf("%s\n", j.dump().c_str());
        return 0;
      }
      for (size_t i = 0; i < hits.size(); i++) {
        const std::string& t = hits[i].text;  // the first 200 characters, cut at a character boundary
        size_t cut = lathe::utf8_offset(t, 200);
        std::string text = cut < t.size() ? t.substr(0, cut) + "…" : t;
        std::printf("%zu. [%.3f] %s\n   %s\n", i + 1, hits[i].score, hits[i].source.c_str(), text.c_str());
      }
      if (hits.empty()) std::printf("no passage matches\n");
      return 0;
    }
    lathe::retrieval::Index index(*info_dir);
    std::printf("%s\n", index.info().dump(2).c_str());
    (void)info;
    return 0;
  };
}
LATHE_COMMAND("index", "Build and search a retrieval index of documents (BM25, Korean-aware)", setup);

}  // namespace
