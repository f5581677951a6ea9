// The retrieval index: passages from a user's documents in one SQLite file (DIR/index.sqlite) with
// an FTS5 table for BM25 search, built and rebuilt incrementally by content hash like `lathe run`'s
// stages, and read by `lathe index search`, `lathe eval --retrieval` and `lathe serve --index`.
//
// Layout: meta (settings that decide the passages: chunk_tokens, overlap, analyzer, the tokenizer's
// hash; a change rebuilds everything), docs (one row per input file: path as given, xxh3 of its
// bytes, format, passages), passages (text, file, line/page/item, tokens) and passages_fts (the
// analyzed terms, rowid = passage id). A build runs in one transaction: a killed build leaves the
// previous index as it was, and readers (a running server) see either the old or the new one.
// With an encoder, passage_vectors and meta 'encoder' hold the dense side (dense.h).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/retrieval/analyzer.h"

namespace lathe {
class SqliteDb;
}

namespace lathe::retrieval {

struct BuildOptions {
  std::vector<std::string> inputs;  // files, directories, globs (data layer's expand_inputs)
  std::string output;               // index directory
  size_t chunk_tokens = 256;
  size_t overlap = 32;
  std::string model;                // HF directory or tokenizer.json whose tokenizer measures passages
  std::string encoder;              // dense encoder directory (embedder.h); empty: BM25 only
  // The encoder's text prefixes and pooling; "auto": the directory's sentence-transformers files.
  std::string query_prefix = "auto", passage_prefix = "auto", pooling = "auto";
  std::string analyzer = "bigram";
  bool progress = true;             // a line per file on stderr
};

struct BuildReport {
  size_t files_seen = 0, files_added = 0, files_changed = 0, files_unchanged = 0, files_removed = 0,
         files_failed = 0;
  size_t units_in = 0, passages_out = 0, passages_dropped = 0;  // this build's changed files: in = out + dropped
  size_t passages_total = 0;                                    // in the index afterwards
  std::map<std::string, size_t> dropped;                        // reason → count
  std::vector<std::string> problems;                            // "file:line: reason: detail", capped
  size_t bytes_read = 0;
  double seconds = 0;
  bool rebuilt_all = false;  // the settings changed (or the index is new)
  std::string settings_change;
  // Dense side: passages embedded by this build, vectors afterwards, the encoder's name; whether
  // vectors of an earlier build were dropped (built without --encoder this time).
  size_t passages_embedded = 0, vectors_total = 0;
  double embed_seconds = 0;
  std::string encoder, encoder_change;
  bool vectors_dropped = false;
  nlohmann::ordered_json to_json() const;
};

BuildReport build_index(const BuildOptions& o);

struct Hit {
  int64_t id = 0;
  std::string text, file, source;  // source: "file:12" / "file page 3" / "file item 7"
  int64_t line = 0, page = 0, item = 0;
  double score = 0;                // BM25 (higher is better) or fused score
  nlohmann::ordered_json to_json() const;
};

struct SearchOptions {
  int k = 5;
  std::string mode = "auto";  // auto (hybrid when the index has vectors, else bm25) | bm25 | dense | hybrid
};

class DenseSearcher;

class Index {
 public:
  // Opens DIR (or DIR/index.sqlite) read-only; throws "[index] DIR: ..." when it is not an index.
  explicit Index(const std::string& dir);
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Thread-safe (SQLite's serialized mode; one connection per Index).
  std::vector<Hit> search(const std::string& query, const SearchOptions& o = {}) const;
  size_t passages() const;
  bool has_vectors() const { return dense_ != nullptr; }
  // Embed queries with this encoder directory instead of the one recorded at build time (a moved
  // model); it must give the same vectors (identity checked on the first dense search).
  void set_encoder(const std::string& dir);
  Analyzer analyzer() const { return analyzer_; }
  const std::string& dir() const { return dir_; }
  nlohmann::ordered_json info() const;  // settings, counts, files

 private:
  std::vector<Hit> search_bm25(const std::string& query, int k) const;
  Hit hit_by_id(int64_t id, double score) const;
  std::string dir_;
  std::unique_ptr<SqliteDb> db_;
  std::unique_ptr<DenseSearcher> dense_;  // set when the index has vectors
  Analyzer analyzer_ = Analyzer::Bigram;
  size_t n_passages_ = 0;  // at open: the document-frequency cut-off of search_bm25
};

std::string index_db_path(const std::string& dir);  // DIR/index.sqlite (a path ending .sqlite as is)

}  // namespace lathe::retrieval
