#include "lathe/retrieval/dense.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "lathe/core/error.h"
#include "lathe/formats/sqlite_db.h"
#include "lathe/kernels/cpu/cpu.h"

namespace lathe::retrieval {

namespace {

void create_vectors_table(SqliteDb& db) {
  db.exec("CREATE TABLE IF NOT EXISTS passage_vectors (id INTEGER PRIMARY KEY, vec BLOB NOT NULL)");
}

// The identity fields that decide the vectors ("dir" and "name" do not: a moved model is the same).
nlohmann::json vector_settings(const nlohmann::json& row) {
  nlohmann::json s = row;
  s.erase("dir");
  s.erase("name");
  return s;
}

// The options that reproduce a stored identity's vectors.
EmbedderOptions options_of(const nlohmann::json& row) {
  EmbedderOptions o;
  o.query_prefix = row.value("query_prefix", "");
  o.passage_prefix = row.value("passage_prefix", "");
  o.pooling = row.value("pooling", "mean");
  o.normalize = row.value("normalize", true);
  o.max_tokens = row.value("max_tokens", 0);
  return o;
}

}  // namespace

bool dense_drop(SqliteDb& db) {
  // DELETE, not DROP: the build still holds statements open on this connection, and SQLite refuses
  // to drop a table then ("database table is locked"). Without the meta row the index has no vectors.
  if (!db.has_table("meta")) return false;
  const bool had = db.scalar_text("SELECT value FROM meta WHERE key = 'encoder'").has_value();
  if (db.has_table("passage_vectors")) db.exec("DELETE FROM passage_vectors");
  db.exec("DELETE FROM meta WHERE key = 'encoder'");
  return had;
}

void dense_delete_file(SqliteDb& db, const std::string& path) {
  if (!db.has_table("passage_vectors")) return;
  SqliteStmt st(db, "DELETE FROM passage_vectors WHERE id IN (SELECT id FROM passages WHERE file = ?)");
  st.bind(1, path).run();
}

DenseBuildResult dense_update(SqliteDb& db, const DenseBuildOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  DenseBuildResult r;
  auto emb = Embedder::load(o.encoder, o.embedder);
  nlohmann::ordered_json row = emb->identity();
  row["dir"] = std::filesystem::absolute(o.encoder).lexically_normal().string();
  r.encoder = row;

  auto old = db.scalar_text("SELECT value FROM meta WHERE key = 'encoder'");
  const nlohmann::json old_row = old ? nlohmann::json::parse(*old, nullptr, false) : nlohmann::json();
  if (!old || !db.has_table("passage_vectors") || vector_settings(old_row) != vector_settings(nlohmann::json(row))) {
    if (old) r.change = "encoder changed from " + *old;
    r.reembedded_all = true;
    if (db.has_table("passage_vectors")) db.exec("DELETE FROM passage_vectors");  // not DROP: see dense_drop
  }
  create_vectors_table(db);
  {
    SqliteStmt st(db, "INSERT OR REPLACE INTO meta(key, value) VALUES ('encoder', ?)");
    st.bind(1, row.dump()).run();
  }

  std::vector<int64_t> todo;
  {
    SqliteStmt st(db,
                  "SELECT p.id FROM passages p LEFT JOIN passage_vectors v ON v.id = p.id WHERE v.id IS NULL ORDER BY p.id");
    while (st.step()) todo.push_back(st.i64(0));
  }
  SqliteStmt get_text(db, "SELECT text FROM passages WHERE id = ?");
  SqliteStmt put(db, "INSERT INTO passage_vectors(id, vec) VALUES (?, ?)");
  const size_t batch = size_t(std::max(o.batch, 1));
  for (size_t i = 0; i < todo.size(); i += batch) {
    const size_t j = std::min(todo.size(), i + batch);
    std::vector<std::string> texts;
    for (size_t k = i; k < j; k++) {
      get_text.reset();
      get_text.bind(1, todo[k]);
      if (!get_text.step()) fail("index", "{}: passage {} vanished during the build", db.path(), todo[k]);
      texts.push_back(get_text.text(0));
    }
    auto vecs = emb->embed(texts, false);
    for (size_t k = i; k < j; k++) {
      put.reset();
      put.bind(1, todo[k]).bind_blob(2, vecs[k - i].data(), vecs[k - i].size() * sizeof(float)).run();
    }
    r.embedded += j - i;
    if (o.progress)
      std::fprintf(stderr, "[index] embedded %zu/%zu passages with %s\n", r.embedded, todo.size(), emb->name().c_str());
  }
  r.vectors = size_t(std::stoll(db.scalar_text("SELECT count(*) FROM passage_vectors").value_or("0")));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<std::pair<int64_t, double>> rrf_fuse(const std::vector<std::vector<int64_t>>& lists, size_t k, int rrf_k) {
  std::map<int64_t, double> score;
  for (const auto& list : lists)
    for (size_t r = 0; r < list.size(); r++) score[list[r]] += 1.0 / (rrf_k + double(r + 1));
  std::vector<std::pair<int64_t, double>> out(score.begin(), score.end());
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out.size() > k) out.resize(k);
  return out;
}

DenseSearcher::DenseSearcher(SqliteDb& db, nlohmann::json encoder_row, std::string index_path)
    : db_(db), row_(std::move(encoder_row)), path_(std::move(index_path)) {
  if (!row_.is_object() || !row_.contains("dim") || !row_["dim"].is_number_integer() || !row_.contains("dir") ||
      !row_["dir"].is_string())
    fail("index", "{}: meta 'encoder' row unreadable: {}", path_, row_.dump());
}

DenseSearcher::~DenseSearcher() = default;

void DenseSearcher::set_encoder_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  dir_override_ = dir;
}

