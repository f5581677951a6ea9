// Preference records (record_shape.h): which fields make which shape, the conversion to prompt /
// chosen / rejected (or completion + label) messages including TRL's implicit prompt, pre-tokenized
// records, the stored form `lathe data prepare` writes, and errors that name the field.
#include "lathe/core/error.h"
#include "lathe/records/record_format.h"
#include "lathe/records/record_shape.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

template <class F>
std::string record_error(F&& f) {
  try {
    f();
  } catch (const RecordError& e) {
    return e.what();
  } catch (const Error& e) {
    return std::string("(other error) ") + e.what();
  }
  return "(no error)";
}

PreferenceShape shape_of(const char* text) { return preference_shape_of(json::parse(text)); }

json msgs(const PreferenceMessages& m, const ordered_json PreferenceMessages::*f) { return json::parse((m.*f).dump()); }

TEST(PreferenceRecords, ShapesByFields) {
  EXPECT_EQ(shape_of(R"({"prompt":"p","chosen":"a","rejected":"b"})"), PreferenceShape::Paired);
  EXPECT_EQ(shape_of(R"({"chosen":[],"rejected":[]})"), PreferenceShape::PairedImplicit);
  EXPECT_EQ(shape_of(R"({"prompt":"p","completion":"c","label":true})"), PreferenceShape::Unpaired);
  EXPECT_EQ(shape_of(R"({"prompt":"p","completion":"c","label":0})"), PreferenceShape::Unpaired);
  EXPECT_EQ(shape_of(R"({"prompt_input_ids":[1],"chosen_input_ids":[2],"rejected_input_ids":[3]})"),
            PreferenceShape::PairedTokenized);
  EXPECT_EQ(shape_of(R"({"prompt_input_ids":[1],"completion_input_ids":[2],"label":false})"),
            PreferenceShape::UnpairedTokenized);
  // A field missing still names the shape, so the conversion can say what is missing.
  EXPECT_EQ(shape_of(R"({"prompt":"p","chosen":"a"})"), PreferenceShape::Paired);
  // Not preference records: SFT prompt/completion, with or without a class-name label; other shapes.
  EXPECT_EQ(shape_of(R"({"prompt":"p","completion":"c"})"), PreferenceShape::None);
  EXPECT_EQ(shape_of(R"({"prompt":"p","completion":"c","label":"sports"})"), PreferenceShape::None);
  EXPECT_EQ(shape_of(R"({"messages":[]})"), PreferenceShape::None);
  EXPECT_EQ(shape_of(R"([1])"), PreferenceShape::None);
  // detect_record_shape sees them as Preference (never a conversation), the rest as before.
  EXPECT_EQ(detect_record_shape(json::parse(R"({"prompt":"p","completion":"c","label":true})")), RecordShape::Preference);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"prompt":"p","completion":"c","label":"x"})")),
            RecordShape::PromptCompletion);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"prompt":"p","completion":"c"})")), RecordShape::PromptCompletion);
  EXPECT_FALSE(is_conversation(RecordShape::Preference));
  EXPECT_TRUE(is_paired(PreferenceShape::PairedImplicit));
  EXPECT_FALSE(is_paired(PreferenceShape::UnpairedTokenized));
  EXPECT_TRUE(is_tokenized(PreferenceShape::UnpairedTokenized));
  EXPECT_STREQ(preference_shape_name(PreferenceShape::PairedImplicit), "paired_implicit");
}

TEST(PreferenceRecords, StringsBecomeUserAndAssistantTurns) {
  json r = json::parse(R"({"prompt":"q","chosen":"good","rejected":"bad","extra":1})");
  PreferenceMessages m = preference_messages(r, preference_shape_of(r));
  EXPECT_FALSE(m.conversational);
  EXPECT_EQ(msgs(m, &PreferenceMessages::prompt), json::parse(R"([{"role":"user","content":"q"}])"));
  EXPECT_EQ(msgs(m, &PreferenceMessages::chosen), json::parse(R"([{"role":"assistant","content":"good"}])"));
  EXPECT_EQ(msgs(m, &PreferenceMessages::rejected), json::parse(R"([{"role":"assistant","content":"bad"}])"));
  EXPECT_TRUE(m.completion.empty());
  // The SFT prompt of the pair: its user turns (what eval contamination checks).
  EXPECT_EQ(record_prompts(r), std::vector<std::string>{"q"});
}

TEST(PreferenceRecords, ConversationalPairKeepsItsMessages) {
  json r = json::parse(R"({"prompt":[{"role":"system","content":"s"},{"role":"user","content":"q"}],
                           "chosen":[{"role":"assistant","content":"good","name":"x"}],
                           "rejected":[{"role":"assistant","content":"bad"}]})");
  PreferenceMessages m = preference_messages(r, PreferenceShape::Paired);
  EXPECT_TRUE(m.conversational);
  EXPECT_EQ(msgs(m, &PreferenceMessages::prompt), r["prompt"]);
  EXPECT_EQ(msgs(m, &PreferenceMessages::chosen), r["chosen"]);  // extra keys kept, value for value
  EXPECT_EQ(msgs(m, &PreferenceMessages::rejected), r["rejected"]);
  EXPECT_EQ(preference_record(r, PreferenceShape::Paired), (json{{"prompt", r["prompt"]}, {"chosen", r["chosen"]}, {"rejected", r["rejected"]}}));
}

