// manifest.json of a prepared dataset directory (`lathe data prepare`), format "lathe-dataset-v1":
// one reader and one writer for the pipeline that writes it and for training, evaluation and
// projects that read it (docs/data.md lists the fields).
//
//   format         "lathe-dataset-v1"                                   (required)
//   splits         {name: {records, records_count, records_hash, shards, shard_hashes, sequences,
//                          tokens, label_tokens, packed, bins}}      (required; split fields optional)
//   config         the `data:` configuration that produced it
//   tokenizer      {source, hash} and chat_template, when the records were tokenized
//   preference     "paired" | "unpaired" when the records are preference records (record_shape.h:
//                  {"prompt","chosen","rejected"} / {"prompt","completion","label"} or their
//                  pre-tokenized forms), which have no token shards; absent for SFT records
//   inputs         [{path, hash, records, format}]
//   counts         {stage: {in, out, dropped: {reason: n}}}
//   content_hash   xxh3 over records and shards (same inputs + config → same hash)
//
// Reading accepts a manifest with only the required fields (hand-written ones in tests and tools);
// every field present must have its type. Errors name the file and the field:
// "[dataset] DIR/manifest.json: \"splits\".\"train\".\"shards\"[0] must be a string".
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe {

inline constexpr const char* kDatasetManifestFormat = "lathe-dataset-v1";

struct DatasetSplit {
  std::string records;                    // records JSONL, relative to the dataset directory ("" = none)
  uint64_t records_count = 0;
  std::string records_hash;
  std::vector<std::string> shards;        // token shard files, relative to the dataset directory
  std::vector<std::string> shard_hashes;
  uint64_t sequences = 0, tokens = 0, label_tokens = 0;
  bool packed = false;
  uint64_t bins = 0;                      // packed bins (written only when packed)
};

struct DatasetInputFile {
  std::string path, hash, format;
  uint64_t records = 0;
};

struct DatasetStageTotals {
  uint64_t in = 0, out = 0;
  std::map<std::string, uint64_t> dropped;  // reason → records
};

struct DatasetManifest {
  std::map<std::string, DatasetSplit> splits;
  nlohmann::json config = nlohmann::json::object();
  // Set when the records were tokenized: where the tokenizer came from, its hash, and the chat
  // template source the conversations were rendered with.
  struct Tokenizer {
    std::string source, hash;
  };
  std::optional<Tokenizer> tokenizer;
  std::string chat_template;
  std::string preference;  // "" (SFT), "paired" or "unpaired"
  std::vector<DatasetInputFile> inputs;
  std::map<std::string, DatasetStageTotals> counts;
  std::string content_hash;

  nlohmann::json to_json() const;
  // `where` names the file in errors.
  static DatasetManifest from_json(const nlohmann::json& j, const std::string& where);
  // The split named `name`, or nullptr.
  const DatasetSplit* split(const std::string& name) const;
};

// DIR/manifest.json.
std::string dataset_manifest_path(const std::string& dir);
bool has_dataset_manifest(const std::string& dir);
// Reads DIR/manifest.json (depth-bounded). Throws lathe::Error "[dataset] ..." naming the file: no
// manifest ("DIR: a directory without manifest.json is not a prepared dataset"), invalid JSON, a
// wrong "format", a missing or mistyped field.
DatasetManifest read_dataset_manifest(const std::string& dir);
// Writes DIR/manifest.json atomically (2-space indented JSON and a newline; keys sorted, so the
// bytes depend only on the content).
void write_dataset_manifest(const std::string& dir, const DatasetManifest& m);
// A path of the manifest (a split's records or shard) resolved against the dataset directory.
std::string dataset_file(const std::string& dir, const std::string& name);

}  // namespace lathe