void DenseSearcher::load() {
  const std::string dir = dir_override_.empty() ? row_["dir"].get<std::string>() : dir_override_;
  std::unique_ptr<Embedder> emb;
  try {
    emb = Embedder::load(dir, options_of(row_));
  } catch (const Error& e) {
    fail("index", "{}: cannot load the encoder this index was built with ({}): {}", path_, dir, e.what());
  }
  const nlohmann::json have = vector_settings(nlohmann::json(emb->identity())), want = vector_settings(row_);
  if (have != want)
    fail("index", "{}: the encoder {} does not match the one the index was built with ({}, fingerprint {}, dim {}); "
         "it has fingerprint {}, dim {}: rebuild the index with --encoder {} or search with the original encoder",
         path_, dir, row_.value("name", "?"), row_.value("fingerprint", "?"), row_["dim"].get<int>(),
         have.value("fingerprint", "?"), emb->dim(), dir);
  const int dim = emb->dim();
  SqliteStmt st(db_, "SELECT id, vec FROM passage_vectors ORDER BY id");
  while (st.step()) {
    std::string_view b = st.blob(1);
    if (b.size() != size_t(dim) * sizeof(float))
      fail("index", "{}: the vector of passage {} has {} bytes, expected {} (dim {})", path_, st.i64(0), b.size(),
           size_t(dim) * sizeof(float), dim);
    ids_.push_back(st.i64(0));
    const size_t at = vecs_.size();
    vecs_.resize(at + dim);
    std::memcpy(vecs_.data() + at, b.data(), b.size());
  }
  emb_ = std::move(emb);
}

std::vector<std::pair<int64_t, double>> DenseSearcher::search(const std::string& query, size_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!emb_) load();
  }
  std::vector<std::pair<int64_t, double>> out;
  if (ids_.empty() || n == 0) return out;
  const std::vector<float> q = emb_->embed({query}, true)[0];
  // scores[P] = vecs[P, dim] · q: the vectors are unit length, so this is the cosine.
  std::vector<float> scores(ids_.size());
  matmul_forward(scores.data(), q.data(), vecs_.data(), nullptr, 1, int(q.size()), int(ids_.size()));
  std::vector<size_t> order(ids_.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  const size_t m = std::min(n, order.size());
  std::partial_sort(order.begin(), order.begin() + m, order.end(), [&](size_t a, size_t b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : ids_[a] < ids_[b];
  });
  for (size_t i = 0; i < m; i++) out.emplace_back(ids_[order[i]], double(scores[order[i]]));
  return out;
}

}  // namespace lathe::retrieval