TEST(PreferenceRecords, ImplicitPromptIsTheSharedPrefix) {
  // Conversations: whole messages up to the first that differs.
  json r = json::parse(R"({"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a1"},
                                     {"role":"user","content":"q2"},{"role":"assistant","content":"good"}],
                           "rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"a1"},
                                       {"role":"user","content":"q2"},{"role":"assistant","content":"bad"}]})");
  ASSERT_EQ(preference_shape_of(r), PreferenceShape::PairedImplicit);
  PreferenceMessages m = preference_messages(r, PreferenceShape::PairedImplicit);
  EXPECT_TRUE(m.conversational);
  ASSERT_EQ(m.prompt.size(), 3u);
  EXPECT_EQ(m.prompt[2]["content"], "q2");
  EXPECT_EQ(msgs(m, &PreferenceMessages::chosen), json::parse(R"([{"role":"assistant","content":"good"}])"));
  EXPECT_EQ(msgs(m, &PreferenceMessages::rejected), json::parse(R"([{"role":"assistant","content":"bad"}])"));
  json stored = preference_record(r, PreferenceShape::PairedImplicit);
  EXPECT_EQ(stored["prompt"].size(), 3u);
  EXPECT_EQ(stored["chosen"], json::parse(R"([{"role":"assistant","content":"good"}])"));
  EXPECT_EQ(preference_shape_of(stored), PreferenceShape::Paired);  // stored with its prompt explicit

  // Texts: the common prefix; a space before the cut goes to the answers (TRL's rule).
  json t = json::parse(R"({"chosen":"\n\nHuman: hi\n\nAssistant: hello there","rejected":"\n\nHuman: hi\n\nAssistant: go away"})");
  json st = preference_record(t, PreferenceShape::PairedImplicit);
  EXPECT_EQ(st["prompt"], "\n\nHuman: hi\n\nAssistant:");
  EXPECT_EQ(st["chosen"], " hello there");
  EXPECT_EQ(st["rejected"], " go away");
  // A cut never splits a character: "é" (C3 A9) and "è" (C3 A8) share their first byte.
  json u = json::parse(R"({"chosen":"caf\u00e9","rejected":"caf\u00e8"})");
  json su = preference_record(u, PreferenceShape::PairedImplicit);
  EXPECT_EQ(su["prompt"], "caf");
  EXPECT_EQ(su["chosen"], "\u00e9");
  EXPECT_EQ(su["rejected"], "\u00e8");
  // Nothing shared, or one a prefix of the other: no prompt / no answer to compare.
  EXPECT_NE(record_error([] { preference_record(json::parse(R"({"chosen":"a","rejected":"b"})"), PreferenceShape::PairedImplicit); })
                .find("share no leading text"),
            std::string::npos);
  EXPECT_NE(record_error([] {
              preference_messages(json::parse(R"({"chosen":[{"role":"user","content":"q"}],
                                                   "rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"b"}]})"),
                                  PreferenceShape::PairedImplicit);
            }).find("\"chosen\" ends within the shared prefix"),
            std::string::npos);
}

TEST(PreferenceRecords, UnpairedLabel) {
  json r = json::parse(R"({"prompt":"q","completion":"a","label":false})");
  PreferenceMessages m = preference_messages(r, PreferenceShape::Unpaired);
  EXPECT_FALSE(m.label);
  EXPECT_EQ(msgs(m, &PreferenceMessages::completion), json::parse(R"([{"role":"assistant","content":"a"}])"));
  EXPECT_TRUE(m.chosen.empty());
  json one = json::parse(R"({"prompt":"q","completion":"a","label":1})");
  EXPECT_TRUE(preference_messages(one, PreferenceShape::Unpaired).label);
  EXPECT_EQ(preference_record(one, PreferenceShape::Unpaired)["label"], true);  // stored as a boolean
  EXPECT_NE(record_error([] { preference_messages(json::parse(R"({"prompt":"q","completion":"a","label":2})"), PreferenceShape::Unpaired); })
                .find("\"label\" must be true (desirable) or false (undesirable), got 2"),
            std::string::npos);
}

