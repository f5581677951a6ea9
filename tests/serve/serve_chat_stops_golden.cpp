// The serve layer's end-of-turn stops against real tokenizers and chat templates (fixtures), with
// the ids Hugging Face's vocabularies give those tokens. Golden: loading two 128k+ vocabularies
// takes a few seconds.
#include <gtest/gtest.h>

#include <algorithm>

#include "lathe/serve/chat_stops.h"
#include "lathe/chat/chat_template.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

using namespace lathe;
using namespace lathe::serve;

namespace {

// Chat answers end at the template's end-of-turn token: ids as Hugging Face's vocabularies number
// them (Qwen <|im_end|> 151645, Llama 3 <|eot_id|> 128009).
TEST(ServeChatStops, EndOfTurnTokensOfRealTemplates) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3");
  LATHE_REQUIRE_FIXTURE("tokenizers/llama3");
  auto stops_of = [](const std::string& dir) {
    auto tok = Tokenizer::load(dir);
    return chat_stops(*tok, chat_template_config_load(dir).source, -1);
  };
  ChatStops qwen = stops_of(test::fixture_path("tokenizers/qwen3"));
  EXPECT_TRUE(std::binary_search(qwen.ids.begin(), qwen.ids.end(), 151645));
  EXPECT_TRUE(qwen.texts.empty());
  ChatStops llama = stops_of(test::fixture_path("tokenizers/llama3"));
  EXPECT_TRUE(std::binary_search(llama.ids.begin(), llama.ids.end(), 128009));
  EXPECT_TRUE(llama.texts.empty());
  // chatml over a vocabulary without <|im_end|> (the stories260K tokenizer): a stop string instead.
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf");
  auto small = Tokenizer::load(test::fixture_path("models/stories260K-hf"));
  ChatStops chatml = chat_stops(*small, ChatTemplate::builtin("chatml").source(), 2);
  EXPECT_EQ(chatml.ids, std::vector<int32_t>{2});
  EXPECT_EQ(chatml.texts, std::vector<std::string>{"<|im_end|>"});
}

}  // namespace
