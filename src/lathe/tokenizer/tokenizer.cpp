// The encode/decode pipeline (HF order: added tokens -> normalizer -> pre-tokenizer -> model ->
// post-processor), the per-thread word cache, the public Tokenizer methods and StreamDecoder.
#include "lathe/tokenizer/tokenizer.h"

#include <algorithm>
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/word_cache.h"

namespace lathe {
namespace tok {
namespace {

bool word_boundary_ok(std::string_view text, size_t b, size_t e) {
  if (b > 0) {
    size_t k = utf8_char_start(text, b - 1);
    int len;
    int32_t cp = utf8_decode(text, k, &len);
    if (cp >= 0 && is_alnum_or_underscore(uint32_t(cp))) return false;
  }
  if (e < text.size()) {
    int len;
    int32_t cp = utf8_decode(text, e, &len);
    if (cp >= 0 && is_alnum_or_underscore(uint32_t(cp))) return false;
  }
  return true;
}

size_t skip_ws_forward(std::string_view s, size_t i) {
  while (i < s.size()) {
    int len;
    int32_t cp = utf8_decode(s, i, &len);
    if (cp < 0 || !is_whitespace(uint32_t(cp))) break;
    i += len;
  }
  return i;
}

size_t skip_ws_backward(std::string_view s, size_t lo, size_t i) {
  while (i > lo) {
    size_t k = utf8_char_start(s, i - 1, lo);
    int len;
    int32_t cp = utf8_decode(s, k, &len);
    if (cp < 0 || !is_whitespace(uint32_t(cp))) break;
    i = k;
  }
  return i;
}

}  // namespace

WordCache& thread_word_cache(uint64_t model_instance, bool raw_keys) {
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<WordCache>>> caches;
  const uint64_t key = model_instance * 2 + (raw_keys ? 1 : 0);
  for (auto& c : caches)
    if (c.first == key) return *c.second;
  if (caches.size() >= 4) caches.erase(caches.begin());
  caches.emplace_back(key, std::make_unique<WordCache>());
  return *caches.back().second;
}

void Pipeline::index_added_tokens() {
  raw_index = AddedIndex{};
  norm_index = AddedIndex{};
  raw_index.buckets.assign(256, {});
  norm_index.buckets.assign(256, {});
  added_by_id.clear();
  for (size_t i = 0; i < added.size(); i++) {
    added_by_id[added[i].id] = i;
    if (added[i].content.empty()) continue;
    auto& idx = added[i].normalized ? norm_index : raw_index;
    const uint8_t first = uint8_t(added[i].content[0]);
    const size_t hl = std::min<size_t>(added[i].content.size(), 8);
    uint64_t head = 0;
    std::memcpy(&head, added[i].content.data(), hl);
    idx.buckets[first].push_back({uint32_t(i), head, hl == 8 ? ~0ull : (1ull << (8 * hl)) - 1});
    idx.single_first = !idx.any || idx.single_first == first ? first : -1;
    idx.any = true;
    idx.starts[first] = true;
  }
  marks_exact = true;
  for (const AddedToken& t : added)
    if (!t.normalized && !t.content.empty() &&
        (t.single_word || !valid_utf8(t.content) || t.content.find(kUtf8Replacement) != std::string::npos))
      marks_exact = false;
  for (auto* idx : {&raw_index, &norm_index})
    for (auto& bucket : idx->buckets)
      std::stable_sort(bucket.begin(), bucket.end(), [&](const AddedIndex::Cand& a, const AddedIndex::Cand& b) {
        return added[a.k].content.size() > added[b.k].content.size();
      });
  fast = FastPath{};
  // Other normalizers stay on the general path: the fused path takes a scan's refusal for invalid
  // input, which NFC of valid text never causes and a normalizer built from a file's rewrite rules
  // (or one that lowercases, strips, ...) is not worth proving.
  if (pre_tokenizer && model && (!normalizer || normalizer->is_nfc()) &&
      pre_tokenizer->fused_byte_level(&fast.regex, &fast.prefix_space)) {
    fast.on = true;
    fast.nfc = normalizer != nullptr;
    fast.scan_raw = !norm_index.any && fast.regex >= 0 && !fast.prefix_space;
    // With scan_raw every byte of a text is in a raw added token or in a scanned segment (the
    // whitespace lstrip/rstrip swallow is valid), so a text the fused path accepts is valid UTF-8 when
    // the tokens are.
    fast.checks_utf8 = fast.scan_raw;
    for (const AddedToken& t : added)
      if (!t.normalized && !valid_utf8(t.content)) fast.checks_utf8 = false;
  }
}

// Splits `text` at added tokens of one index (leftmost-longest), calling on_text(view) for the text
// between them and on_token(id, content_end, end) for each token (the byte its content ends at, and
// where the text after it resumes). lstrip/rstrip swallow the whitespace beside a token.
template <class OnText, class OnToken>
static void split_added(const Pipeline& p, const Pipeline::AddedIndex& index, std::string_view text,
                        OnText&& on_text, OnToken&& on_token) {
  if (!index.any) {
    on_text(text);
    return;
  }
  size_t seg_start = 0;
  for (size_t i = 0; i < text.size();) {
    // Skip to the next byte some token starts with: no token can match before it.
    if (index.single_first >= 0) {
      const void* q = std::memchr(text.data() + i, index.single_first, text.size() - i);
      if (!q) break;
      i = size_t(static_cast<const char*>(q) - text.data());
    } else {
      while (i < text.size() && !index.starts[uint8_t(text[i])]) i++;
      if (i == text.size()) break;
    }
    const auto& bucket = index.buckets[uint8_t(text[i])];
    const AddedToken* hit = nullptr;
    const bool eight = text.size() - i >= 8;
    uint64_t at = 0;
    if (eight) std::memcpy(&at, text.data() + i, 8);
    for (const auto& c : bucket) {
      if (eight && (at & c.mask) != c.head) continue;
      const AddedToken& t = p.added[c.k];
      if (text.size() - i >= t.content.size() && std::memcmp(text.data() + i, t.content.data(), t.content.size()) == 0 &&
          (!t.single_word || word_boundary_ok(text, i, i + t.content.size()))) {
        hit = &t;
        break;
      }
    }
    if (!hit) {
      i++;
      continue;
    }
    size_t b = i, e = i + hit->content.size();
    if (hit->lstrip) b = skip_ws_backward(text, seg_start, b);
    if (hit->rstrip) e = skip_ws_forward(text, e);
    if (b > seg_start) on_text(text.substr(seg_start, b - seg_start));
    on_token(hit->id, i + hit->content.size(), e);
    seg_start = i = e;
  }
  if (seg_start < text.size()) on_text(text.substr(seg_start));
}

// Stands for the added token before a resumed text (encode's after_token); never emitted.
constexpr int32_t kResumeSentinel = INT32_MAX;

void Pipeline::encode(std::string_view text, std::vector<int32_t>& out, std::vector<EncodeMarks::Mark>* marks,
                      bool after_token) const {
  // after_token matters to Metaspace only, never on the fused (byte-level) path.
  if (!fast.on || !encode_fused(text, out, marks, false)) encode_general(text, out, marks, after_token);
}

void Pipeline::encode_general(std::string_view text, std::vector<int32_t>& out,
                              std::vector<EncodeMarks::Mark>* marks, bool after_token) const {
  thread_local Pieces pieces;
  thread_local std::string seg;
  pieces.buf.clear();
  pieces.spans.clear();
  if (after_token) pieces.spans.push_back({0, 0, kResumeSentinel});
  // marks: the raw token's ordinal among the id spans, so the model loop below can count the tokens up
  // to it (the pre-tokenizer keeps id spans, in order, but renumbers the spans between them).
  thread_local std::vector<size_t> mark_ordinal;
  mark_ordinal.clear();
  size_t id_spans = 0;
  if (marks) marks->clear();
  split_added(
      *this, raw_index, text,
      [&](std::string_view raw) {
        std::string_view norm = raw;
        if (normalizer) {
          seg.assign(raw);
          normalizer->apply(seg);
          norm = seg;
        }
        split_added(
            *this, norm_index, norm,
            [&](std::string_view t) {
              pieces.spans.push_back({uint32_t(pieces.buf.size()), uint32_t(t.size()), -1});
              pieces.buf.append(t);
            },
            [&](int32_t id, size_t, size_t) {
              pieces.spans.push_back({0, 0, id});
              id_spans++;
            });
      },
      [&](int32_t id, size_t content_end, size_t end) {
        pieces.spans.push_back({0, 0, id});
        if (marks) {
          marks->push_back({content_end, end, 0});
          mark_ordinal.push_back(id_spans);
        }
        id_spans++;
      });
  if (pre_tokenizer) pre_tokenizer->apply(pieces);

  WordCache& cache = thread_word_cache(model->instance, false);
  const size_t base = out.size();
  size_t id_seen = 0, next_mark = 0;
  for (const Span& s : pieces.spans) {
    if (s.id >= 0) {
      if (s.id == kResumeSentinel) continue;
      out.push_back(s.id);
      if (marks && next_mark < mark_ordinal.size() && mark_ordinal[next_mark] == id_seen)
        (*marks)[next_mark++].tokens = out.size() - base;
      id_seen++;
      continue;
    }
    std::string_view word(pieces.buf.data() + s.off, s.len);
    if (word.size() > WordCache::kMaxWordBytes) {
      model->tokenize(word, out);
      continue;
    }
    const uint64_t h = word_hash(word.data(), word.size());
    uint32_t n;
    if (const int32_t* ids = cache.find(word, h, &n)) {
      out.insert(out.end(), ids, ids + n);
      continue;
    }
    size_t start = out.size();
    model->tokenize(word, out);
    cache.insert(word, h, out.data() + start, out.size() - start);
  }
}

// The general path's pieces for the byte-level pipelines, without building them: each segment the
// added tokens leave is normalized, prefixed with a space where ByteLevel add_prefix_space asks, and
// split by the scanner into matches and the gaps between them (Isolated keeps both); each word is
// looked up by its bytes as they are before the ByteLevel mapping, a bijection, so a cached word is
// neither mapped nor copied.
bool Pipeline::encode_fused(std::string_view text, std::vector<int32_t>& out, std::vector<EncodeMarks::Mark>* marks,
                            bool unchecked) const {
  if (!fast.on || (unchecked && !fast.checks_utf8)) return false;
  thread_local std::string seg, prefixed, mapped;
  thread_local std::vector<std::pair<uint32_t, uint32_t>> ranges;
  WordCache& cache = thread_word_cache(model->instance, true);
  const ByteLevelMap& map = ByteLevelMap::get();
  const size_t base = out.size();
  if (marks) marks->clear();
  bool invalid = false;

  auto word = [&](const char* p, size_t n) {
    const std::string_view w(p, n);
    const bool cacheable = n <= WordCache::kMaxWordBytes;
    uint64_t h = 0;
    if (cacheable) {
      h = word_hash(p, n);
      uint32_t k;
      if (const int32_t* ids = cache.find(w, h, &k)) {
        for (uint32_t j = 0; j < k; j++) out.push_back(ids[j]);  // 1-3 ids: no memmove call
        return;
      }
    }
    mapped.resize(2 * n);
    char* d = mapped.data();
    for (size_t i = 0; i < n; i++) {
      const uint8_t b = uint8_t(p[i]);
      d[0] = map.byte_utf8[b][0];
      d[1] = map.byte_utf8[b][1];
      d += map.byte_len[b];
    }
    mapped.resize(size_t(d - mapped.data()));
    const size_t start = out.size();
    model->tokenize(mapped, out);
    if (cacheable) cache.insert(w, h, out.data() + start, out.size() - start);
  };
  // The words of piece t: the scanner's matches and the gaps between them (Isolated keeps both).
  auto split_words = [&](std::string_view t) {
    uint32_t prev = 0;
    for (auto [b, e] : ranges) {
      if (b > prev) word(t.data() + prev, b - prev);
      word(t.data() + b, e - b);
      prev = e;
    }
    if (prev < t.size()) word(t.data() + prev, t.size() - prev);
  };
  // One normalized piece (possibly empty: ByteLevel's prefix space still makes " " of it).
  auto words = [&](std::string_view t) {
    if (fast.prefix_space && (t.empty() || t[0] != ' ')) {
      prefixed.assign(1, ' ');
      prefixed.append(t);
      t = prefixed;
    }
    if (t.empty()) return;
    if (fast.regex < 0) {
      word(t.data(), t.size());
      return;
    }
    if (!fast_find_all(fast.regex, t, ranges)) {  // not valid UTF-8: normalized text always is
      invalid = true;
      return;
    }
    split_words(t);
  };
  split_added(
      *this, raw_index, text,
      [&](std::string_view raw) {
        if (invalid) return;
        if (fast.scan_raw) {
          // The segment is scanned as it is: the scan checks it is UTF-8, and under NFC its quick
          // check says whether the segment was its own normalization already.
          bool nfc_quick = false;
          if (!fast_find_all(fast.regex, raw, ranges, &nfc_quick)) {
            invalid = true;
            return;
          }
          if (!fast.nfc || nfc_quick) {
            split_words(raw);
            return;
          }
        }
        std::string_view norm = raw;
        if (fast.nfc && (fast.scan_raw || !nfc_quick_yes(raw))) {  // scan_raw: its quick check failed
          seg.assign(raw);
          normalizer->apply(seg);
          norm = seg;
        }
        split_added(*this, norm_index, norm, words, [&](int32_t id, size_t, size_t) { out.push_back(id); });
      },
      [&](int32_t id, size_t content_end, size_t end) {
        out.push_back(id);
        if (marks) marks->push_back({content_end, end, out.size() - base});
      });
  if (invalid) {
    out.resize(base);
    if (marks) marks->clear();
    return false;
  }
  return true;
}

std::string Pipeline::decode(const int32_t* ids, size_t n, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(n);
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    auto it = added_by_id.find(id);
    if (it != added_by_id.end()) {
      const AddedToken& t = added[it->second];
      if (skip_special && t.special) continue;
      tokens.push_back(t.content);
    } else if (id >= 0 && size_t(id) < model->vocab.size()) {
      tokens.push_back(model->vocab[size_t(id)]);
    }
  }
  if (!decoder) {
    std::string s;
    for (size_t i = 0; i < tokens.size(); i++) s += (i ? " " : "") + tokens[i];
    return s;
  }
  decoder->apply(tokens);
  std::string s;
  for (auto& t : tokens) s += t;
  return s;
}

}  // namespace tok