TEST(PreferenceRecords, ErrorsNameTheField) {
  auto err = [](const char* text) {
    return record_error([&] {
      json r = json::parse(text);
      preference_messages(r, preference_shape_of(r));
    });
  };
  EXPECT_EQ(err(R"({"prompt":"p","chosen":"a"})"), "[record] paired preference record has no \"rejected\"");
  EXPECT_EQ(err(R"({"prompt":"p","chosen":"a","rejected":3})"),
            "[record] paired preference record: \"rejected\" must be a string or a list of messages, got number");
  EXPECT_EQ(err(R"({"prompt":"p","chosen":[{"role":"assistant","content":"a"}],"rejected":"b"})"),
            "[record] paired preference record: \"chosen\" is a message list but \"prompt\" is a string (all strings or all "
            "message lists)");
  EXPECT_EQ(err(R"({"prompt":[{"role":"user","content":"q"}],"chosen":[],"rejected":[]})"),
            "[record] paired preference record: \"chosen\" has no messages");
  EXPECT_EQ(err(R"({"prompt":[{"role":"user"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]})"),
            "[record] \"prompt\"[0] has no string \"content\"");
  EXPECT_EQ(err(R"({"prompt":"p","completion":"c","label":true,"x":1})"), "(no error)");
  // Tokenized records are read by preference_tokens, and the other way round.
  EXPECT_NE(err(R"({"prompt_input_ids":[1],"chosen_input_ids":[2],"rejected_input_ids":[3]})").find("no text parts"),
            std::string::npos);
}

TEST(PreferenceRecords, Tokenized) {
  json r = json::parse(R"({"prompt_input_ids":[1,2],"chosen_input_ids":[3,4],"rejected_input_ids":[5]})");
  PreferenceTokens t = preference_tokens(r, preference_shape_of(r));
  EXPECT_EQ(t.prompt, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(t.chosen, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(t.rejected, (std::vector<int32_t>{5}));
  json k = json::parse(R"({"prompt_input_ids":[],"completion_input_ids":[7],"label":true})");
  PreferenceTokens tk = preference_tokens(k, preference_shape_of(k));
  EXPECT_TRUE(tk.prompt.empty());
  EXPECT_TRUE(tk.label);
  EXPECT_EQ(tk.completion, std::vector<int32_t>{7});
  EXPECT_EQ(record_error([] {
              json b = json::parse(R"({"prompt_input_ids":[1],"chosen_input_ids":[],"rejected_input_ids":[5]})");
              preference_tokens(b, preference_shape_of(b));
            }),
            "[record] pre-tokenized paired preference record: \"chosen_input_ids\" is empty");
  EXPECT_EQ(record_error([] {
              json b = json::parse(R"({"prompt_input_ids":[1],"chosen_input_ids":[2,-100],"rejected_input_ids":[5]})");
              preference_tokens(b, preference_shape_of(b));
            }),
            "[record] \"chosen_input_ids\"[1] = -100 is not a token id");
  EXPECT_EQ(record_error([] {
              json b = json::parse(R"({"chosen_input_ids":[2],"rejected_input_ids":[5]})");
              preference_tokens(b, preference_shape_of(b));
            }),
            "[record] pre-tokenized paired preference record has no \"prompt_input_ids\"");
  EXPECT_EQ(preference_record(r, PreferenceShape::PairedTokenized), r);
  EXPECT_TRUE(preference_texts(r).prompt.empty());
}

TEST(PreferenceRecords, TextsAndForEachTextCoverEveryPart) {
  json r = json::parse(R"({"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"a"}],
                           "rejected":[{"role":"assistant","content":"b"}]})");
  EXPECT_EQ(record_text(r), "q\na\nb");
  PreferenceTexts t = preference_texts(r);
  EXPECT_EQ(t.prompt, "q");
  EXPECT_EQ(t.answers, (std::vector<std::string>{"a", "b"}));
  std::vector<std::string> seen;
  for_each_text(r, [&](std::string& s) {
    seen.push_back(s);
    s = "x";
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"q", "a", "b"}));
  EXPECT_EQ(record_text(r), "x\nx\nx");
  json k = json::parse(R"({"prompt":"q","completion":"c","label":true})");
  EXPECT_EQ(preference_texts(k).answers, std::vector<std::string>{"c"});
  // Tokenizer training reads chosen and rejected texts too.
  std::vector<std::string> texts;
  record_training_texts(R"({"prompt":"q","chosen":"a","rejected":"b"})", texts);
  EXPECT_EQ(texts, (std::vector<std::string>{"a", "q", "b"}));  // nlohmann's object order: keys sorted
}

// An SFT encoder (what `lathe train` and `lathe data prepare` use for SFT records) refuses a
// preference record and says how to train it: a KTO record is not silently a prompt/completion one.
TEST(PreferenceRecords, SftEncoderRefusesThem) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3");
  const std::string dir = test::fixture_path("tokenizers/qwen3");
  auto tok = Tokenizer::load(dir);
  RecordEncoder enc = RecordEncoder::for_model(*tok, dir, "chatml", {});
  EXPECT_EQ(record_error([&] { enc.encode(json::parse(R"({"prompt":"p","completion":"c","label":true})")); }),
            "[record] a preference record (unpaired) is not an SFT record: train it with --method kto");
  EXPECT_EQ(record_error([&] { enc.encode(json::parse(R"({"prompt":"p","chosen":"a","rejected":"b"})")); }),
            "[record] a preference record (paired) is not an SFT record: train it with --method dpo or orpo");
  EXPECT_GT(enc.encode(json::parse(R"({"prompt":"p","completion":"c","label":"topic"})")).input_ids.size(), 0u);
}

}  // namespace
}  // namespace lathe
