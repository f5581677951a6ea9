#include "lathe/retrieval/index.h"

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/data/collect.h"
#include "lathe/formats/sqlite_db.h"
#include "lathe/retrieval/chunker.h"
#include "lathe/retrieval/dense.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe::retrieval {

namespace fs = std::filesystem;

namespace {

constexpr int kIndexFormat = 3;  // 2: contentless FTS5; 3: + passages_vocab
constexpr size_t kMaxProblems = 50;

std::string xxh3_hex(std::string_view bytes) { return data::hex64(XXH3_64bits(bytes.data(), bytes.size())); }

// What identifies the tokenizer that measured the passages: its tokenizer.json bytes (a model
// directory or the file itself); a GGUF file by path and size (hashing gigabytes to notice a
// changed vocabulary is not worth it).
std::string tokenizer_identity(const std::string& model) {
  if (model.empty()) return "chars/3";
  std::string file = is_directory(model) ? model + "/tokenizer.json" : model;
  if (file.size() > 5 && file.substr(file.size() - 5) == ".gguf")
    return fmt::format("gguf:{}:{}", model, fs::file_size(file));
  if (!file_exists(file)) return "model:" + model;
  return "tokenizer.json:" + xxh3_hex(read_file(file));
}

void create_schema(SqliteDb& db, Analyzer an) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS docs (path TEXT PRIMARY KEY, hash TEXT NOT NULL, format TEXT NOT NULL,"
      " passages INTEGER NOT NULL, bytes INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS passages (id INTEGER PRIMARY KEY, file TEXT NOT NULL, ord INTEGER NOT NULL,"
      " text TEXT NOT NULL, line INTEGER NOT NULL, page INTEGER NOT NULL, item INTEGER NOT NULL,"
      " tokens INTEGER NOT NULL);"
      "CREATE INDEX IF NOT EXISTS passages_file ON passages(file);");
  // Contentless: the terms are not stored a second time (passages holds the text they come from);
  // a passage is removed with FTS5's 'delete' command and its terms, re-derived from that text.
  db.exec(fmt::format("CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(terms, content='', tokenize='{}')",
                      analyzer_fts_tokenizer(an)));
  // Document frequency per term, for dropping query terms that carry no weight (see search_bm25).
  db.exec("CREATE VIRTUAL TABLE IF NOT EXISTS passages_vocab USING fts5vocab(passages_fts, row)");
}

void delete_file_passages(SqliteDb& db, const std::string& path, Analyzer an) {
  dense_delete_file(db, path);
  SqliteStmt old(db, "SELECT id, text FROM passages WHERE file = ?");
  old.bind(1, path);
  SqliteStmt del(db, "INSERT INTO passages_fts(passages_fts, rowid, terms) VALUES ('delete', ?, ?)");
  while (old.step()) {
    del.reset();
    del.bind(1, old.i64(0)).bind(2, analyze_document(old.text(1), an)).run();
  }
  SqliteStmt b(db, "DELETE FROM passages WHERE file = ?");
  b.bind(1, path).run();
  SqliteStmt c(db, "DELETE FROM docs WHERE path = ?");
  c.bind(1, path).run();
}

void note_problem(BuildReport& r, std::string s) {
  if (r.problems.size() < kMaxProblems) r.problems.push_back(std::move(s));
}

}  // namespace

std::string index_db_path(const std::string& dir) {
  if (dir.size() > 7 && dir.substr(dir.size() - 7) == ".sqlite") return dir;
  return (fs::path(dir) / "index.sqlite").string();
}

nlohmann::ordered_json BuildReport::to_json() const {
  nlohmann::ordered_json j;
  j["files"] = {{"seen", files_seen},         {"added", files_added},     {"changed", files_changed},
                {"unchanged", files_unchanged}, {"removed", files_removed}, {"failed", files_failed}};
  j["units_in"] = units_in;
  j["passages_out"] = passages_out;
  j["passages_dropped"] = passages_dropped;
  j["dropped"] = dropped;
  j["passages_total"] = passages_total;
  j["bytes_read"] = bytes_read;
  j["seconds"] = seconds;
  j["mb_per_s"] = seconds > 0 ? double(bytes_read) / 1e6 / seconds : 0.0;
  j["rebuilt_all"] = rebuilt_all;
  if (!settings_change.empty()) j["settings_change"] = settings_change;
  if (!encoder.empty()) {
    j["encoder"] = encoder;
    j["passages_embedded"] = passages_embedded;
    j["vectors_total"] = vectors_total;
    j["embed_seconds"] = embed_seconds;
    j["passages_per_s"] = embed_seconds > 0 ? double(passages_embedded) / embed_seconds : 0.0;
    if (!encoder_change.empty()) j["encoder_change"] = encoder_change;
  }
  if (vectors_dropped) j["vectors_dropped"] = true;
  j["problems"] = problems;
  return j;
}

