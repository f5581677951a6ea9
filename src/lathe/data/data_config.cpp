// The `data:` YAML section → DataConfig, through data_options_table(). Every key is documented in
// docs/data.md.
#include "lathe/data/data_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/options_yaml.h"

namespace lathe::data {

const OptionTable<DataConfig>& data_options_table() {
  using C = DataConfig;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("data");
    t.add("inputs", &C::inputs, "Input files, directories or globs (repeatable)").with_flag("--input").one_or_list().path();
    t.add("output", &C::output, "Output directory").path().hidden_from_json();
    t.add("review", &C::review, "A reviewer's decisions on records (lathe ui's review/data.json): reject, edit, approve, label")
        .path()
        .hidden_from_json();
    t.add("strict", &C::strict, "Fail on the first malformed line/row/file instead of skipping it");
    t.add("max_memory", &C::max_memory,
          "Memory for batches and spools, e.g. 512MB, 2GB (default: a quarter of RAM, at most 1GB); never changes the outputs")
        .with_flag("--max-memory")
        .hidden_from_json();
    t.add("collect.chunk_chars", [](C& c) -> auto& { return c.collect.chunk_chars; },
          "Text/Markdown/HTML/PDF chunk budget in characters");
    t.add("collect.chunk_tokens", [](C& c) -> auto& { return c.collect.chunk_tokens; },
          "When > 0 (with a model): the chunk budget in tokens instead");
    t.add("collect.max_line_bytes", [](C& c) -> auto& { return c.collect.max_line_bytes; },
          "JSONL lines / CSV rows longer than this are skipped");
    t.add("mapping.fields", [](C& c) -> auto& { return c.mapping.fields; },
          "Target field: source field renames (dots for nesting), e.g. instruction=질문");
    t.add("mapping.system_prompt", [](C& c) -> auto& { return c.mapping.system_prompt; },
          "System message added when a conversation has none");
    t.add("clean.normalize", [](C& c) -> auto& { return c.clean.normalize; }, "Unicode normalization")
        .one_of({"nfc", "nfkc", "none"});
    t.add("clean.remove_control", [](C& c) -> auto& { return c.clean.remove_control; },
          "Remove C0/C1 control characters except \\n and \\t");
    t.add("clean.remove_zero_width", [](C& c) -> auto& { return c.clean.remove_zero_width; },
          "Remove zero-width characters and soft hyphens");
    t.add("clean.strip_html", [](C& c) -> auto& { return c.clean.strip_html; }, "Remove HTML tags and entities left in text");
    t.add("clean.normalize_whitespace", [](C& c) -> auto& { return c.clean.normalize_whitespace; },
          "Exotic spaces to ' ', runs collapsed, 3+ newlines to 2");
    t.add("clean.min_chars", [](C& c) -> auto& { return c.clean.min_chars; }, "Shortest record text kept, in characters");
    t.add("clean.max_chars", [](C& c) -> auto& { return c.clean.max_chars; }, "Longest record text kept; 0 = no limit");
    t.add("clean.repetition_filter", [](C& c) -> auto& { return c.clean.repetition_filter; },
          "Gopher repetition filters (texts of >= 20 words)");
    t.add("clean.max_dup_line_fraction", [](C& c) -> auto& { return c.clean.max_dup_line_fraction; },
          "Largest fraction of duplicate lines").range(0, 1);
    t.add("clean.max_dup_line_char_fraction", [](C& c) -> auto& { return c.clean.max_dup_line_char_fraction; },
          "Largest fraction of characters in duplicate lines").range(0, 1);
    // One value in the file for every n; the defaults differ per n, so these are not in to_json.
    t.add_computed<double>(
         "clean.max_top_ngram_fraction", [](const C& c) { return c.clean.max_top_ngram_fraction[0]; },
         [](C& c, const double& v) {
           for (auto& x : c.clean.max_top_ngram_fraction) x = v;
         },
         "Largest character share of the top 2/3/4-gram, one value for every n (defaults 0.20, 0.18, 0.16)")
        .range(0, 1)
        .hidden_from_json();
    t.add_computed<double>(
         "clean.max_dup_ngram_fraction", [](const C& c) { return c.clean.max_dup_ngram_fraction[0]; },
         [](C& c, const double& v) {
           for (auto& x : c.clean.max_dup_ngram_fraction) x = v;
         },
         "Largest character share of duplicated 5..10-grams, one value for every n (defaults 0.15 ... 0.10)")
        .range(0, 1)
        .hidden_from_json();
    t.add("clean.script", [](C& c) -> auto& { return c.clean.script; }, "Expected script (\"\" = off)")
        .one_of({"", "hangul", "latin", "han", "kana", "cyrillic"});
    t.add("clean.min_script_ratio", [](C& c) -> auto& { return c.clean.min_script_ratio; },
          "Smallest share of letters in `script`").range(0, 1);
    t.add("clean.min_answer_chars", [](C& c) -> auto& { return c.clean.min_answer_chars; },
          "Shorter final assistant answers are dropped (0 = off)");
    t.add("pii.policy", [](C& c) -> auto& { return c.pii.policy; }, "What to do with personal data")
        .one_of({"redact", "drop", "report", "off"})
        .with_flag("--pii");
    t.add("pii.min_confidence", [](C& c) -> auto& { return c.pii.min_confidence; }, "Smallest detector confidence acted on")
        .range(0, 1);
    t.add("pii.types", [](C& c) -> auto& { return c.pii.types; }, "PII types to act on, e.g. EMAIL,PHONE,RRN; empty = all");
    t.add("pii.ip_ranges", [](C& c) -> auto& { return c.pii.ip_ranges; }, "Which IP addresses count as personal data")
        .one_of({"all", "public", "private"});
    t.add("dedup.exact", [](C& c) -> auto& { return c.dedup.exact; }, "Drop exact duplicates");
    t.add("dedup.near", [](C& c) -> auto& { return c.dedup.near; }, "Find near duplicates (MinHash)");
    t.add("dedup.near_action", [](C& c) -> auto& { return c.dedup.near_action; },
          "Near-duplicate clusters: drop all but one, or keep them (in one split)")
        .one_of({"drop", "keep"});
    t.add("dedup.threshold", [](C& c) -> auto& { return c.dedup.threshold; }, "Estimated Jaccard similarity of near duplicates")
        .range(0, 1);
    t.add("dedup.ngram", [](C& c) -> auto& { return c.dedup.ngram; }, "Word n-gram size of the MinHash shingles").min(1);
    t.add("dedup.eval_prompts", [](C& c) -> auto& { return c.dedup.eval_prompts; },
          "Evaluation files whose prompts must not appear in training data")
        .with_flag("--eval-prompts")
        .one_or_list()
        .path();
    t.add("dedup.contamination_action", [](C& c) -> auto& { return c.dedup.contamination_action; },
          "Records that contain an evaluation prompt: drop or only report them")
        .one_of({"drop", "report"});
    t.add("dedup.preference_key", [](C& c) -> auto& { return c.dedup.preference_key; },
          "Preference records: duplicates when the whole pair matches (pair) or when the prompt does (prompt)")
        .one_of({"pair", "prompt"});
    t.add("format.model", [](C& c) -> auto& { return c.format.model; },
          "Model directory or .gguf whose tokenizer and chat template format the data (omit: no token shards)")
        .with_flag("--model")
        .path();
    t.add("format.chat_template", [](C& c) -> auto& { return c.format.chat_template; },
          "Built-in template name or .jinja file (default: the model's)")
        .with_flag("--chat-template");
    t.add("format.max_seq_length", [](C& c) -> auto& { return c.format.max_seq_length; },
          "Tokens per sequence (truncation and packing limit)")
        .with_flag("--max-seq-length")
        .min(1);
    t.add("format.train_on_inputs", [](C& c) -> auto& { return c.format.train_on_inputs; }, "Loss on prompt tokens too")
        .with_flag("--train-on-inputs");
    t.add("format.truncation", [](C& c) -> auto& { return c.format.truncation; }, "Longer sequences: truncate or drop")
        .one_of({"truncate", "drop"});
    t.add("format.packing", [](C& c) -> auto& { return c.format.packing; }, "Bin-pack sequences up to max_seq_length")
        .with_flag("--packing");
    t.add("format.min_tokens", [](C& c) -> auto& { return c.format.min_tokens; }, "Shorter sequences are dropped");
    t.add("format.system_prompt", [](C& c) -> auto& { return c.format.system_prompt; },
          "System message added to conversations that have none");
    t.add_computed<std::vector<double>>(
         "split.ratios", [](const C& c) { return std::vector<double>(c.split.ratios.begin(), c.split.ratios.end()); },
         [](C& c, const std::vector<double>& r) {
           c.split.ratios = {0, 0, 0};
           for (size_t i = 0; i < r.size(); i++) c.split.ratios[i] = r[i];
         },
         "train,validation,test ratios, e.g. 0.9,0.05,0.05")
        .with_flag("--split")
        .items(1, 3)
        .min(0);
    t.add("split.seed", [](C& c) -> auto& { return c.split.seed; }, "Split seed").with_flag("--seed");
    t.add("split.stratify_by", [](C& c) -> auto& { return c.split.stratify_by; },
          "A source field whose values are spread evenly over the splits, e.g. category");
    return t;
  }();
  return table;
}

