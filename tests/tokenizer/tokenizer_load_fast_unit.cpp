// Loading tokenizer.json through the fast reader (tokenizer/loader_fast.cpp: simdjson, BPE vocab and
// merges straight into vectors) against the nlohmann DOM path it short-cuts: on every tokenizer file of
// the fixtures and the project, and on hostile edits of one (ids that are floats, strings, negative, too
// large or shared, repeated keys, odd merges, other model types, surrogate escapes, a BOM, trailing
// bytes, deep nesting), both paths must load the same tokenizer (vocabulary, its map, added tokens,
// special ids, the encodings of random texts) or fail with the same message.
#include <random>

#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/tokenizer/loader_internal.h"
#include "lathe/tokenizer/pipeline.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using json = nlohmann::json;

struct Loaded {
  std::unique_ptr<Tokenizer> tok;
  std::string error;
  bool fast = false;
};

Loaded load(const std::string& text, bool allow_fast) {
  Loaded l;
  try {
    l.tok = tokenizer_from_json(text, "t.json", allow_fast, &l.fast);
  } catch (const std::exception& e) {
    l.error = e.what();
  }
  return l;
}

// Random texts from common pieces and the tokenizer's own tokens (as text where they are printable).
std::vector<std::string> texts_for(const Tokenizer& t, uint32_t seed) {
  static const std::vector<std::string> pieces = {
      "Hello", " world", "  ", "\n", "\n\n", "\t", "안녕하세요", " 한국어", "🎉", "e\xCC\x81", "123", "'s", " the",
      "don't", "中文", "<|", "assistant\n", " of", "x", "A", "...", "\xC2\xA0", "ab", " ab", "abc", "ing"};
  std::vector<std::string> added;
  for (const auto& a : t.pipeline().added) added.push_back(a.content);
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int k = 0; k < 300; k++) {
    std::string s;
    const int n = 1 + int(rng() % 16);
    for (int i = 0; i < n; i++) {
      if (!added.empty() && rng() % 8 == 0) s += added[rng() % added.size()];
      else s += pieces[rng() % pieces.size()];
    }
    out.push_back(s);
  }
  return out;
}

void expect_same(const Tokenizer& a, const Tokenizer& b, const std::string& what) {
  const tok::Pipeline& p = a.pipeline();
  const tok::Pipeline& q = b.pipeline();
  ASSERT_EQ(p.model->vocab, q.model->vocab) << what;
  ASSERT_TRUE(p.model->token_ids == q.model->token_ids) << what;
  ASSERT_EQ(a.vocab_size(), b.vocab_size()) << what;
  ASSERT_EQ(a.bos_id(), b.bos_id()) << what;
  ASSERT_EQ(a.eos_id(), b.eos_id()) << what;
  ASSERT_EQ(a.pad_id(), b.pad_id()) << what;
  ASSERT_EQ(a.unk_id(), b.unk_id()) << what;
  ASSERT_EQ(p.added.size(), q.added.size()) << what;
  for (size_t i = 0; i < p.added.size(); i++) {
    const auto &x = p.added[i], &y = q.added[i];
    ASSERT_TRUE(x.content == y.content && x.id == y.id && x.special == y.special && x.lstrip == y.lstrip &&
                x.rstrip == y.rstrip && x.normalized == y.normalized && x.single_word == y.single_word)
        << what << ": added token " << i;
  }
  for (const std::string& s : texts_for(a, 7)) {
    ASSERT_EQ(a.encode(s), b.encode(s)) << what << ": " << s;
    ASSERT_EQ(a.encode(s, true), b.encode(s, true)) << what << ": " << s;
  }
}

// Both paths on `text`: the same tokenizer or the same error. Returns whether the fast reader took
// vocab and merges.
bool compare(const std::string& text, const std::string& what) {
  Loaded fast = load(text, true), dom = load(text, false);
  EXPECT_FALSE(dom.fast) << what;
  EXPECT_EQ(fast.error, dom.error) << what;
  EXPECT_EQ(bool(fast.tok), bool(dom.tok)) << what;
  if (fast.tok && dom.tok) expect_same(*fast.tok, *dom.tok, what);
  return fast.fast;
}

