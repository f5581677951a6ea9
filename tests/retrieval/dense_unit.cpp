// Dense vectors in the index (dense.h) with the tiny random golden encoders: storage, incremental
// embedding, encoder mismatch, RRF arithmetic and the hybrid ranking built from it. A random encoder
// cannot show that a paraphrase finds its passage, so these tests check that the ranking is exactly
// cosine / RRF of what the Embedder computes, not that it is semantically good.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lathe/core/file_io.h"
#include "lathe/retrieval/dense.h"
#include "lathe/retrieval/index.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace lathe::retrieval;
using lathe::test::error_of;

std::string golden_dir(const std::string& family) {
  return lathe::test::source_path("tests/data/golden/encoder/" + family);
}

void expect_has(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
}

// A small corpus: three documents, a few passages each.
struct Corpus {
  lathe::test::TempDir tmp;
  std::string docs = tmp / "docs", index = tmp / "index";
  Corpus() {
    fs::create_directories(docs);
    write("refund.md", "# Refunds\n\nThe refund policy is within 30 days of purchase.\n\n"
                       "# Store credit\n\nUnopened boxes get a full refund; opened items get store credit.\n");
    write("shipping.md", "# Shipping\n\nOrders ship within 2 days.\n\n# Returns\n\nReturn the item in its box.\n");
    write("faq.txt", "How do I get my money back? Ask the store within 30 days.\n");
  }
  void write(const std::string& name, const std::string& text) const { lathe::write_file_atomic(docs + "/" + name, text); }
  BuildReport build(const std::string& encoder) const {
    BuildOptions o;
    o.inputs = {docs};
    o.output = index;
    o.chunk_tokens = 16;
    o.overlap = 2;
    o.encoder = encoder;
    o.progress = false;
    return build_index(o);
  }
};

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += double(a[i]) * b[i];
  return s;
}

TEST(Rrf, Arithmetic) {
  auto f = rrf_fuse({{1, 2, 3}, {3, 1, 4}}, 10);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].first, 1);
  EXPECT_DOUBLE_EQ(f[0].second, 1.0 / 61 + 1.0 / 62);
  EXPECT_EQ(f[1].first, 3);
  EXPECT_DOUBLE_EQ(f[1].second, 1.0 / 63 + 1.0 / 61);
  EXPECT_EQ(f[2].first, 2);
  EXPECT_DOUBLE_EQ(f[2].second, 1.0 / 62);
  EXPECT_EQ(f[3].first, 4);
  EXPECT_DOUBLE_EQ(f[3].second, 1.0 / 63);
  auto tie = rrf_fuse({{7}, {5}}, 10);  // equal scores: ascending id
  EXPECT_EQ(tie[0].first, 5);
  EXPECT_EQ(tie[1].first, 7);
  EXPECT_EQ(rrf_fuse({{1, 2, 3}, {}}, 2).size(), 2u);
  EXPECT_DOUBLE_EQ(rrf_fuse({{9}}, 1, 0)[0].second, 1.0);  // k = 0: plain 1/rank
}

TEST(DenseIndex, VectorsAreTheEmbeddersAndRankByCosine) {
  Corpus c;
  BuildReport r = c.build(golden_dir("xlm-roberta"));
  EXPECT_GT(r.passages_total, 4u);
  EXPECT_EQ(r.passages_embedded, r.passages_total);
  EXPECT_EQ(r.vectors_total, r.passages_total);
  EXPECT_EQ(r.encoder, "xlm-roberta");
  EXPECT_EQ(r.to_json()["passages_embedded"], r.passages_total);

  Index idx(c.index);
  ASSERT_TRUE(idx.has_vectors());
  EXPECT_EQ(idx.info()["vectors"], r.passages_total);
  EXPECT_EQ(idx.info()["encoder"]["pooling"], "cls");
  auto emb = Embedder::load(golden_dir("xlm-roberta"));
  const std::string query = "how do i get my money back?";
  auto q = emb->embed({query}, true)[0];
  SearchOptions so;
  so.mode = "dense";
  so.k = 100;
  auto hits = idx.search(query, so);
  ASSERT_EQ(hits.size(), r.passages_total);  // every passage, best first
  for (size_t i = 0; i < hits.size(); i++) {
    auto p = emb->embed({hits[i].text}, false)[0];
    EXPECT_NEAR(hits[i].score, dot(q, p), 1e-5) << hits[i].source;
    if (i > 0) EXPECT_GE(hits[i - 1].score, hits[i].score);
    EXPECT_FALSE(hits[i].source.empty());
  }
}

TEST(DenseIndex, HybridIsRrfOfBm25AndDense) {
  Corpus c;
  c.build(golden_dir("bert"));
  Index idx(c.index);
  const std::string query = "refund within 30 days";
  SearchOptions o;
  o.k = kFusionDepth;
  o.mode = "bm25";
  auto lex = idx.search(query, o);
  o.mode = "dense";
  auto den = idx.search(query, o);
  ASSERT_FALSE(lex.empty());
  std::vector<std::vector<int64_t>> lists(2);
  for (auto& h : lex) lists[0].push_back(h.id);
  for (auto& h : den) lists[1].push_back(h.id);
  auto want = rrf_fuse(lists, 3);
  o.k = 3;
  for (const char* mode : {"hybrid", "auto"}) {  // auto is hybrid when the index has vectors
    o.mode = mode;
    auto hy = idx.search(query, o);
    ASSERT_EQ(hy.size(), want.size()) << mode;
    for (size_t i = 0; i < hy.size(); i++) {
      EXPECT_EQ(hy[i].id, want[i].first) << mode << " rank " << i;
      EXPECT_DOUBLE_EQ(hy[i].score, want[i].second) << mode << " rank " << i;
      EXPECT_FALSE(hy[i].text.empty());
    }
  }
}