uint64_t parse_memory_size(const std::string& text, const std::string& where) {
  // "1073741824", "512MB", "1.5 GB", "2GiB", "64k": decimal and binary units both count in 1024s, as
  // memory is sized (a user writing 1GB means the machine's gigabyte).
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    fail("data", "{}: max_memory: '{}' is not a size (e.g. 512MB, 2GB)", where, text);
  }
  std::string unit = text.substr(used);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  for (auto& ch : unit) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1.0}, {"b", 1.0}, {"k", 0x1p10}, {"kb", 0x1p10}, {"kib", 0x1p10}, {"m", 0x1p20}, {"mb", 0x1p20},
      {"mib", 0x1p20}, {"g", 0x1p30}, {"gb", 0x1p30}, {"gib", 0x1p30}, {"t", 0x1p40}, {"tb", 0x1p40}, {"tib", 0x1p40}};
  for (auto& [name, mult] : kUnits)
    if (unit == name) {
      const double bytes = v * mult;
      if (!(bytes >= 16.0 * 0x1p20) || bytes > 0x1p60)
        fail("data", "{}: max_memory: '{}' is outside 16MB .. 1EB", where, text);
      return uint64_t(bytes);
    }
  fail("data", "{}: max_memory: unknown unit in '{}' (use B, KB, MB, GB or TB)", where, text);
}

