// Unigram, WordPiece and the Precompiled charsmap on small hand-made files: the segmentation rules that
// decide ids (best total score, fused unknown runs, byte fallback, greedy longest match, the word-length
// cap, the charsmap lookup), and bad files: each error names the file and the field.
#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using json = nlohmann::json;
using ::lathe::test::error_of;
using Ids = std::vector<int32_t>;

const char* kOrigin = "unit/tokenizer.json";

json unigram() {
  return json::parse(R"({"model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false, "vocab": [
    ["<unk>", 0.0], ["a", -1.0], ["b", -1.0], ["ab", -1.5], ["abc", -5.0], ["c", -2.0], ["<0x78>", -3.0]]}})");
}

json wordpiece() {
  return json::parse(R"({"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
    "max_input_chars_per_word": 12, "vocab": {"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "a": 4, "##a": 5,
    "가": 6, "##나": 7}}})");
}

std::unique_ptr<Tokenizer> load(const json& j) { return Tokenizer::from_json(j.dump(), kOrigin); }

// The error of loading `j`; it must name the file and contain `field`.
std::string load_error(const json& j, const std::string& field) {
  std::string e = error_of([&] { load(j); });
  EXPECT_NE(e.find(kOrigin), std::string::npos) << "error does not name the file: " << e;
  EXPECT_NE(e.find(field), std::string::npos) << "error does not name '" << field << "': " << e;
  return e;
}

// ---- Unigram ----

TEST(Unigram, BestTotalScore) {
  auto t = load(unigram());
  EXPECT_EQ(t->encode("abc"), (Ids{3, 5}));  // ab + c = -3.5 beats abc = -5 and a + b + c = -4
  EXPECT_EQ(t->encode("ba"), (Ids{2, 1}));
  EXPECT_EQ(t->encode(""), Ids{});
  EXPECT_EQ(t->unk_id(), 0);
}

TEST(Unigram, UnknownCharactersFuse) {
  auto t = load(unigram());
  EXPECT_EQ(t->encode("yzab"), (Ids{0, 3}));      // "yz" is one unknown piece
  EXPECT_EQ(t->encode("y가ab z"), (Ids{0, 3, 0}));  // no pre-tokenizer: the space is unknown too, fused with z
}

TEST(Unigram, ByteFallbackOnlyWhenEveryByteHasAPiece) {
  json j = unigram();
  j["model"]["byte_fallback"] = true;
  auto t = load(j);
  EXPECT_EQ(t->encode("xab"), (Ids{6, 3}));  // <0x78>
  EXPECT_EQ(t->encode("xyab"), (Ids{0, 3}));  // "xy" fused, and <0x79> is missing: unk
}

TEST(Unigram, BadFiles) {
  json j = unigram();
  j["model"].erase("vocab");
  load_error(j, "vocab");
  j = unigram();
  j["model"]["vocab"] = json::object({{"a", 1}});
  load_error(j, "model.vocab must be a list of [piece, score]");
  j["model"]["vocab"] = json::array();
  load_error(j, "model.vocab is empty");
  j = unigram();
  j["model"]["vocab"][2] = json::array({"b"});
  load_error(j, "model.vocab[2] must be [piece, score]");
  j["model"]["vocab"][2] = json::array({"b", "-1.0"});
  load_error(j, "model.vocab[2] ('b'): score must be a number");
  j["model"]["vocab"][2] = json::array({"a", -1.0});
  load_error(j, "piece 'a' appears at ids 1 and 2");
  j["model"]["vocab"][2] = json::array({"", -1.0});
  load_error(j, "model.vocab[2]: empty piece");
  j = unigram();
  j["model"]["unk_id"] = 7;
  load_error(j, "model.unk_id 7 is outside the vocabulary of 7 pieces");
  j["model"]["unk_id"] = -1;
  load_error(j, "model.unk_id -1 is outside");
  j["model"]["unk_id"] = 1.5;
  load_error(j, "model.unk_id is 1.5 (a float");
  j["model"]["unk_id"] = nullptr;
  load_error(j, "model.unk_id is missing");
  j = unigram();
  j["model"]["byte_fallback"] = "yes";
  load_error(j, "model.byte_fallback must be true or false");
  j = unigram();
  j["model"]["type"] = "WordLevel";
  load_error(j, "model.type 'WordLevel' is not supported");
}

// ---- WordPiece ----

TEST(WordPiece, GreedyLongestMatch) {
  auto t = load(wordpiece());
  EXPECT_EQ(t->encode("unaffable"), (Ids{1, 2, 3}));
  EXPECT_EQ(t->encode("aaa"), (Ids{4, 5, 5}));
  EXPECT_EQ(t->encode("가나나"), (Ids{6, 7, 7}));
  EXPECT_EQ(t->encode("unaffablex"), Ids{0});  // one uncovered part makes the whole word unknown
  EXPECT_EQ(t->unk_id(), 0);
}

TEST(WordPiece, WordLongerThanTheCapIsUnknown) {
  auto t = load(wordpiece());
  EXPECT_EQ(t->encode("aaaaaaaaaaaa"), (Ids{4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}));  // 12 characters: the cap
  EXPECT_EQ(t->encode("aaaaaaaaaaaaa"), Ids{0});  // 13 characters > 12
  std::string hangul = "가";
  for (int i = 0; i < 11; i++) hangul += "나";
  EXPECT_EQ(t->encode(hangul), (Ids{6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}));  // 12 characters (36 bytes)
}