TEST(DenseIndex, IncrementalBuildEmbedsOnlyNewPassages) {
  Corpus c;
  BuildReport first = c.build(golden_dir("bert"));
  BuildReport same = c.build(golden_dir("bert"));
  EXPECT_EQ(same.passages_embedded, 0u);
  EXPECT_EQ(same.vectors_total, first.vectors_total);
  EXPECT_TRUE(same.encoder_change.empty());

  c.write("faq.txt", "Where is my parcel? Orders ship within 2 days.\n\nCall us.\n");
  BuildReport changed = c.build(golden_dir("bert"));
  EXPECT_EQ(changed.files_changed, 1u);
  EXPECT_EQ(changed.passages_embedded, changed.passages_out);
  EXPECT_EQ(changed.vectors_total, changed.passages_total);

  fs::remove(c.docs + "/shipping.md");
  BuildReport removed = c.build(golden_dir("bert"));
  EXPECT_EQ(removed.files_removed, 1u);
  EXPECT_EQ(removed.passages_embedded, 0u);
  EXPECT_EQ(removed.vectors_total, removed.passages_total);  // no vector outlives its passage

  // Another encoder: every passage re-embedded.
  BuildReport other = c.build(golden_dir("xlm-roberta"));
  EXPECT_EQ(other.passages_embedded, other.passages_total);
  expect_has(other.encoder_change, "encoder changed from");
  Index idx(c.index);
  EXPECT_EQ(idx.info()["encoder"]["name"], "xlm-roberta");
}

TEST(DenseIndex, WithoutEncoderBm25AloneAsBefore) {
  Corpus c;
  BuildReport with = c.build(golden_dir("bert"));
  EXPECT_FALSE(with.vectors_dropped);
  BuildReport without = c.build("");
  EXPECT_TRUE(without.vectors_dropped);
  EXPECT_EQ(without.to_json()["vectors_dropped"], true);
  EXPECT_FALSE(without.to_json().contains("encoder"));
  Index idx(c.index);
  EXPECT_FALSE(idx.has_vectors());
  EXPECT_FALSE(idx.info().contains("encoder"));
  SearchOptions o;
  auto a = idx.search("refund policy", o);  // auto = bm25
  o.mode = "bm25";
  auto b = idx.search("refund policy", o);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) EXPECT_EQ(a[i].id, b[i].id);
  o.mode = "dense";
  expect_has(error_of([&] { idx.search("refund", o); }), "this index has no vectors");
  expect_has(error_of([&] { idx.set_encoder(golden_dir("bert")); }), "this index has no vectors");
}

TEST(DenseIndex, MismatchedEncoderIsRefused) {
  Corpus c;
  c.build(golden_dir("xlm-roberta"));
  SearchOptions o;
  o.mode = "dense";
  {
    Index idx(c.index);
    idx.set_encoder(golden_dir("bert"));
    std::string e = error_of([&] { idx.search("refund", o); });
    expect_has(e, "does not match the one the index was built with (xlm-roberta");
    expect_has(e, "rebuild the index with --encoder");
  }
  // The same model moved elsewhere is fine; the same shapes with other weights are not.
  lathe::test::TempDir t;
  const std::string moved = t / "moved";
  fs::copy(golden_dir("xlm-roberta"), moved, fs::copy_options::recursive);
  {
    Index idx(c.index);
    idx.set_encoder(moved);
    EXPECT_FALSE(idx.search("refund", o).empty());
  }
  std::string w = lathe::read_file(moved + "/model.safetensors");
  w[w.size() - 2] ^= 0x11;
  lathe::write_file_atomic(moved + "/model.safetensors", w);
  {
    Index idx(c.index);
    idx.set_encoder(moved);
    expect_has(error_of([&] { idx.search("refund", o); }), "does not match");
  }
  {
    Index idx(c.index);
    idx.set_encoder(t / "nowhere");
    expect_has(error_of([&] { idx.search("refund", o); }), "cannot load the encoder this index was built with");
  }
}

TEST(DenseIndex, BadEncoderFailsTheBuildAndKeepsTheIndex) {
  Corpus c;
  BuildReport ok = c.build(golden_dir("bert"));
  c.write("new.txt", "A new document about refunds.\n");
  std::string e = error_of([&] { c.build(c.tmp / "no-such-encoder"); });
  expect_has(e, "no-such-encoder");
  Index idx(c.index);  // the failed build rolled back: the previous index, vectors included
  EXPECT_EQ(idx.passages(), ok.passages_total);
  EXPECT_TRUE(idx.has_vectors());
}

}  // namespace
