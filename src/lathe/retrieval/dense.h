// Dense vectors beside the FTS index, and hybrid ranking.
//
// Storage (same SQLite file as the passages): passage_vectors(id = passages.id, vec BLOB of dim
// little-endian float32, L2-normalized), and meta row 'encoder' = the embedder's identity()
// (embedder.h) plus "dir", the encoder directory's absolute path. A build embeds only passages that
// have no vector yet (new or changed files); a different encoder (other fingerprint, dim, pooling,
// prefixes or max_tokens) re-embeds every passage; a build without --encoder drops the vectors.
//
// Search: the query is embedded with the stored settings and ranked by cosine against every vector
// (brute force: one matrix-vector product over a copy held in memory after the first query). Hybrid
// ranking fuses the BM25 and dense lists by reciprocal rank fusion (Cormack et al. 2009):
// score(p) = Σ over the lists that hold p of 1 / (kRrfK + rank), rank from 1, each list cut at
// max(k, kFusionDepth).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/retrieval/embedder.h"

namespace lathe {
class SqliteDb;
}

namespace lathe::retrieval {

inline constexpr int kRrfK = 60;          // RRF's constant; 60 as in the paper and most hybrid search engines
inline constexpr int kFusionDepth = 50;   // passages taken from each list before fusing

struct DenseBuildOptions {
  std::string encoder;  // encoder directory
  EmbedderOptions embedder;
  bool progress = true;
  int batch = 64;       // passages per embed call (progress granularity)
};

struct DenseBuildResult {
  size_t embedded = 0;        // passages embedded by this build
  size_t vectors = 0;         // vectors in the index afterwards
  bool reembedded_all = false;
  std::string change;         // why everything was re-embedded ("encoder changed from ...")
  double seconds = 0;
  nlohmann::ordered_json encoder;  // the stored identity
};

// Inside the build's transaction, after the passages are up to date.
DenseBuildResult dense_update(SqliteDb& db, const DenseBuildOptions& o);
// Drops vectors and the encoder row (a build without --encoder, or changed passage settings).
// True when there were vectors.
bool dense_drop(SqliteDb& db);
// Deletes the vectors of a file's passages (before the passages themselves).
void dense_delete_file(SqliteDb& db, const std::string& path);

// Reciprocal rank fusion of ranked id lists (best first): ids by descending fused score, ties by
// ascending id; at most `k`.
std::vector<std::pair<int64_t, double>> rrf_fuse(const std::vector<std::vector<int64_t>>& lists, size_t k,
                                                 int rrf_k = kRrfK);

// The dense side of an open index: the stored encoder row, and (loaded on first use) the embedder
// and the vectors. Thread-safe.
class DenseSearcher {
 public:
  // `encoder_row`: the meta 'encoder' JSON; `index_path` names the file in errors.
  DenseSearcher(SqliteDb& db, nlohmann::json encoder_row, std::string index_path);
  ~DenseSearcher();
  // Use this encoder directory instead of the stored "dir" (a moved model); checked on first use.
  void set_encoder_dir(const std::string& dir);
  // The `n` passages closest to `query` (cosine, best first; ties by id).
  std::vector<std::pair<int64_t, double>> search(const std::string& query, size_t n);
  const nlohmann::json& encoder_row() const { return row_; }

 private:
  void load();  // with mu_ held
  SqliteDb& db_;
  nlohmann::json row_;
  std::string path_, dir_override_;
  std::mutex mu_;
  std::unique_ptr<Embedder> emb_;
  std::vector<int64_t> ids_;
  std::vector<float> vecs_;  // [ids_.size(), dim]
};

}  // namespace lathe::retrieval
