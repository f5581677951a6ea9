// lathe tokenizer train --input FILE... --vocab-size N [--min-frequency 2] [--special-tokens LIST]
//   [--chat-template chatml] --output DIR [--json]
// Trains a byte-level BPE tokenizer on text (.txt and other files: the whole file) and JSONL files
// (.jsonl: the text-bearing string fields of each record) and writes a Hugging Face tokenizer directory.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/strings.h"
#include "lathe/core/file_io.h"
#include "lathe/records/record_shape.h"
#include "lathe/tokenizer/bpe_trainer.h"
#include "lathe/chat/chat_template.h"

namespace {

struct Options {
  std::vector<std::string> inputs;
  int vocab_size = 4000;
  uint64_t min_frequency = 2;
  std::string specials = "<|endoftext|>,<|im_start|>,<|im_end|>";
  std::string chat_template, output;
  bool json = false;
};

// Special tokens as given: not trimmed (a token may start with a space), empty items dropped.
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  for (std::string& item : lathe::split_list(s, ',', /*trim=*/false))
    if (!item.empty()) out.push_back(std::move(item));
  return out;
}

bool is_jsonl(const std::string& path) {
  return path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
}

int run_train(const Options& o) {
  auto t0 = std::chrono::steady_clock::now();
  if (!o.chat_template.empty()) lathe::ChatTemplate::builtin(o.chat_template);  // unknown name fails early
  lathe::tok::BpeTrainOptions opt;
  opt.vocab_size = o.vocab_size;
  opt.min_frequency = o.min_frequency;
  opt.special_tokens = split_commas(o.specials);
  lathe::tok::BpeTrainer trainer(opt);
  uint64_t bytes = 0, records = 0;
  for (auto& path : o.inputs) {
    std::string data = lathe::read_file(path);
    bytes += data.size();
    if (!is_jsonl(path)) {
      trainer.add_text(data);
      continue;
    }
    lathe::JsonlTextLines lines(data);
    std::string_view line;
    std::vector<std::string> texts;
    while (lines.next(line)) {
      const size_t line_no = size_t(lines.line());
      texts.clear();
      if (line.size() > lathe::kMaxJsonlLineBytes) {  // the same cap as every JSONL reader
        std::fprintf(stderr, "lathe tokenizer: warning: %s:%zu: skipped, line longer than %zu bytes\n", path.c_str(),
                     line_no, lathe::kMaxJsonlLineBytes);
        continue;
      }
      try {
        lathe::record_training_texts(line, texts);
      } catch (const lathe::Error& e) {
        // Tokenizer training only needs text: a bad line (malformed, or nested deeper than
        // kMaxJsonDepth) is skipped, said, and counted.
        std::fprintf(stderr, "lathe tokenizer: warning: %s:%zu: skipped, not valid JSON: %s\n", path.c_str(), line_no,
                     e.what());
        continue;
      }
      for (auto& t : texts) trainer.add_text(t);
      records++;
    }
  }
  auto t1 = std::chrono::steady_clock::now();
  lathe::tok::BpeTrainResult r = trainer.train();
  auto t2 = std::chrono::steady_clock::now();
  lathe::tok::write_trained_tokenizer(o.output, r, o.chat_template);
  double count_s = std::chrono::duration<double>(t1 - t0).count();
  double merge_s = std::chrono::duration<double>(t2 - t1).count();
  size_t vocab = r.vocab.size() + r.special_tokens.size();
  if (o.json) {
    nlohmann::ordered_json j = {{"output", o.output},       {"input_bytes", bytes},
                                {"records", records},       {"distinct_words", r.distinct_words},
                                {"vocab_size", vocab},      {"merges", r.merges.size()},
                                {"special_tokens", r.special_tokens.size()},
                                {"pairs_exhausted", r.pairs_exhausted},
                                {"count_seconds", count_s}, {"merge_seconds", merge_s}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("wrote %s/tokenizer.json: vocab %zu (256 bytes + %zu merged + %zu special), %zu merges\n",
                o.output.c_str(), vocab, r.vocab.size() - 256, r.special_tokens.size(), r.merges.size());
    std::printf("input %llu bytes, %llu distinct words; counting %.2f s, merging %.2f s\n",
                (unsigned long long)bytes, (unsigned long long)r.distinct_words, count_s, merge_s);
    if (r.pairs_exhausted)
      std::printf("note: stopped early, no pair occurs --min-frequency (%llu) times or more\n",
                  (unsigned long long)o.min_frequency);
  }
  return 0;
}

// `lathe tokenizer train`'s options, declared once (core/options.h): flags, LATHE_* environment,
// defaults, help. project.yaml's base_model.build.tokenizer passes its keys on as these flags.
const lathe::OptionTable<Options>& train_tokenizer_options() {
  static const lathe::OptionTable<Options> table = [] {
    lathe::OptionTable<Options> t("tokenizer");
    t.add("inputs", &Options::inputs, "Text files (whole file) or .jsonl files (text fields); repeatable")
        .with_flag("--input")
        .needed();
    t.add("vocab_size", &Options::vocab_size, "Total vocabulary: 256 bytes + merges + special tokens").range(257, 1 << 20);
    t.add("min_frequency", &Options::min_frequency, "Never merge a pair seen fewer times");
    t.add("special_tokens", &Options::specials, "Comma-separated special tokens (ids after the merges)");
    t.add("chat_template", &Options::chat_template, "Builtin chat template for tokenizer_config.json (chatml)");
    t.add("output", &Options::output, "Output directory").needed();
    t.add("json", &Options::json, "Print the summary as JSON");
    return t;
  }();
  return table;
}

std::function<int()> setup(CLI::App& app) {
  app.require_subcommand(1);
  CLI::App* train = app.add_subcommand("train", "Train a byte-level BPE tokenizer on text/JSONL files");
  auto flags = std::make_shared<lathe::cli::CliOptions>(*train, train_tokenizer_options());
  return [flags, train] {
    if (!train->parsed()) return 2;
    Options o;
    train_tokenizer_options().apply(o, flags->overrides());  // defaults < LATHE_* environment < flags
    train_tokenizer_options().check(o);
    return run_train(o);
  };
}
LATHE_COMMAND("tokenizer", "Tokenizer tools: `lathe tokenizer train` builds a byte-level BPE tokenizer", setup);

}  // namespace