void finish_data_config(DataConfig& c, const std::string& where) {
  c.max_memory_bytes = c.max_memory.empty() || c.max_memory == "0" ? 0 : parse_memory_size(c.max_memory, where);
  c.mapping.stratify_by = c.split.stratify_by;
  double sum = c.split.ratios[0] + c.split.ratios[1] + c.split.ratios[2];
  for (double r : c.split.ratios)
    if (!(r >= 0) || !std::isfinite(r)) fail("data", "{}: split.ratios: {} is not a finite ratio >= 0", where, r);
  if (sum <= 0) fail("data", "{}: split.ratios: they sum to zero", where);
  c.collect.strict = c.strict;
}

DataConfig parse_data_config(const YAML::Node& root, const std::string& where, const std::string& base) {
  const auto& t = data_options_table();
  DataConfig c;
  t.apply(c, options_from_yaml(root, all_options(t), {"data", where, true, "", base, {}}));
  finish_data_config(c, where);
  return c;
}

DataConfig load_data_config(const std::string& path) {
  const auto& t = data_options_table();
  DataConfig c;
  t.apply(c, options_from_yaml_file(path, t, "data"));
  finish_data_config(c, path);
  return c;
}

nlohmann::json DataConfig::to_json() const { return data_options_table().to_json(*this); }

}  // namespace lathe::data