TEST(WordPiece, DecoderJoinsPiecesAndCleansUp) {
  json j = wordpiece();
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  j["model"]["vocab"]["."] = 8;
  j["model"]["vocab"]["do"] = 9;
  j["model"]["vocab"]["not"] = 10;
  auto t = load(j);
  EXPECT_EQ(t->decode(Ids{1, 2, 3, 8, 9, 10}), "unaffable. do not");  // " do not" spans two tokens: kept
  j["decoder"]["cleanup"] = false;
  EXPECT_EQ(load(j)->decode(Ids{1, 2, 3, 8}), "unaffable .");
}

TEST(WordPiece, BadFiles) {
  json j = wordpiece();
  j["model"]["vocab"] = json::array({"[UNK]"});
  load_error(j, "model.vocab must be an object");
  j["model"]["vocab"] = json::object();
  load_error(j, "model.vocab is empty");
  j = wordpiece();
  j["model"]["vocab"]["b"] = 1;
  load_error(j, "id 1 is used by both");
  j = wordpiece();
  j["model"]["unk_token"] = "<unk>";
  load_error(j, "model.unk_token '<unk>' is not in model.vocab");
  j = wordpiece();
  j["model"]["max_input_chars_per_word"] = -1;
  load_error(j, "model.max_input_chars_per_word must be a non-negative integer");
  j["model"]["max_input_chars_per_word"] = "100";
  load_error(j, "model.max_input_chars_per_word");
  j = wordpiece();
  j["model"]["continuing_subword_prefix"] = 2;
  load_error(j, "model.continuing_subword_prefix must be a string");
  j = wordpiece();
  j["normalizer"] = {{"type", "BertNormalizer"}, {"strip_accents", "yes"}};
  load_error(j, "BertNormalizer: 'strip_accents' must be true, false or null");
}

TEST(BertNormalizer, StripAccentsFollowsLowercaseWhenNull) {
  json j = wordpiece();
  j["model"]["vocab"]["e"] = 8;
  j["model"]["vocab"]["é"] = 9;
  j["model"]["vocab"]["E"] = 10;
  j["model"]["vocab"]["É"] = 11;
  j["normalizer"] = {{"type", "BertNormalizer"}, {"lowercase", true}, {"strip_accents", nullptr}};
  EXPECT_EQ(load(j)->encode("É"), Ids{8});
  j["normalizer"]["lowercase"] = false;
  EXPECT_EQ(load(j)->encode("É"), Ids{11});
  j["normalizer"]["strip_accents"] = true;
  EXPECT_EQ(load(j)->encode("É"), Ids{10});
}

TEST(StripNormalizer, ReadsHfFieldNames) {  // tokenizer.json writes strip_left / strip_right
  json j = wordpiece();
  j["normalizer"] = {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}};
  EXPECT_EQ(load(j)->encode(" a "), Ids{0});  // " a" is not a piece
  j["normalizer"]["strip_left"] = true;
  EXPECT_EQ(load(j)->encode(" a "), Ids{4});
}

// ---- Precompiled ----

std::string base64(const std::string& raw) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < raw.size(); i += 3) {
    uint32_t n = uint32_t(uint8_t(raw[i])) << 16;
    if (i + 1 < raw.size()) n |= uint32_t(uint8_t(raw[i + 1])) << 8;
    if (i + 2 < raw.size()) n |= uint8_t(raw[i + 2]);
    out += k[n >> 18];
    out += k[(n >> 12) & 63];
    out += i + 1 < raw.size() ? k[(n >> 6) & 63] : '=';
    out += i + 2 < raw.size() ? k[n & 63] : '=';
  }
  return out;
}

// A charsmap with one rule, "a" -> "b": root at unit 0 with its children at 256 ^ label; "a" at 256 ^ 0x61,
// its value unit at 512. `units` and `value` let a test break it.
std::string charsmap(size_t units = 768, uint32_t value = 0, uint32_t declared = 0) {
  std::vector<uint32_t> u(units, 0);
  auto set = [&](size_t pos, uint32_t v) {
    if (pos < u.size()) u[pos] = v;
  };
  set(0, 256u << 10);                                        // offset 0 ^ 256
  set(256 ^ 0x61, 0x61 | (1u << 8) | ((0x161u ^ 512) << 10));  // label 'a', has a value, base 512
  set(512, (1u << 31) | value);
  uint32_t bytes = declared ? declared : uint32_t(4 * u.size());
  std::string raw(reinterpret_cast<const char*>(&bytes), 4);
  raw.append(reinterpret_cast<const char*>(u.data()), 4 * u.size());
  raw.append("b\0", 2);
  return base64(raw);
}

json with_charsmap(const std::string& b64) {
  json j = unigram();
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", b64}};
  return j;
}

TEST(Precompiled, RewritesByTheTrie) {
  auto t = load(with_charsmap(charsmap()));
  EXPECT_EQ(t->encode("aac"), (Ids{2, 2, 5}));  // "bbc"
  EXPECT_EQ(t->encode("a\xCC\x81"), (Ids{2}));   // a + U+0301 is one cluster: its prefix "a" replaces it whole
}

TEST(Precompiled, BadCharsmaps) {
  load_error(with_charsmap(""), "precompiled_charsmap is shorter than its 4-byte trie size");
  load_error(with_charsmap("@@@@"), "precompiled_charsmap is not base64");
  load_error(with_charsmap("QUJD="), "precompiled_charsmap is not base64");
  load_error(with_charsmap(charsmap(768, 0, 4 * 800)), "declares a trie of 3200 bytes");
  load_error(with_charsmap(charsmap(768, 0, 6)), "declares a trie of 6 bytes");
  load_error(with_charsmap(charsmap(600)), "whose children lie past its 600 units");
  load_error(with_charsmap(charsmap(768, 3)), "has a value 3 (unit 512) outside its 2 bytes");
  json j = unigram();
  j["normalizer"] = {{"type", "Precompiled"}};
  load_error(j, "precompiled_charsmap must be a base64 string");
}

}  // namespace
}  // namespace lathe