// ---- Tokenizer ----

namespace {
thread_local size_t g_last_replacements = 0;
}

Tokenizer::Tokenizer() : p_(std::make_unique<tok::Pipeline>()) {}
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  size_t r = 0;
  return encode(text, add_special_tokens, &r);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens, size_t* replacements) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out.insert(out.end(), p_->prefix_ids.begin(), p_->prefix_ids.end());
  size_t bad = 0;
  // The fused path checks the text is UTF-8 as it scans; otherwise (or when it is not UTF-8) check
  // first, and copy only when something must be replaced.
  if (!p_->encode_fused(text, out, nullptr, true)) {
    thread_local std::string clean;
    bad = utf8_sanitize(text, clean);
    p_->encode(bad ? std::string_view(clean) : text, out);
  }
  *replacements = bad;
  g_last_replacements = bad;
  if (add_special_tokens) out.insert(out.end(), p_->suffix_ids.begin(), p_->suffix_ids.end());
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, EncodeMarks& marks) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  // Marks are byte offsets into `text`; a sanitized copy has other offsets, so it goes without them.
  size_t bad = 0;
  if (p_->encode_fused(text, out, p_->marks_exact ? &marks.marks : nullptr, true)) {
    marks.exact = p_->marks_exact;
  } else {
    thread_local std::string clean;
    bad = utf8_sanitize(text, clean);
    marks.exact = bad == 0 && p_->marks_exact;
    p_->encode(bad ? std::string_view(clean) : text, out, marks.exact ? &marks.marks : nullptr);
  }
  g_last_replacements = bad;
  if (!marks.exact) marks.marks.clear();
  return out;
}

