// tokenizer.json without nlohmann's DOM for the two big fields (issue #22): Qwen3's file is 11 MB, of
// which model.vocab (151k {token: id}) and model.merges (151k pairs) are nearly all; building them as
// nlohmann values (a std::map node and a heap string per token) and freeing them cost ~0.2 CPU-seconds
// of every `lathe` run that loads the tokenizer. simdjson parses the file; vocab and merges go straight
// into the vectors make_bpe takes; everything else becomes the nlohmann value json::parse would have
// built, so the loader's field code runs unchanged on it.
//
// Exactness: a field is taken from the file only when reading it through the DOM would succeed and give
// the same vectors (ids integers in range and unique, keys unique, merges "a b" or [a, b] strings);
// anything else is converted to nlohmann as it is, and the DOM code decides (and words the error) as
// before. A document simdjson rejects, or one that could differ (escaped surrogates, whose lone halves
// the two parsers may treat differently), goes to json::parse whole. The one difference left: "-0"
// becomes an unsigned 0 instead of a signed one, which every tokenizer field reads as the same 0.
// tests/tokenizer/tokenizer_load_fast_unit.cpp compares both paths on every fixture and on hostile edits.
#include <cstring>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "lathe/tokenizer/loader_internal.h"

#ifdef LATHE_HAVE_SIMDJSON
#include <simdjson.h>
#endif

namespace lathe {

#ifdef LATHE_HAVE_SIMDJSON
namespace {

using json = nlohmann::json;
namespace dom = simdjson::dom;

// The value json::parse builds for e: the same types (non-negative integers unsigned, negative signed,
// the rest double), and for a repeated key the last value, as nlohmann's parser keeps.
json to_nlohmann(dom::element e) {
  switch (e.type()) {
    case dom::element_type::ARRAY: {
      json a = json::array();
      for (dom::element x : dom::array(e)) a.push_back(to_nlohmann(x));
      return a;
    }
    case dom::element_type::OBJECT: {
      json o = json::object();
      for (dom::key_value_pair f : dom::object(e)) o[std::string(f.key)] = to_nlohmann(f.value);
      return o;
    }
    case dom::element_type::INT64: {
      const int64_t v = int64_t(e);
      return v < 0 ? json(v) : json(uint64_t(v));
    }
    case dom::element_type::UINT64: return json(uint64_t(e));
    case dom::element_type::DOUBLE: return json(double(e));
    case dom::element_type::STRING: return json(std::string(std::string_view(e)));
    case dom::element_type::BOOL: return json(bool(e));
    case dom::element_type::NULL_VALUE: break;
  }
  return json(nullptr);
}

bool has_repeated_key(dom::object o) {
  std::unordered_set<std::string_view> seen;
  for (dom::key_value_pair f : o)
    if (!seen.insert(f.key).second) return true;
  return false;
}

// model.vocab as parse_vocab_object reads it, when that succeeds; false otherwise (the DOM path decides).
bool read_vocab(dom::element v, std::vector<std::string>& vocab) {
  dom::object o;
  if (v.get(o) || o.size() == 0) return false;
  std::vector<std::string_view> by_id;
  std::unordered_set<std::string_view> keys;
  keys.reserve(o.size());
  for (dom::key_value_pair f : o) {
    int64_t id;
    if (!f.value.is_int64() || (id = int64_t(f.value)) < 0 || id > tok::kMaxTokenId) return false;
    if (size_t(id) >= by_id.size()) by_id.resize(size_t(id) + 1, std::string_view(nullptr, 0));
    if (by_id[size_t(id)].data() != nullptr) return false;  // an id used twice
    if (!keys.insert(f.key).second) return false;            // a key given twice (the DOM keeps the last)
    by_id[size_t(id)] = f.key;
  }
  vocab.assign(by_id.size(), std::string());
  for (size_t i = 0; i < by_id.size(); i++)
    if (by_id[i].data()) vocab[i].assign(by_id[i]);
  return true;
}

// model.merges as make_bpe_from_json reads them, when it would accept every entry.
bool read_merges(dom::array a, std::vector<std::pair<std::string, std::string>>& merges) {
  merges.reserve(a.size());
  for (dom::element m : a) {
    std::string_view s, x, y;
    dom::array pair;
    if (!m.get(s)) {
      const size_t sp = s.find(' ');
      if (sp == std::string_view::npos) return false;
      merges.emplace_back(std::string(s.substr(0, sp)), std::string(s.substr(sp + 1)));
    } else if (!m.get(pair) && pair.size() == 2 && !pair.at(0).get(x) && !pair.at(1).get(y)) {
      merges.emplace_back(std::string(x), std::string(y));
    } else {
      return false;
    }
  }
  return true;
}

// A \u escape of a UTF-16 surrogate anywhere in the text.
bool has_surrogate_escape(std::string_view t) {
  for (size_t i = t.find('\\'); i != std::string_view::npos && i + 2 < t.size(); i = t.find('\\', i + 2)) {
    if (t[i + 1] != 'u') continue;
    const char c = t[i + 2];
    if ((c == 'd' || c == 'D') && i + 3 < t.size() && std::strchr("89abcdefABCDEF", t[i + 3]) && t[i + 3] != 0)
      return true;
  }
  return false;
}

// The model object: vocab and merges into `parts` where they can be, the rest converted.
json read_model(dom::object model, TokenizerJsonParts& parts) {
  std::string_view type = "BPE";
  dom::element t;
  const bool bpe = !has_repeated_key(model) &&
                   (model.at_key("type").get(t) || (!t.get(type) && type == "BPE"));
  dom::element vocab_e, merges_e;
  dom::array merges_a;
  if (bpe && !model.at_key("vocab").get(vocab_e) && read_vocab(vocab_e, parts.vocab)) {
    // No merges field, or one that is not an array, reads as no merges in make_bpe_from_json too.
    const bool has_merges = !model.at_key("merges").get(merges_e) && !merges_e.get(merges_a);
    parts.bpe = !has_merges || read_merges(merges_a, parts.merges);
  }
  if (!parts.bpe) {
    parts.vocab.clear();
    parts.merges.clear();
  }
  json out = json::object();
  for (dom::key_value_pair f : model) {
    if (parts.bpe && (f.key == "vocab" || f.key == "merges")) continue;
    out[std::string(f.key)] = to_nlohmann(f.value);
  }
  return out;
}

}  // namespace

bool read_tokenizer_json_fast(std::string_view text, nlohmann::json& rest, TokenizerJsonParts& parts) {
  parts = TokenizerJsonParts();
  if (has_surrogate_escape(text)) return false;
  dom::parser parser;
  dom::element doc;
  if (parser.parse(text.data(), text.size()).get(doc)) return false;
  dom::object top;
  if (doc.get(top) || has_repeated_key(top)) {
    rest = to_nlohmann(doc);
    return true;
  }
  rest = json::object();
  for (dom::key_value_pair f : top) {
    dom::object model;
    if (f.key == "model" && !f.value.get(model)) rest["model"] = read_model(model, parts);
    else rest[std::string(f.key)] = to_nlohmann(f.value);
  }
  return true;
}

bool tokenizer_json_fast_available() { return true; }

#else

bool tokenizer_json_fast_available() { return false; }

bool read_tokenizer_json_fast(std::string_view, nlohmann::json&, TokenizerJsonParts& parts) {
  parts = TokenizerJsonParts();
  return false;
}

#endif

}  // namespace lathe