BuildReport build_index(const BuildOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  if (o.output.empty()) fail("index", "--output: an index directory is required");
  if (o.chunk_tokens < 8) fail("index", "--chunk-tokens {}: must be at least 8", o.chunk_tokens);
  if (o.overlap >= o.chunk_tokens) fail("index", "--overlap {}: must be below --chunk-tokens {}", o.overlap, o.chunk_tokens);
  Analyzer an = analyzer_from_name(o.analyzer);
  std::unique_ptr<Tokenizer> tok;
  if (!o.model.empty()) tok = Tokenizer::load(o.model);
  nlohmann::ordered_json settings = {{"format", kIndexFormat},       {"chunk_tokens", o.chunk_tokens},
                                     {"overlap", o.overlap},         {"analyzer", analyzer_name(an)},
                                     {"tokenizer", tokenizer_identity(o.model)}};
  // Files first: a pattern that matches nothing is an error before anything is written.
  std::vector<data::SkippedSource> skipped;
  std::vector<std::string> files = data::expand_inputs(o.inputs, &skipped);

  fs::create_directories(o.output);
  SqliteDb db(index_db_path(o.output), SqliteDb::Mode::ReadWrite, "index");
  // WAL with NORMAL sync keeps every build atomic (a crash loses at most the last commit, never
  // half of one) without an fsync per page.
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536");
  BuildReport r;
  SqliteTransaction tx(db);
  bool have_meta = db.has_table("meta");
  std::optional<std::string> old = have_meta ? db.scalar_text("SELECT value FROM meta WHERE key = 'settings'")
                                             : std::nullopt;
  if (!old || *old != settings.dump()) {
    r.rebuilt_all = true;
    if (old) r.settings_change = "settings changed from " + *old;
    db.exec("DROP TABLE IF EXISTS passages_vocab; DROP TABLE IF EXISTS passages_fts; DROP TABLE IF EXISTS passages;"
            " DROP TABLE IF EXISTS docs;");
    dense_drop(db);
  }
  create_schema(db, an);
  {
    SqliteStmt st(db, "INSERT OR REPLACE INTO meta(key, value) VALUES ('settings', ?)");
    st.bind(1, settings.dump()).run();
  }

  r.files_seen = files.size() + skipped.size();
  for (auto& s : skipped) {
    r.files_failed++;
    note_problem(r, s.path + ": " + s.reason + (s.detail.empty() ? "" : ": " + s.detail));
  }
  ChunkOptions co;
  co.chunk_tokens = o.chunk_tokens;
  co.overlap = o.overlap;
  co.tokenizer = tok.get();
  SqliteStmt find_doc(db, "SELECT hash FROM docs WHERE path = ?");
  SqliteStmt put_passage(db, "INSERT INTO passages(file, ord, text, line, page, item, tokens) VALUES (?,?,?,?,?,?,?)");
  SqliteStmt put_terms(db, "INSERT INTO passages_fts(rowid, terms) VALUES (?, ?)");
  SqliteStmt put_doc(db, "INSERT OR REPLACE INTO docs(path, hash, format, passages, bytes) VALUES (?,?,?,?,?)");
  std::set<std::string> present;
  for (size_t fi = 0; fi < files.size(); fi++) {
    const std::string& path = files[fi];
    present.insert(path);
    std::string bytes;
    try {
      bytes = read_file(path);
    } catch (const Error& e) {
      r.files_failed++;
      note_problem(r, e.what());
      delete_file_passages(db, path, an);
      continue;
    }
    r.bytes_read += bytes.size();
    std::string hash = xxh3_hex(bytes);
    find_doc.reset();
    find_doc.bind(1, path);
    bool known = find_doc.step();
    bool same = known && find_doc.text(0) == hash;
    if (same) {
      r.files_unchanged++;
      continue;
    }
    FileChunks fc = chunk_file(path, co);
    delete_file_passages(db, path, an);
    r.units_in += fc.counts.in;
    for (auto& [reason, n] : fc.counts.dropped) {
      r.dropped[reason] += n;
      r.passages_dropped += n;
      for (auto& ex : fc.counts.examples[reason]) note_problem(r, ex + ": " + reason);
    }
    for (auto& w : fc.warnings) note_problem(r, w);
    if (fc.failed) {
      r.files_failed++;
      continue;
    }
    (known ? r.files_changed : r.files_added)++;
    for (size_t i = 0; i < fc.passages.size(); i++) {
      const Passage& p = fc.passages[i];
      put_passage.reset();
      put_passage.bind(1, path).bind(2, int64_t(i)).bind(3, p.text).bind(4, p.source.line).bind(5, p.source.page);
      put_passage.bind(6, p.source.item).bind(7, int64_t(p.tokens)).run();
      put_terms.reset();
      put_terms.bind(1, db.last_insert_rowid()).bind(2, analyze_document(p.text, an)).run();
    }
    r.passages_out += fc.passages.size();
    put_doc.reset();
    put_doc.bind(1, path).bind(2, hash).bind(3, fc.format).bind(4, int64_t(fc.passages.size()));
    put_doc.bind(5, int64_t(bytes.size())).run();
    if (o.progress)
      std::fprintf(stderr, "[index] %zu/%zu %s: %zu passages\n", fi + 1, files.size(), path.c_str(),
                   fc.passages.size());
  }
  // Files indexed before and not among the inputs now are gone from the index too.
  std::vector<std::string> gone;
  {
    SqliteStmt st(db, "SELECT path FROM docs");
    while (st.step())
      if (!present.count(st.text(0))) gone.push_back(st.text(0));
  }
  for (auto& g : gone) delete_file_passages(db, g, an);
  r.files_removed = gone.size();
  // Dense vectors for the passages that have none yet (dense.h); without --encoder, none at all.
  if (!o.encoder.empty()) {
    DenseBuildOptions d;
    d.encoder = o.encoder;
    d.progress = o.progress;
    if (o.query_prefix != "auto") d.embedder.query_prefix = o.query_prefix;
    if (o.passage_prefix != "auto") d.embedder.passage_prefix = o.passage_prefix;
    d.embedder.pooling = o.pooling;
    DenseBuildResult dr = dense_update(db, d);
    r.passages_embedded = dr.embedded;
    r.vectors_total = dr.vectors;
    r.embed_seconds = dr.seconds;
    r.encoder = dr.encoder.value("name", "");
    r.encoder_change = dr.change;
  } else {
    r.vectors_dropped = dense_drop(db);
  }
  r.passages_total = size_t(std::stoll(db.scalar_text("SELECT count(*) FROM passages").value_or("0")));
  tx.commit();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::ordered_json Hit::to_json() const {
  nlohmann::ordered_json j{{"text", text}, {"source", source}, {"score", score}, {"file", file}};
  if (line > 0) j["line"] = line;
  if (page > 0) j["page"] = page;
  if (item > 0) j["item"] = item;
  j["id"] = id;
  return j;
}

Index::Index(const std::string& dir) : dir_(dir) {
  std::string path = index_db_path(dir);
  if (!file_exists(path)) fail("index", "{}: no index here (build one with `lathe index build --output {}`)", dir, dir);
  db_ = std::make_unique<SqliteDb>(path, SqliteDb::Mode::ReadOnly, "index");
  if (!db_->has_table("meta") || !db_->has_table("passages_fts"))
    fail("index", "{}: not a lathe index (tables meta/passages_fts missing)", path);
  auto s = db_->scalar_text("SELECT value FROM meta WHERE key = 'settings'");
  if (!s) fail("index", "{}: meta has no settings row", path);
  nlohmann::json j = nlohmann::json::parse(*s, nullptr, false);
  if (!j.is_object() || !j.contains("analyzer") || !j["analyzer"].is_string())
    fail("index", "{}: meta settings unreadable: {}", path, *s);
  if (j.value("format", 0) != kIndexFormat)
    fail("index", "{}: index format {} (this lathe reads {}): rebuild it", path, j.value("format", 0), kIndexFormat);
  analyzer_ = analyzer_from_name(j["analyzer"].get<std::string>());
  n_passages_ = passages();
  if (auto enc = db_->scalar_text("SELECT value FROM meta WHERE key = 'encoder'"); enc && db_->has_table("passage_vectors"))
    dense_ = std::make_unique<DenseSearcher>(*db_, nlohmann::json::parse(*enc, nullptr, false), path);
}

void Index::set_encoder(const std::string& dir) {
  if (!dense_) fail("index", "{}: --encoder {}: this index has no vectors (built without --encoder)", dir_, dir);
  dense_->set_encoder_dir(dir);
}

Index::~Index() = default;

size_t Index::passages() const {
  return size_t(std::stoll(db_->scalar_text("SELECT count(*) FROM passages").value_or("0")));
}

// A passage row (id, text, file, line, page, item) as a hit with `score`.
static Hit hit_of_row(const SqliteStmt& st, double score) {
  Hit h;
  h.id = st.i64(0);
  h.text = st.text(1);
  h.file = st.text(2);
  h.line = st.i64(3);
  h.page = st.i64(4);
  h.item = st.i64(5);
  h.score = score;
  data::Source src;
  src.file = h.file;
  src.line = h.line;
  src.page = h.page;
  src.item = h.item;
  h.source = src.where();
  return h;
}

std::vector<Hit> Index::search_bm25(const std::string& query, int k) const {
  std::vector<Hit> hits;
  std::vector<std::string> terms = query_terms(query, analyzer_);
  // BM25's idf, log((N - n + 0.5) / (n + 0.5)), is clamped to ~0 in FTS5 for a term in more than
  // half of the passages: such a term (a Korean particle, a common bigram) adds nothing to any score
  // but costs a walk over its long posting list. It is dropped, unless every term is that common.
  // Terms FTS5 would stem (ASCII words) are looked up as they are; a miss keeps the term.
  if (terms.size() > 1) {
    const double n_passages = double(n_passages_);
    SqliteStmt df(*db_, "SELECT doc FROM passages_vocab WHERE term = ?");
    std::vector<std::string> kept;
    for (auto& t : terms) {
      df.reset();
      df.bind(1, t);
      if (!(df.step() && double(df.i64(0)) > n_passages / 2)) kept.push_back(t);
    }
    if (!kept.empty()) terms = std::move(kept);
  }
  std::string expr = fts_match_expression(terms);
  if (expr.empty() || k <= 0) return hits;
  SqliteStmt st(*db_,
                // Ranked inside FTS5 first; only the k winners are joined with their text (joining
                // before the sort read every matching passage's text: 4x slower on 40k passages).
                "SELECT p.id, p.text, p.file, p.line, p.page, p.item, -top.rank FROM"
                " (SELECT rowid, rank FROM passages_fts WHERE passages_fts MATCH ? ORDER BY rank, rowid LIMIT ?) AS top"
                " JOIN passages p ON p.id = top.rowid ORDER BY top.rank, p.id");
  st.bind(1, expr).bind(2, int64_t(k));
  while (st.step()) hits.push_back(hit_of_row(st, st.f64(6)));
  return hits;
}

Hit Index::hit_by_id(int64_t id, double score) const {
  SqliteStmt st(*db_, "SELECT id, text, file, line, page, item FROM passages WHERE id = ?");
  st.bind(1, id);
  if (!st.step()) fail("index", "{}: passage {} has a vector but no row (rebuild the index)", dir_, id);
  return hit_of_row(st, score);
}

std::vector<Hit> Index::search(const std::string& query, const SearchOptions& o) const {
  const std::string mode = o.mode == "auto" ? (dense_ ? "hybrid" : "bm25") : o.mode;
  if (mode == "bm25") return search_bm25(query, o.k);
  if (mode != "dense" && mode != "hybrid")
    fail("index", "search mode '{}': unknown (auto, bm25, dense, hybrid)", o.mode);
  if (!dense_)
    fail("index", "search mode '{}': this index has no vectors (built without --encoder); use bm25", o.mode);
  std::vector<Hit> hits;
  if (o.k <= 0) return hits;
  if (mode == "dense") {
    for (auto& [id, cos] : dense_->search(query, size_t(o.k))) hits.push_back(hit_by_id(id, cos));
    return hits;
  }
  // Hybrid: reciprocal rank fusion of the two rankings (dense.h); a hit's score is its fused score.
  const int depth = std::max(o.k, kFusionDepth);
  std::vector<Hit> lexical = search_bm25(query, depth);
  std::vector<std::vector<int64_t>> lists(2);
  for (auto& h : lexical) lists[0].push_back(h.id);
  for (auto& [id, cos] : dense_->search(query, size_t(depth))) lists[1].push_back(id);
  for (auto& [fused_id, fused] : rrf_fuse(lists, size_t(o.k))) {
    const int64_t id = fused_id;  // a lambda may not capture a structured binding (clang 14)
    auto it = std::find_if(lexical.begin(), lexical.end(), [&](const Hit& h) { return h.id == id; });
    if (it != lexical.end()) {
      hits.push_back(*it);
      hits.back().score = fused;
    } else {
      hits.push_back(hit_by_id(id, fused));
    }
  }
  return hits;
}

nlohmann::ordered_json Index::info() const {
  nlohmann::ordered_json j;
  j["index"] = dir_;
  j["settings"] = nlohmann::ordered_json::parse(db_->scalar_text("SELECT value FROM meta WHERE key = 'settings'").value());
  j["passages"] = passages();
  if (dense_) {
    j["encoder"] = dense_->encoder_row();
    j["vectors"] = std::stoll(db_->scalar_text("SELECT count(*) FROM passage_vectors").value_or("0"));
  }
  j["files"] = nlohmann::ordered_json::array();
  SqliteStmt st(*db_, "SELECT path, format, passages, bytes, hash FROM docs ORDER BY path");
  while (st.step())
    j["files"].push_back({{"path", st.text(0)}, {"format", st.text(1)}, {"passages", st.i64(2)},
                          {"bytes", st.i64(3)}, {"hash", st.text(4)}});
  return j;
}

}  // namespace lathe::retrieval