static size_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  size_t k = 0;
  while (k < a.size() && k < b.size() && a[k] == b[k]) k++;
  return k;
}

size_t Tokenizer::tokens_reproduced(std::string_view text, size_t b, std::span<const int32_t> full) const {
  if (b == 0) return 0;
  if (b >= text.size()) return full.size();
  return common_prefix(encode(text.substr(0, b), false), full);
}

// Why encoding one segment is enough (marks.exact): the added tokens are matched left to right, each
// match decided by the bytes it covers (no single_word look at the next character), so the prefix
// text[0, b) matches the same tokens as the text wherever the token's content ends at or before c, the
// start of the character b falls in (the cut character becomes U+FFFD, which no such token holds).
// The first token the prefix loses ends after c; what the prefix holds after the last kept token,
// [resume, b), is one more segment, matched and encoded on its own exactly as encode does it (segments
// are normalized and pre-tokenized independently; only Metaspace "first" looks at where a piece stands,
// hence after_token). The prefix's encoding is then full[0, tokens) followed by that segment's.
size_t Tokenizer::tokens_reproduced(std::string_view text, size_t b, std::span<const int32_t> full,
                                    const EncodeMarks& marks) const {
  if (b == 0) return 0;
  if (b >= text.size()) return full.size();
  if (!marks.exact) return tokens_reproduced(text, b, full);
  const size_t c = utf8_char_start(text, b);
  // The last mark whose token the prefix keeps whole.
  auto it = std::upper_bound(marks.marks.begin(), marks.marks.end(), c,
                             [](size_t x, const EncodeMarks::Mark& m) { return x < m.content_end; });
  size_t start = 0, kept = 0;
  if (it != marks.marks.begin()) {
    --it;
    start = std::min(it->resume, c);
    kept = it->tokens;
  }
  if (kept > full.size()) return tokens_reproduced(text, b, full);  // not this text's marks
  thread_local std::vector<int32_t> tail;
  tail.clear();
  std::string_view rest = text.substr(start, b - start);
  thread_local std::string clean;
  if (c < b) {  // a cut character: replaced as encode would replace it
    utf8_sanitize(rest, clean);
    rest = clean;
  }
  p_->encode(rest, tail, nullptr, start > 0);
  return kept + common_prefix(tail, full.subspan(kept));
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(std::span<const std::string> texts,
                                                          bool add_special_tokens) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  const long n = long(texts.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (long i = 0; i < n; i++) out[size_t(i)] = encode(texts[size_t(i)], add_special_tokens);
  return out;
}

size_t Tokenizer::last_encode_replacements() { return g_last_replacements; }

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return p_->decode(ids.data(), ids.size(), skip_special_tokens);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  auto it = p_->added_by_id.find(id);
  if (it != p_->added_by_id.end()) return p_->added[it->second].content;
  if (id >= 0 && size_t(id) < p_->model->vocab.size()) return p_->model->vocab[size_t(id)];
  return "";
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  for (const auto& t : p_->added)
    if (t.content == token) return t.id;
  return p_->model->find(token);
}