TEST(TokenizerLoadFast, EveryTokenizerFileLoadsTheSame) {
  if (!tokenizer_json_fast_available()) GTEST_SKIP() << "built without simdjson: only the DOM path exists";
  std::vector<std::pair<std::string, bool>> files;  // path, whether it is BPE (the fast reader must take it)
  for (const char* d : {"tiny_bytelevel", "tiny_spm", "tiny_unigram", "tiny_unigram_bf", "tiny_wordpiece",
                        "tiny_wordpiece_cased"})
    files.emplace_back(test::source_path(std::string("tests/data/tokenizer/") + d + "/tokenizer.json"), false);
  files.emplace_back(test::source_path("tests/data/golden/encoder/bert/tokenizer.json"), false);
  files.emplace_back(test::source_path("tests/data/golden/encoder/xlm-roberta/tokenizer.json"), false);
  for (const char* f : {"tokenizers/gpt2/tokenizer.json", "tokenizers/llama3/tokenizer.json",
                        "tokenizers/qwen3/tokenizer.json", "tokenizers/mistral-v0.1/tokenizer.json"})
    if (test::has_fixture(f)) files.emplace_back(test::fixture_path(f), true);
  files[0].second = true;  // tiny_bytelevel is BPE
  int fast = 0;
  for (const auto& [path, bpe] : files) {
    const std::string text = read_file(path);
    const json j = json::parse(text);
    const bool is_bpe = j["model"].value("type", "BPE") == "BPE";
    const bool took = compare(text, path);
    EXPECT_EQ(took, is_bpe) << path;
    if (bpe) {
      EXPECT_TRUE(took) << path;
    }
    fast += took;
  }
  EXPECT_GE(fast, 1);
}

