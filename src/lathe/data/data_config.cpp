// The `data:` YAML section → DataConfig. Every key is documented in docs/data.md.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "lathe/core/error.h"
#include "lathe/data/pipeline.h"

namespace lathe::data {

namespace {

void only_keys(const YAML::Node& n, const std::string& where, std::set<std::string> allowed) {
  if (!n.IsMap()) fail("data", "{}: expected a mapping", where);
  for (auto it : n) {
    auto k = it.first.as<std::string>();
    if (!allowed.count(k)) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail("data", "{}: unknown key '{}' (expected one of: {})", where, k, list);
    }
  }
}

template <class T>
void get(const YAML::Node& n, const char* key, T& v, const std::string& where) {
  if (!n[key]) return;
  try {
    v = n[key].as<T>();
  } catch (const YAML::Exception& e) {
    fail("data", "{}.{}: {}", where, key, e.what());
  }
}

std::string resolve(const std::string& p, const std::string& base) {
  if (p.empty() || base.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base) / p).string();
}

void one_of(const std::string& v, const std::string& where, std::initializer_list<const char*> ok) {
  for (auto* o : ok)
    if (v == o) return;
  fail("data", "{}: '{}' is not one of the allowed values", where, v);
}

}  // namespace

DataConfig parse_data_config(const YAML::Node& root, const std::string& where, const std::string& base) {
  DataConfig c;
  only_keys(root, where, {"inputs", "output", "strict", "collect", "mapping", "clean", "pii", "dedup", "format", "split"});
  if (root["inputs"]) {
    if (root["inputs"].IsScalar()) c.inputs = {root["inputs"].as<std::string>()};
    else get(root, "inputs", c.inputs, where);
  }
  for (auto& p : c.inputs) p = resolve(p, base);
  get(root, "output", c.output, where);
  c.output = resolve(c.output, base);
  get(root, "strict", c.strict, where);
  if (auto n = root["collect"]) {
    std::string w = where + ".collect";
    only_keys(n, w, {"chunk_chars", "chunk_tokens", "max_line_bytes"});
    get(n, "chunk_chars", c.collect.chunk_chars, w);
    get(n, "chunk_tokens", c.collect.chunk_tokens, w);
    get(n, "max_line_bytes", c.collect.max_line_bytes, w);
  }
  if (auto n = root["mapping"]) {
    std::string w = where + ".mapping";
    only_keys(n, w, {"fields", "stratify_by", "system_prompt"});
    get(n, "fields", c.mapping.fields, w);
    get(n, "system_prompt", c.mapping.system_prompt, w);
  }
  if (auto n = root["clean"]) {
    std::string w = where + ".clean";
    only_keys(n, w, {"normalize", "remove_control", "remove_zero_width", "strip_html", "normalize_whitespace", "min_chars",
                     "max_chars", "repetition_filter", "max_dup_line_fraction", "max_dup_line_char_fraction",
                     "max_top_ngram_fraction", "max_dup_ngram_fraction", "script", "min_script_ratio", "min_answer_chars"});
    get(n, "normalize", c.clean.normalize, w);
    one_of(c.clean.normalize, w + ".normalize", {"nfc", "nfkc", "none"});
    get(n, "remove_control", c.clean.remove_control, w);
    get(n, "remove_zero_width", c.clean.remove_zero_width, w);
    get(n, "strip_html", c.clean.strip_html, w);
    get(n, "normalize_whitespace", c.clean.normalize_whitespace, w);
    get(n, "min_chars", c.clean.min_chars, w);
    get(n, "max_chars", c.clean.max_chars, w);
    get(n, "repetition_filter", c.clean.repetition_filter, w);
    get(n, "max_dup_line_fraction", c.clean.max_dup_line_fraction, w);
    get(n, "max_dup_line_char_fraction", c.clean.max_dup_line_char_fraction, w);
    if (n["max_top_ngram_fraction"]) {
      double v = 0;
      get(n, "max_top_ngram_fraction", v, w);
      for (auto& x : c.clean.max_top_ngram_fraction) x = v;
    }
    if (n["max_dup_ngram_fraction"]) {
      double v = 0;
      get(n, "max_dup_ngram_fraction", v, w);
      for (auto& x : c.clean.max_dup_ngram_fraction) x = v;
    }
    get(n, "script", c.clean.script, w);
    if (!c.clean.script.empty()) one_of(c.clean.script, w + ".script", {"hangul", "latin", "han", "kana", "cyrillic"});
    get(n, "min_script_ratio", c.clean.min_script_ratio, w);
    get(n, "min_answer_chars", c.clean.min_answer_chars, w);
  }
  if (auto n = root["pii"]) {
    std::string w = where + ".pii";
    only_keys(n, w, {"policy", "min_confidence", "types", "ip_ranges"});
    get(n, "policy", c.pii.policy, w);
    one_of(c.pii.policy, w + ".policy", {"redact", "drop", "report", "off"});
    get(n, "min_confidence", c.pii.min_confidence, w);
    get(n, "types", c.pii.types, w);
    get(n, "ip_ranges", c.pii.ip_ranges, w);
    one_of(c.pii.ip_ranges, w + ".ip_ranges", {"all", "public", "private"});
  }
  if (auto n = root["dedup"]) {
    std::string w = where + ".dedup";
    only_keys(n, w, {"exact", "near", "near_action", "threshold", "ngram", "eval_prompts", "contamination_action"});
    get(n, "exact", c.dedup.exact, w);
    get(n, "near", c.dedup.near, w);
    get(n, "near_action", c.dedup.near_action, w);
    one_of(c.dedup.near_action, w + ".near_action", {"drop", "keep"});
    get(n, "threshold", c.dedup.threshold, w);
    get(n, "ngram", c.dedup.ngram, w);
    if (n["eval_prompts"] && n["eval_prompts"].IsScalar()) c.dedup.eval_prompts = {n["eval_prompts"].as<std::string>()};
    else get(n, "eval_prompts", c.dedup.eval_prompts, w);
    for (auto& p : c.dedup.eval_prompts) p = resolve(p, base);
    get(n, "contamination_action", c.dedup.contamination_action, w);
    one_of(c.dedup.contamination_action, w + ".contamination_action", {"drop", "report"});
  }
  if (auto n = root["format"]) {
    std::string w = where + ".format";
    only_keys(n, w, {"model", "chat_template", "max_seq_length", "train_on_inputs", "truncation", "packing", "min_tokens", "system_prompt"});
    get(n, "model", c.format.model, w);
    c.format.model = resolve(c.format.model, base);
    get(n, "chat_template", c.format.chat_template, w);
    get(n, "max_seq_length", c.format.max_seq_length, w);
    get(n, "train_on_inputs", c.format.train_on_inputs, w);
    get(n, "truncation", c.format.truncation, w);
    one_of(c.format.truncation, w + ".truncation", {"truncate", "drop"});
    get(n, "packing", c.format.packing, w);
    get(n, "min_tokens", c.format.min_tokens, w);
    get(n, "system_prompt", c.format.system_prompt, w);
  }
  if (auto n = root["split"]) {
    std::string w = where + ".split";
    only_keys(n, w, {"ratios", "seed", "stratify_by"});
    if (n["ratios"]) {
      std::vector<double> r;
      get(n, "ratios", r, w);
      if (r.empty() || r.size() > 3) fail("data", "{}.ratios: give 1 to 3 numbers (train, validation, test)", w);
      c.split.ratios = {0, 0, 0};
      for (size_t i = 0; i < r.size(); i++) c.split.ratios[i] = r[i];
    }
    get(n, "seed", c.split.seed, w);
    get(n, "stratify_by", c.split.stratify_by, w);
  }
  c.mapping.stratify_by = c.split.stratify_by;
  double sum = c.split.ratios[0] + c.split.ratios[1] + c.split.ratios[2];
  for (double r : c.split.ratios)
    if (r < 0) fail("data", "{}.split.ratios: negative ratio", where);
  if (sum <= 0) fail("data", "{}.split.ratios: they sum to zero", where);
  c.collect.strict = c.strict;
  return c;
}