int Tokenizer::vocab_size() const { return p_->vocab_size; }

std::vector<int32_t> Tokenizer::eos_ids() const {
  std::vector<int32_t> r;
  if (eos_id_ >= 0) r.push_back(eos_id_);
  for (int32_t id : extra_eos_)
    if (id >= 0 && std::find(r.begin(), r.end(), id) == r.end()) r.push_back(id);
  return r;
}

bool Tokenizer::is_special(int32_t id) const {
  auto it = p_->added_by_id.find(id);
  return it != p_->added_by_id.end() && p_->added[it->second].special;
}

// ---- StreamDecoder (HF's DecodeStream algorithm) ----

static bool ends_with_replacement(const std::string& s) {
  return s.ends_with(kUtf8Replacement);
}

std::string StreamDecoder::push(int32_t id) {
  if (prefix_text_.empty() && !ids_.empty()) {
    std::string p = tok_.decode(ids_, skip_special_);
    if (!ends_with_replacement(p)) {
      prefix_text_ = std::move(p);
      prefix_index_ = ids_.size();
    }
  }
  ids_.push_back(id);
  std::string s = tok_.decode(ids_, skip_special_);
  if (s.size() <= prefix_text_.size() || ends_with_replacement(s)) return "";
  std::string fresh = s.compare(0, prefix_text_.size(), prefix_text_) == 0 ? s.substr(prefix_text_.size()) : s;
  // Keep the ids after the old prefix as context for the next step.
  size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + long(prefix_index_));
  prefix_text_ = tok_.decode(ids_, skip_special_);
  prefix_index_ = new_prefix_index;
  return fresh;
}

std::string StreamDecoder::flush() {
  std::string s = tok_.decode(ids_, skip_special_);
  std::string rest;
  if (s.size() > prefix_text_.size() && s.compare(0, prefix_text_.size(), prefix_text_) == 0)
    rest = s.substr(prefix_text_.size());
  ids_.clear();
  prefix_text_.clear();
  prefix_index_ = 0;
  return rest;
}

}  // namespace lathe
