// Tokenizer behaviour beyond the reference tables: round trips, streaming decode of Korean and emoji,
// invalid UTF-8, side configs (eos lists, chat templates), batch encode, stories260K (HF dir and GGUF)
// and the tokenize/detokenize commands.
#include <nlohmann/json.hpp>

#include "lathe/core/file_io.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace {

using json = nlohmann::json;
using lathe::Tokenizer;

std::string own(const char* name) { return lathe::test::source_path(std::string("tests/data/tokenizer/") + name); }

std::vector<std::string> table_texts() {
  std::vector<std::string> out;
  std::string all = lathe::read_file(lathe::test::source_path("tests/data/tokenizer/cases.jsonl"));
  size_t pos = 0, nl;
  while ((nl = all.find('\n', pos)) != std::string::npos) {
    if (nl > pos) out.push_back(json::parse(all.substr(pos, nl - pos))["text"]);
    pos = nl + 1;
  }
  return out;
}

const char* kKoreanEmoji = "제1조(목적) 안녕하세요 👨‍👩‍👧‍👦 🏳️‍🌈 한국어 streaming 테스트 🎉";

}  // namespace

TEST(Tokenizer, ByteLevelRoundTripIsLossless) {
  // Lossless up to the NFC normalizer: texts that NFC changes (decomposed jamo) are left out, as the
  // reference's own decode shows.
  auto tok = Tokenizer::load(own("tiny_bytelevel"));
  std::string all = lathe::read_file(own("expected_tiny_bytelevel.jsonl"));
  size_t pos = 0, nl;
  int n = 0;
  while ((nl = all.find('\n', pos)) != std::string::npos) {
    json c = json::parse(all.substr(pos, nl - pos));
    pos = nl + 1;
    if (c["decoded"] != c["text"]) continue;
    std::string text = c["text"];
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
    n++;
  }
  EXPECT_GE(n, 25);
}

TEST(Tokenizer, SpmRoundTripWithoutLeadingSpace) {
  auto tok = Tokenizer::load(own("tiny_spm"));
  for (const auto& text : table_texts()) {
    if (text.empty() || text[0] == ' ' || text[0] == '<') continue;  // Strip eats one leading space
    EXPECT_EQ(tok->decode(tok->encode(text)), text) << text;
  }
}

TEST(Tokenizer, StreamDecoderHoldsPartialUtf8) {
  for (const char* name : {"tiny_bytelevel", "tiny_spm"}) {
    auto tok = Tokenizer::load(own(name));
    auto ids = tok->encode(kKoreanEmoji);
    lathe::StreamDecoder sd(*tok);
    std::string acc;
    for (int32_t id : ids) {
      std::string piece = sd.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << name << ": partial UTF-8 leaked";
      acc += piece;
    }
    acc += sd.flush();
    EXPECT_EQ(acc, tok->decode(ids)) << name;
    EXPECT_EQ(acc, kKoreanEmoji) << name;
  }
}

TEST(Tokenizer, InvalidUtf8IsReplacedAndCounted) {
  auto tok = Tokenizer::load(own("tiny_bytelevel"));
  std::string bad = "abc\xff\xfe def \xed\xa0\x80 ok\xc3";
  size_t n = 0;
  auto ids = tok->encode(bad, false, &n);
  EXPECT_EQ(Tokenizer::last_encode_replacements(), n);
  EXPECT_GE(n, 4u);
  std::string back = tok->decode(ids);
  EXPECT_NE(back.find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_EQ(back.substr(0, 3), "abc");
}

TEST(Tokenizer, SpecialTokensAndAccessors) {
  auto tok = Tokenizer::load(own("tiny_bytelevel"));
  int32_t eot = tok->token_to_id("<|endoftext|>");
  ASSERT_GE(eot, 0);
  EXPECT_TRUE(tok->is_special(eot));
  EXPECT_FALSE(tok->is_special(tok->token_to_id("<think>")));
  EXPECT_EQ(tok->token_to_id("no such token"), -1);
  EXPECT_EQ(tok->bos_id(), eot);
  EXPECT_EQ(tok->eos_token(), "<|im_end|>");
  EXPECT_EQ(tok->vocab_size(), eot + 4);
  auto ids = tok->encode("<|im_start|>hi<|im_end|>", true);
  EXPECT_EQ(ids.front(), eot);
  EXPECT_EQ(ids[1], tok->token_to_id("<|im_start|>"));
  EXPECT_EQ(tok->decode(ids, true), "hi");
}

TEST(Tokenizer, SideConfigsEosListAndChatTemplateList) {
  lathe::test::TempDir dir;
  lathe::write_file_atomic(dir / "tokenizer.json", lathe::read_file(own("tiny_bytelevel/tokenizer.json")));
  json cfg = {{"bos_token", {{"content", "<|im_start|>"}}},
              {"eos_token", "<|endoftext|>"},
              {"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}},
                                             {{"name", "default"}, {"template", "{{ messages }}"}}})}};
  lathe::write_file_atomic(dir / "tokenizer_config.json", cfg.dump());
  int32_t end = 0;
  {
    auto t = Tokenizer::load(own("tiny_bytelevel"));
    end = t->token_to_id("<|im_end|>");
  }
  // A second extra id inside the vocabulary (ids outside it are now refused, see tokenizer_validate_unit).
  json gen = {{"eos_token_id", json::array({end, 5})}};
  lathe::write_file_atomic(dir / "generation_config.json", gen.dump());
  auto tok = Tokenizer::load(dir.path);
  EXPECT_EQ(tok->bos_token(), "<|im_start|>");
  EXPECT_EQ(tok->chat_template(), "{{ messages }}");
  auto eos = tok->eos_ids();
  ASSERT_EQ(eos.size(), 3u);
  EXPECT_EQ(eos[0], tok->token_to_id("<|endoftext|>"));
  EXPECT_EQ(eos[1], end);
}

