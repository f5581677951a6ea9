// model Unigram of tokenizer.json (XLM-R, T5, mBART, multilingual-e5): each word is split into the pieces
// whose scores (log probabilities) add up to the most, by Viterbi over the byte positions, as HF tokenizers'
// Unigram (its "optimized" encoder, itself SentencePiece's). The details that decide ids:
//   - every vocabulary entry, special pieces and <0xNN> included, can match the text;
//   - a character that no single-character piece covers gets the unknown piece, scored min(score) - 10;
//   - candidates are tried by start position, then by length; a later one wins only with a strictly higher
//     total, so ties keep the earliest;
//   - adjacent unknown pieces fuse into one; a fused run that is not itself a piece becomes unk_id, or with
//     byte_fallback its bytes' <0xNN> pieces when all of them exist.
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/json_int.h"
#include "lathe/tokenizer/pipeline.h"

namespace lathe::tok {
namespace {

using json = nlohmann::json;

constexpr double kUnkPenalty = 10.0;  // HF's K_UNK_PENALTY

class Unigram : public Model {
 public:
  std::vector<double> scores;
  int32_t unk_id = -1;
  bool byte_fallback = false;
  double unk_score = 0;
  int32_t byte_ids[256];

  // Byte trie over all pieces: edges (node << 8 | byte) -> child, node_token[node] = id or -1.
  std::unordered_map<uint64_t, uint32_t> edges;
  std::vector<int32_t> node_token{-1};

  void build_trie() {
    for (size_t id = 0; id < vocab.size(); id++) {
      uint32_t node = 0;
      for (char c : vocab[id]) {
        auto [it, fresh] = edges.emplace(uint64_t(node) << 8 | uint8_t(c), uint32_t(node_token.size()));
        if (fresh) node_token.push_back(-1);
        node = it->second;
      }
      node_token[node] = int32_t(id);
    }
  }

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    const size_t n = word.size();
    if (n == 0) return;
    struct Best {
      double score;
      int32_t start;  // -1: no path ends here yet
      int32_t id;
    };
    thread_local std::vector<Best> best;
    best.assign(n + 1, {0.0, -1, 0});
    auto offer = [&](size_t end, size_t start, int32_t id, double score) {
      Best& b = best[end];
      if (b.start < 0 || score > b.score) b = {score, int32_t(start), id};
    };
    for (size_t start = 0; start < n;) {
      const double here = best[start].score;
      const size_t mblen = std::min<size_t>(utf8_lead_len(uint8_t(word[start])), n - start);
      bool single = false;
      uint32_t node = 0;
      for (size_t k = start; k < n; k++) {
        auto it = edges.find(uint64_t(node) << 8 | uint8_t(word[k]));
        if (it == edges.end()) break;
        node = it->second;
        int32_t id = node_token[node];
        if (id < 0) continue;
        offer(k + 1, start, id, scores[size_t(id)] + here);
        single = single || k + 1 - start == mblen;
      }
      if (!single) offer(start + mblen, start, unk_id, unk_score + here);
      start += mblen;
    }
    // Back from the end: (start, end) of each piece, unknown runs fused.
    thread_local std::vector<std::pair<uint32_t, uint32_t>> pieces;
    pieces.clear();
    bool in_unk = false;
    for (size_t end = n; end > 0;) {
      const Best& b = best[end];
      size_t start = size_t(b.start);
      if (b.id == unk_id && in_unk) {
        pieces.back().first = uint32_t(start);
      } else {
        pieces.emplace_back(uint32_t(start), uint32_t(end));
      }
      in_unk = b.id == unk_id;
      end = start;
    }
    for (size_t k = pieces.size(); k-- > 0;) {
      std::string_view s = word.substr(pieces[k].first, pieces[k].second - pieces[k].first);
      int32_t id = find(s);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      bool bytes = byte_fallback;
      for (char c : s) bytes = bytes && byte_ids[uint8_t(c)] >= 0;
      if (bytes) {
        for (char c : s) out.push_back(byte_ids[uint8_t(c)]);
      } else {
        out.push_back(unk_id);
      }
    }
  }
};

}  // namespace

std::unique_ptr<Model> make_unigram_from_json(const json& j, const std::string& origin, int32_t* unk_out) {
  const json& v = j.at("vocab");
  if (!v.is_array()) fail("tokenizer", "{}: model.vocab must be a list of [piece, score] for Unigram", origin);
  if (v.empty()) fail("tokenizer", "{}: model.vocab is empty", origin);
  if (int64_t(v.size()) - 1 > kMaxTokenId)
    fail("tokenizer", "{}: model.vocab has {} pieces, more than the supported {}", origin, v.size(), kMaxTokenId + 1);
  auto m = std::make_unique<Unigram>();
  std::vector<std::string> pieces;
  pieces.reserve(v.size());
  m->scores.reserve(v.size());
  TokenMap seen;
  for (size_t i = 0; i < v.size(); i++) {
    const json& e = v[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string())
      fail("tokenizer", "{}: model.vocab[{}] must be [piece, score]", origin, i);
    if (!e[1].is_number())
      fail("tokenizer", "{}: model.vocab[{}] ('{}'): score must be a number, not {}", origin, i,
           e[0].get<std::string>(), e[1].type_name());
    std::string piece = e[0].get<std::string>();
    if (piece.empty()) fail("tokenizer", "{}: model.vocab[{}]: empty piece", origin, i);
    if (!valid_utf8(piece)) fail("tokenizer", "{}: model.vocab[{}]: piece is not valid UTF-8", origin, i);
    auto [it, fresh] = seen.emplace(piece, int32_t(i));
    if (!fresh)  // HF would keep the last id for lookups and the first in the trie: refuse the ambiguity
      fail("tokenizer", "{}: model.vocab: piece '{}' appears at ids {} and {}", origin, piece, it->second, i);
    pieces.push_back(std::move(piece));
    m->scores.push_back(e[1].get<double>());
  }
  const json uj = j.value("unk_id", json());
  if (uj.is_null()) {
    // HF loads such a model but fails on the first character outside the vocabulary; with no way to
    // report that from the middle of a batch, lathe refuses the file.
    fail("tokenizer", "{}: model.unk_id is missing (Unigram needs it for characters outside the vocabulary)", origin);
  }
  int64_t unk;
  if (!json_to_int64(uj, &unk)) fail("tokenizer", "{}: model.unk_id is {}", origin, json_int_problem(uj));
  if (unk < 0 || unk >= int64_t(pieces.size()))
    fail("tokenizer", "{}: model.unk_id {} is outside the vocabulary of {} pieces", origin, unk, pieces.size());
  const json bf = j.value("byte_fallback", json(false));
  if (!bf.is_boolean()) fail("tokenizer", "{}: model.byte_fallback must be true or false", origin);

  m->unk_id = int32_t(unk);
  m->byte_fallback = bf.get<bool>();
  double min_score = m->scores[0];
  for (double s : m->scores) min_score = std::min(min_score, s);
  m->unk_score = min_score - kUnkPenalty;
  set_model_vocab(*m, std::move(pieces));
  fill_byte_ids(*m, m->byte_ids);
  m->build_trie();
  *unk_out = m->unk_id;
  return m;
}

}  // namespace lathe::tok
