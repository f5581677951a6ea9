// The request-field caps of limits.h in the protocol parser, the JSON nesting pre-scan, and the
// --ctx check against the model and memory (serve_context_length).
#include <gtest/gtest.h>

#include "lathe/core/error.h"
#include "lathe/serve/limits.h"
#include "lathe/serve/openai_protocol.h"
#include "lathe/serve/server_impl.h"

using nlohmann::json;
using namespace lathe;
using namespace lathe::serve;

namespace {

// The param of the ApiError a body raises ("accepted" when it parses).
std::string param_of(const std::string& body, bool chat) {
  try {
    parse_completion_request(body, chat);
    return "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body.substr(0, 200);
    return e.param;
  }
}

std::string code_of(const std::function<void()>& f) {
  try {
    f();
    return "accepted";
  } catch (const ApiError& e) {
    return e.code;
  }
}

TEST(ServeLimitsUnit, JsonNestingPrescan) {
  EXPECT_FALSE(json_nesting_exceeds("{\"a\":[[1]]}", 3));
  EXPECT_TRUE(json_nesting_exceeds("{\"a\":[[[1]]]}", 3));
  // Brackets inside strings, escaped quotes included, do not count.
  EXPECT_FALSE(json_nesting_exceeds(R"({"a":"[[[[[[\"[[[[["})", 1));
  EXPECT_FALSE(json_nesting_exceeds("[][][][][][][]", 1));
  std::string at_cap = std::string(kMaxRequestJsonDepth, '[') + std::string(kMaxRequestJsonDepth, ']');
  EXPECT_FALSE(json_nesting_exceeds(at_cap, kMaxRequestJsonDepth));
  EXPECT_TRUE(json_nesting_exceeds("[" + at_cap + "]", kMaxRequestJsonDepth));
  EXPECT_EQ(code_of([] { parse_json_object(std::string(100000, '[')); }), "json_too_deep");
  EXPECT_EQ(code_of([] { parse_json_object(std::string(100000, '{')); }), "json_too_deep");
  // Deep but within the cap parses (and is then judged on its fields).
  std::string ok = R"({"model":"m","prompt":"x","user":)" + std::string(20, '[') + std::string(20, ']') + "}";
  EXPECT_EQ(code_of([&] { parse_json_object(ok); }), "accepted");
}

TEST(ServeLimitsUnit, RequestFieldCapsNameTheField) {
  json chat = {{"model", "m"}, {"messages", json::array()}};
  for (size_t i = 0; i < kMaxMessages + 1; i++) chat["messages"].push_back({{"role", "user"}, {"content", "x"}});
  EXPECT_EQ(param_of(chat.dump(), true), "messages");
  chat["messages"].erase(chat["messages"].begin());
  EXPECT_EQ(param_of(chat.dump(), true), "accepted");

  json text = {{"model", "m"}, {"prompt", "x"}};
  text["stop"] = std::string(kMaxStopStringBytes + 1, 's');
  EXPECT_EQ(param_of(text.dump(), false), "stop");
  text["stop"] = std::string(kMaxStopStringBytes, 's');
  EXPECT_EQ(param_of(text.dump(), false), "accepted");
  text["stop"] = json::array({"a", "b", "c", "d", "e"});
  EXPECT_EQ(param_of(text.dump(), false), "stop");
  text.erase("stop");
  text["n"] = 3;
  EXPECT_EQ(param_of(text.dump(), false), "n");
  text.erase("n");
  // Token ids beyond int32 are refused, not wrapped into the vocabulary.
  text["prompt"] = json::array({1, 4294967297ull});
  EXPECT_EQ(param_of(text.dump(), false), "prompt");
  text["prompt"] = json::array({1, -3});
  EXPECT_EQ(param_of(text.dump(), false), "prompt");
  text["prompt"] = "x";
  text["max_completion_tokens"] = 0;
  EXPECT_EQ(param_of(text.dump(), false), "max_completion_tokens");
}

TEST(ServeLimitsUnit, FeedbackCaps) {
  auto param = [](const json& body) {
    try {
      parse_feedback_request(body.dump());
      return std::string("accepted");
    } catch (const ApiError& e) {
      return e.param;
    }
  };
  json f = {{"completion_id", "cmpl-1"}, {"rating", 1}};
  EXPECT_EQ(param(f), "accepted");
  f["rating"] = 4294967297ull;  // would wrap to 1 read as int
  EXPECT_EQ(param(f), "rating");
  f["rating"] = -4294967295ll;
  EXPECT_EQ(param(f), "rating");
  f["rating"] = 5;
  f["tags"] = json::array();
  for (size_t i = 0; i <= kMaxFeedbackTags; i++) f["tags"].push_back("t");
  EXPECT_EQ(param(f), "tags");
  f["tags"] = json::array({std::string(kMaxFeedbackTagBytes + 1, 't')});
  EXPECT_EQ(param(f), "tags");
  f["tags"] = json::array({"good"});
  f["comment"] = 5;
  EXPECT_EQ(param(f), "comment");
  f["comment"] = "fine";
  FeedbackRecord r = parse_feedback_request(f.dump());
  EXPECT_EQ(r.rating, 5);
  EXPECT_EQ(*r.comment, "fine");
  EXPECT_EQ(r.tags, std::vector<std::string>{"good"});
}

TEST(ServeLimitsUnit, ContextLengthCheckedAgainstModelAndMemory) {
  ModelConfig c;
  c.num_hidden_layers = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 4096;
  const size_t per_token = kv_cache_bytes(c, 1);
  EXPECT_EQ(per_token, 2u * 4 * 32 * 4);
  auto message = [&](int requested, int conc, size_t avail) {
    try {
      serve_context_length(requested, conc, c, avail, nullptr);
      return std::string("accepted");
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  std::string note;
  EXPECT_EQ(serve_context_length(0, 4, c, size_t(1) << 40, &note), 4096);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(serve_context_length(1000, 4, c, 0, nullptr), 1000);  // memory unknown: not checked
  EXPECT_NE(message(5000, 1, size_t(1) << 40).find("--ctx 5000 exceeds the model's max_position_embeddings 4096"), std::string::npos);
  EXPECT_NE(message(-1, 1, size_t(1) << 40).find("--ctx must be > 0"), std::string::npos);
  // 4 requests x 4096 tokens do not fit in the memory of 4 x 1000 tokens.
  size_t avail = per_token * 4 * 1000;
  EXPECT_NE(message(4096, 4, avail).find("--ctx 4096"), std::string::npos);
  EXPECT_NE(message(4096, 4, avail).find("--max-concurrency 4"), std::string::npos);
  EXPECT_EQ(message(1000, 4, avail), "accepted");
  // The default is lowered to what fits in half the memory, with a note.
  EXPECT_EQ(serve_context_length(0, 4, c, avail, &note), 500);
  EXPECT_NE(note.find("context lowered to 500"), std::string::npos) << note;
  EXPECT_EQ(serve_context_length(0, 4, c, per_token * 4 * 8192, &note), 4096);  // fits in half: not lowered
  EXPECT_NE(message(0, 4, per_token).find("--max-concurrency"), std::string::npos);
}

}  // namespace