TEST(Tokenizer, EncodeBatchMatchesSequential) {
  auto tok = Tokenizer::load(own("tiny_spm"));
  auto texts = table_texts();
  for (int i = 0; i < 5; i++) texts.insert(texts.end(), texts.begin(), texts.begin() + 10);
  auto batch = tok->encode_batch(texts, true);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); i++) EXPECT_EQ(batch[i], tok->encode(texts[i], true));
}

TEST(Tokenizer, BadFilesNameTheProblem) {
  lathe::test::TempDir dir;
  lathe::write_file_atomic(dir / "tokenizer.json", std::string("{\"model\": {\"type\": \"BPE\", \"vocab\": 3}}"));
  try {
    Tokenizer::load(dir / "tokenizer.json");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("[tokenizer]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.vocab"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tokenizer::load(dir / "missing.json"), std::exception);
}

TEST(Tokenizer, Stories260KHfDirectory) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/golden_greedy.json");
  auto tok = Tokenizer::load(lathe::test::fixture_path("models/stories260K-hf"));
  EXPECT_EQ(tok->encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  json g = json::parse(lathe::read_file(lathe::test::fixture_path("models/stories260K-hf/golden_greedy.json")));
  auto ids = g["tokenizer_encode_of_greedy_text_with_bos"].get<std::vector<int32_t>>();
  std::string text = g["greedy_text_llama2c_run_c"];
  EXPECT_EQ(tok->decode(ids, true), text);
  EXPECT_EQ(tok->encode(text, true), ids);
}

TEST(Tokenizer, Stories260KGgufMatchesHf) {
  LATHE_REQUIRE_FIXTURE("models/gguf/stories260K.gguf");
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/tokenizer.json");
  auto gguf = Tokenizer::load(lathe::test::fixture_path("models/gguf/stories260K.gguf"));
  auto hf = Tokenizer::load(lathe::test::fixture_path("models/stories260K-hf"));
  EXPECT_EQ(gguf->encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  for (const auto& text : table_texts()) {
    if (text.find('<') != std::string::npos) continue;  // control-token text is split differently by design
    EXPECT_EQ(gguf->encode(text), hf->encode(text)) << text;
  }
  EXPECT_EQ(gguf->bos_id(), 1);
  EXPECT_EQ(gguf->eos_id(), 2);
}

TEST(TokenizerCli, TokenizeAndDetokenize) {
  std::string out;
  std::string tp = own("tiny_bytelevel");
  ASSERT_EQ(lathe::test::run_lathe("tokenize --tokenizer " + tp + " --text 'Hello 안녕' --json", &out), 0);
  json j = json::parse(out);
  auto tok = Tokenizer::load(tp);
  auto ids = tok->encode("Hello 안녕");
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(j["tokens"].size(), ids.size());
  ASSERT_EQ(lathe::test::run_lathe("tokenize --tokenizer " + tp + " --text 'Hello' --add-special-tokens", &out), 0);
  EXPECT_EQ(out.substr(0, out.find(' ')), std::to_string(tok->bos_id()));
  std::string list;
  for (size_t i = 0; i < ids.size(); i++) list += (i ? "," : "") + std::to_string(ids[i]);
  ASSERT_EQ(lathe::test::run_lathe("detokenize --tokenizer " + tp + " --ids " + list, &out), 0);
  EXPECT_EQ(out, "Hello 안녕\n");
  EXPECT_NE(lathe::test::run_lathe("tokenize --tokenizer /nonexistent --text x", &out, true), 0);
  EXPECT_NE(out.find("[tokenizer]"), std::string::npos) << out;
}