DataConfig load_data_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail("data", "{}: {}", path, e.what());
  }
  std::string base = std::filesystem::path(path).parent_path().string();
  if (root.IsMap() && root["data"]) return parse_data_config(root["data"], path + ": data", base);
  return parse_data_config(root, path, base);
}

nlohmann::json DataConfig::to_json() const {
  return {{"inputs", inputs},
          {"strict", strict},
          {"collect", {{"chunk_chars", collect.chunk_chars}, {"chunk_tokens", collect.chunk_tokens}, {"max_line_bytes", collect.max_line_bytes}}},
          {"mapping", {{"fields", mapping.fields}, {"system_prompt", mapping.system_prompt}}},
          {"clean",
           {{"normalize", clean.normalize}, {"remove_control", clean.remove_control}, {"remove_zero_width", clean.remove_zero_width},
            {"strip_html", clean.strip_html}, {"normalize_whitespace", clean.normalize_whitespace}, {"min_chars", clean.min_chars},
            {"max_chars", clean.max_chars}, {"repetition_filter", clean.repetition_filter},
            {"max_dup_line_fraction", clean.max_dup_line_fraction}, {"max_dup_line_char_fraction", clean.max_dup_line_char_fraction},
            {"script", clean.script}, {"min_script_ratio", clean.min_script_ratio}, {"min_answer_chars", clean.min_answer_chars}}},
          {"pii", {{"policy", pii.policy}, {"min_confidence", pii.min_confidence}, {"types", pii.types}, {"ip_ranges", pii.ip_ranges}}},
          {"dedup",
           {{"exact", dedup.exact}, {"near", dedup.near}, {"near_action", dedup.near_action}, {"threshold", dedup.threshold},
            {"ngram", dedup.ngram}, {"eval_prompts", dedup.eval_prompts}, {"contamination_action", dedup.contamination_action}}},
          {"format",
           {{"model", format.model}, {"chat_template", format.chat_template}, {"max_seq_length", format.max_seq_length},
            {"train_on_inputs", format.train_on_inputs}, {"truncation", format.truncation}, {"packing", format.packing},
            {"min_tokens", format.min_tokens}, {"system_prompt", format.system_prompt}}},
          {"split", {{"ratios", split.ratios}, {"seed", split.seed}, {"stratify_by", split.stratify_by}}}};
}

}  // namespace lathe::data