// Hostile edits of the tiny byte-level BPE file: each loads the same way through both paths.
TEST(TokenizerLoadFast, HostileEditsLoadOrFailTheSame) {
  if (!tokenizer_json_fast_available()) GTEST_SKIP() << "built without simdjson: only the DOM path exists";
  const std::string base = read_file(test::source_path("tests/data/tokenizer/tiny_bytelevel/tokenizer.json"));
  const json j0 = json::parse(base);
  ASSERT_TRUE(compare(base, "base"));
  const std::string k0 = j0["model"]["vocab"].begin().key();  // a vocabulary token
  auto edit = [&](const std::function<void(json&)>& f) {
    json j = j0;
    f(j);
    return j.dump();
  };
  auto in_model = [&](const std::string& key, const std::string& value) {  // raw text: repeated keys
    std::string s = base;
    const size_t at = s.find("\"model\"");
    const size_t brace = s.find('{', at);
    return s.insert(brace + 1, "\"" + key + "\": " + value + ",");
  };
  auto in_vocab = [&](const std::string& key, const std::string& value) {
    std::string s = base;
    const size_t brace = s.find('{', s.find("\"vocab\""));
    return s.insert(brace + 1, json(key).dump() + ": " + value + ",");
  };
  std::string k_zero;  // the token with id 0
  for (auto it = j0["model"]["vocab"].begin(); it != j0["model"]["vocab"].end(); ++it)
    if (it.value() == 0) k_zero = it.key();
  ASSERT_FALSE(k_zero.empty());
  struct Case {
    std::string name, text;
    int fast;  // whether the fast reader must take vocab and merges (-1: either; simdjson decides)
  };
  std::vector<Case> cases = {
      {"id float", edit([&](json& j) { j["model"]["vocab"][k0] = 3.0; }), false},
      {"id 1e300", edit([&](json& j) { j["model"]["vocab"][k0] = 1e300; }), false},
      {"id string", edit([&](json& j) { j["model"]["vocab"][k0] = "3"; }), false},
      {"id negative", edit([&](json& j) { j["model"]["vocab"][k0] = -1; }), false},
      {"id too large", edit([&](json& j) { j["model"]["vocab"][k0] = tok::kMaxTokenId + 1; }), false},
      {"id uint64", edit([&](json& j) { j["model"]["vocab"][k0] = uint64_t(1) << 63; }), false},
      {"id null", edit([&](json& j) { j["model"]["vocab"][k0] = nullptr; }), false},
      {"id shared", edit([&](json& j) { j["model"]["vocab"]["zz-new"] = j["model"]["vocab"][k0]; }), false},
      {"id beyond", edit([&](json& j) { j["model"]["vocab"]["zz-new"] = 4000; }), true},
      {"vocab empty", edit([&](json& j) { j["model"]["vocab"] = json::object(); }), false},
      {"vocab array", edit([&](json& j) { j["model"]["vocab"] = json::array({"a"}); }), false},
      {"vocab absent", edit([&](json& j) { j["model"].erase("vocab"); }), false},
      {"merges as strings", edit([&](json& j) {
         json m = json::array();
         for (auto& p : j["model"]["merges"]) m.push_back(p[0].get<std::string>() + " " + p[1].get<std::string>());
         j["model"]["merges"] = m;
       }),
       true},
      {"merge without space", edit([&](json& j) { j["model"]["merges"][3] = "abc"; }), false},
      {"merge of three", edit([&](json& j) { j["model"]["merges"][3] = json::array({"a", "b", "c"}); }), false},
      {"merge of a number", edit([&](json& j) { j["model"]["merges"][3] = json::array({"a", 5}); }), false},
      {"merge unknown", edit([&](json& j) { j["model"]["merges"][3] = json::array({"a", "zzzz"}); }), true},
      {"merges absent", edit([&](json& j) { j["model"].erase("merges"); }), true},
      {"merges object", edit([&](json& j) { j["model"]["merges"] = json::object(); }), true},
      {"merges empty", edit([&](json& j) { j["model"]["merges"] = json::array(); }), true},
      {"type absent", edit([&](json& j) { j["model"].erase("type"); }), true},
      {"type WordLevel", edit([&](json& j) { j["model"]["type"] = "WordLevel"; }), false},
      {"type number", edit([&](json& j) { j["model"]["type"] = 5; }), false},
      {"model not object", edit([&](json& j) { j["model"] = 5; }), false},
      {"model absent", edit([&](json& j) { j.erase("model"); }), false},
      {"top array", "[" + base + "]", false},
      {"repeated key, other id", in_model("vocab", "{\"" + k0 + "\": 1}"), false},
      {"repeated type", in_model("type", "\"Unigram\""), false},
      {"repeated token, other id", in_vocab(k0, "4000"), false},
      {"repeated token, same id", in_vocab(k0, j0["model"]["vocab"][k0].dump()), false},
      {"repeated model", "{\"model\": {\"vocab\": {\"a\": 0}}," + base.substr(base.find('{') + 1), false},
      {"escapes in keys", edit([&](json& j) { j["model"]["vocab"]["a\n\"\\\x01\u00e9"] = 4001; }), true},
      {"surrogate pair", edit([&](json& j) { j["model"]["vocab"]["😀"] = 4002; }), true},
      {"float elsewhere", edit([&](json& j) { j["model"]["dropout"] = 0.1; }), true},
      {"unk token", edit([&](json& j) { j["model"]["unk_token"] = k0; }), true},
      {"BOM", "\xEF\xBB\xBF" + base, -1},
      {"trailing bytes", base + " x", false},
      {"trailing space", base + " \n", true},
      {"truncated", base.substr(0, base.size() / 2), false},
      {"invalid UTF-8", edit([&](json& j) { j["model"]["vocab"]["zz-new"] = 4000; }), false},
      {"deep nesting", edit([&](json& j) { j["version"] = "DEEP"; }), -1},
  };
  // Texts json::dump cannot write.
  auto replace = [](std::string s, const std::string& from, const std::string& to) {
    const size_t at = s.find(from);
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
  };
  for (Case& c : cases) {
    if (c.name == "invalid UTF-8") c.text = replace(c.text, "zz-new", "zz\xC3(");
    if (c.name == "deep nesting") c.text = replace(c.text, "\"DEEP\"", std::string(2000, '[') + std::string(2000, ']'));
    if (c.name == "escapes in keys") c.text = replace(c.text, "\\u0001", "\\u0001\\u00e9\\/");
  }
  cases.push_back({"lone surrogate", replace(edit([&](json& j) { j["model"]["vocab"]["zz-new"] = 4000; }),
                                             "zz-new", "\\ud800"), false});
  cases.push_back({"lone low surrogate", replace(edit([&](json& j) { j["model"]["vocab"]["zz-new"] = 4000; }),
                                                 "zz-new", "x\\uDC00"), false});
  cases.push_back({"escaped pair", replace(edit([&](json& j) { j["model"]["vocab"]["zz-new"] = 4000; }),
                                           "zz-new", "\\ud83d\\ude00"), false});
  cases.push_back({"backslash then u", replace(edit([&](json& j) { j["model"]["vocab"]["zz-new"] = 4000; }),
                                               "zz-new", "\\\\ud800"), true});
  cases.push_back({"minus zero", replace(edit([&](json& j) { j["model"]["vocab"][k_zero] = 123456; }), "123456",
                                         "-0"), true});
  for (const Case& c : cases) {
    const bool took = compare(c.text, c.name);
    if (c.fast >= 0) {
      EXPECT_EQ(took, c.fast == 1) << c.name;
    }
  }
}

}  // namespace
}  // namespace lathe
