// The records module as one definition: every shape to messages (ordered for the chat template,
// consumed for storage, the same either way), the prompt side of a record, record texts, pre-tokenized
// validation with errors naming the field, the loss-mask helpers, tokenizer-training texts, the
// records made from feedback, and (with a fixture tokenizer) the mask of an Alpaca record.
#include <functional>

#include "lathe/core/error.h"
#include "lathe/records/record_format.h"
#include "lathe/records/record_shape.h"
#include "lathe/records/token_labels.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// The message of the RecordError f() throws ("(no error)" / "(other error)" otherwise).
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

json messages_of(const char* text) {
  json r = json::parse(text);
  const RecordShape shape = detect_record_shape(r);
  json ordered_view = json::parse(record_to_messages(r, shape).dump());
  json consumed = record_messages(json(r), shape);
  EXPECT_EQ(ordered_view, consumed) << text;  // one conversion, whichever output type
  return consumed;
}

TEST(Records, EveryShapeMapsToMessages) {
  const json qa = json::parse(R"([{"role":"user","content":"q"},{"role":"assistant","content":"a"}])");
  EXPECT_EQ(messages_of(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})"), qa);
  EXPECT_EQ(messages_of(R"({"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}]})"), qa);
  EXPECT_EQ(messages_of(R"({"instruction":"q","output":"a"})"), qa);
  EXPECT_EQ(messages_of(R"({"instruction":"q","input":null,"output":"a"})"), qa);
  EXPECT_EQ(messages_of(R"({"prompt":"q","completion":"a"})"), qa);
  EXPECT_EQ(messages_of(R"({"question":"q","answer":"a"})"), qa);
  // Alpaca's input joins the instruction; a top-level system leads.
  EXPECT_EQ(messages_of(R"({"system":"s","instruction":"q","input":"ctx","output":"a"})"),
            json::parse(R"([{"role":"system","content":"s"},{"role":"user","content":"q\n\nctx"},
                            {"role":"assistant","content":"a"}])"));
  // TRL's conversational prompt/completion keeps its message lists.
  EXPECT_EQ(messages_of(R"({"prompt":[{"role":"user","content":"q"}],"completion":[{"role":"assistant","content":"a"}]})"), qa);
  // ShareGPT speakers.
  EXPECT_EQ(messages_of(R"({"conversations":[{"from":"system","value":"s"},{"from":"human","value":"q"},
                                             {"from":"observation","value":"o"}]})")[2]["role"],
            "tool");
  EXPECT_FALSE(is_conversation(RecordShape::Text));
  EXPECT_FALSE(is_conversation(RecordShape::PreTokenized));
  EXPECT_TRUE(is_conversation(RecordShape::QuestionAnswer));
}

TEST(Records, MessagesKeepExtraKeysValueForValue) {
  // No dump and re-parse: an unsigned above INT64_MAX, a float and a nested object survive as they are.
  json r = json::parse(R"({"messages":[{"role":"user","content":"q","n":18446744073709551615,"w":0.1,
                                        "meta":{"k":[1,2]}}]})");
  ordered_json o = record_to_messages(r, RecordShape::Messages);
  EXPECT_EQ(o[0]["n"].get<uint64_t>(), 18446744073709551615ull);
  EXPECT_TRUE(o[0]["n"].is_number_unsigned());
  EXPECT_EQ(o[0]["w"].get<double>(), 0.1);
  EXPECT_EQ(o[0]["meta"].dump(), R"({"k":[1,2]})");
  json c = record_messages(std::move(r), RecordShape::Messages);
  EXPECT_EQ(c[0]["n"].get<uint64_t>(), 18446744073709551615ull);
  // Built messages are {role, content} in that order (what a template iterating keys sees).
  json a = json::parse(R"({"question":"q","answer":"a"})");
  EXPECT_EQ(record_to_messages(a, RecordShape::QuestionAnswer)[0].dump(), R"({"role":"user","content":"q"})");
}

TEST(Records, MalformedRecordsNameTheField) {
  auto err = [](const char* text) {
    json r = json::parse(text);
    return record_error([&] { record_to_messages(r, detect_record_shape(r)); });
  };
  EXPECT_NE(err(R"({"messages":[{"role":"user"}]})").find("[record] \"messages\"[0] has no string \"content\""),
            std::string::npos);
  EXPECT_NE(err(R"({"messages":{"role":"user"}})").find("\"messages\" must be a list of messages"), std::string::npos);
  EXPECT_NE(err(R"({"messages":[]})").find("the conversation has no messages"), std::string::npos);
  EXPECT_NE(err(R"({"conversations":[{"from":"alien","value":"x"}]})").find("\"conversations\"[0]: unknown speaker"),
            std::string::npos);
  EXPECT_NE(err(R"({"instruction":"q","input":3,"output":"a"})").find("alpaca record: \"input\" must be a string, got number"),
            std::string::npos);
  EXPECT_NE(err(R"({"prompt":"q","completion":[{"content":"a"}]})").find("\"completion\"[0] has no string \"role\""),
            std::string::npos);
  EXPECT_NE(err(R"({"text":"t"})").find("a text record is not a conversation"), std::string::npos);
  // detail() is the message without the component, for callers that prefix file:line themselves.
  try {
    record_to_messages(json::parse(R"({"question":1,"answer":"a"})"), RecordShape::QuestionAnswer);
    FAIL() << "no error";
  } catch (const RecordError& e) {
    EXPECT_EQ(e.detail(), "question/answer record: \"question\" must be a string, got number");
  }
}

TEST(Records, SystemPromptIsAddedOnce) {
  json m = json::parse(R"([{"role":"user","content":"q"}])");
  add_system_prompt(m, "");
  EXPECT_EQ(m.size(), 1u);
  add_system_prompt(m, "be brief");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], json::parse(R"({"role":"system","content":"be brief"})"));
  add_system_prompt(m, "other");
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0]["content"], "be brief");
}

TEST(Records, PromptExtraction) {
  auto prompts = [](const char* text) { return record_prompts(json::parse(text)); };
  using V = std::vector<std::string>;
  EXPECT_EQ(prompts(R"({"instruction":"q","input":"ctx","output":"a"})"), (V{"q\n\nctx"}));
  EXPECT_EQ(prompts(R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"1"},
                                    {"role":"assistant","content":"a"},{"role":"user","content":"2"}]})"),
            (V{"1", "2"}));
  EXPECT_EQ(prompts(R"({"text":"plain"})"), (V{"plain"}));
  EXPECT_EQ(prompts(R"({"prompt":"only a prompt"})"), (V{"only a prompt"}));
  EXPECT_EQ(prompts(R"({"input_ids":[1,2]})"), V{});
  EXPECT_EQ(prompts(R"({"foo":"bar"})"), V{});
  EXPECT_NE(record_error([&] { prompts(R"({"text":5})"); }).find("text record: \"text\" must be a string"),
            std::string::npos);
  EXPECT_NE(record_error([&] { prompts(R"({"question":"q","answer":null})"); }).find("\"answer\""), std::string::npos);
}

TEST(Records, TextsOfCanonicalRecords) {
  json r = json::parse(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a1"},
                                       {"role":"assistant","content":"a2"}]})");
  EXPECT_EQ(record_text(r), "q\na1\na2");
  EXPECT_EQ(record_answer(r), "a2");
  EXPECT_EQ(record_answer(json::parse(R"({"text":"t"})")), "t");
  EXPECT_EQ(record_answer(json::parse(R"({"input_ids":[1]})")), "");
  for_each_text(r, [](std::string& s) { s += "!"; });
  EXPECT_EQ(record_text(r), "q!\na1!\na2!");
}

TEST(Records, PreTokenizedValidationNamesTheField) {
  TokenizedRecord t = read_pretokenized(json::parse(R"({"input_ids":[5,6,7],"labels":[-100,6,7]})"));
  EXPECT_EQ(t.input_ids, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(t.labels, (std::vector<int32_t>{kIgnoreIndex, 6, 7}));
  EXPECT_TRUE(t.has_labels);
  EXPECT_EQ(prompt_token_ids(t), (std::vector<int32_t>{5}));
  TokenizedRecord u = read_pretokenized(json::parse(R"({"input_ids":[5,6],"labels":null})"));
  EXPECT_FALSE(u.has_labels);
  EXPECT_EQ(u.labels, u.input_ids);
  EXPECT_EQ(prompt_token_ids(u), u.input_ids);  // no labels: the whole sequence is the prompt

  auto err = [](const char* text) { return record_error([&] { read_pretokenized(json::parse(text)); }); };
  EXPECT_EQ(err(R"({"input_ids":[1,-100]})"), "[record] \"input_ids\"[1] = -100 is not a token id");
  EXPECT_EQ(err(R"({"input_ids":[1,2],"labels":[1,-5]})"), "[record] \"labels\"[1] = -5 is not a token id or -100");
  EXPECT_EQ(err(R"({"input_ids":[1,2],"labels":[1]})"), "[record] \"labels\" has 1 entries but \"input_ids\" has 2");
  EXPECT_EQ(err(R"({"input_ids":[]})"), "[record] \"input_ids\" is empty");
  EXPECT_EQ(err(R"({"input_ids":"1 2"})"), "[record] \"input_ids\" must be a list of integers");
  EXPECT_NE(err(R"({"input_ids":[1,2.5]})").find("[record] \"input_ids\"[1] is 2.5"), std::string::npos);
  EXPECT_NE(err(R"({"input_ids":[1,5000000000]})").find("\"input_ids\"[1] = 5000000000 is not a token id"),
            std::string::npos);
  EXPECT_NE(err(R"({"text":"x"})").find("needs \"input_ids\""), std::string::npos);

  const std::vector<int32_t> ids{1, 2, 9};
  EXPECT_EQ(record_error([&] { check_token_ids_in_vocab(ids, 10, "input_ids"); }), "(no error)");
  EXPECT_EQ(record_error([&] { check_token_ids_in_vocab(ids, 9, "input_ids"); }),
            "[record] \"input_ids\"[2] = 9 is not a token id of this tokenizer (vocabulary 9)");
}

TEST(Records, LossMaskHelpers) {
  EXPECT_EQ(kIgnoreIndex, -100);
  const std::vector<int32_t> labels{kIgnoreIndex, kIgnoreIndex, 7, kIgnoreIndex, 9};
  EXPECT_EQ(first_loss_index(labels), 2u);
  EXPECT_TRUE(has_loss(labels));
  EXPECT_EQ(count_loss_labels(labels), 2u);
  EXPECT_EQ(count_loss_labels(std::vector<int32_t>{3, kIgnoreIndex, 4}, 1), 1u);  // labels[0] never counts in training
  const std::vector<int32_t> none{kIgnoreIndex, kIgnoreIndex};
  EXPECT_EQ(first_loss_index(none), none.size());
  EXPECT_FALSE(has_loss(none));
}

TEST(Records, TokenizerTrainingTexts) {
  std::vector<std::string> out;
  record_training_texts(R"({"instruction":"i","input":"x","output":"o","id":"not text","n":1})", out);
  record_training_texts(R"({"messages":[{"role":"user","content":"c1"},{"role":"assistant","content":"c2"}]})", out);
  // Keys of a parsed object in sorted order (input < instruction < output); "id" is no text field.
  EXPECT_EQ(out, (std::vector<std::string>{"x", "i", "o", "c1", "c2"}));
  EXPECT_NE(record_error([&] { record_training_texts("{\"text\":", out); }).find("[record] "), std::string::npos);
}

TEST(Records, FeedbackRecords) {
  json req = json::parse(R"([{"role":"system","content":"s"},{"content":"q"}])");
  EXPECT_EQ(chat_record(req, "fixed").dump(),
            R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},)"
            R"({"role":"assistant","content":"fixed"}]})");
  EXPECT_EQ(completion_record("p", "c").dump(), R"({"prompt":"p","completion":"c"})");
  // A feedback record reads back as the conversation it was made from.
  json rec = json::parse(chat_record(req, "fixed").dump());
  EXPECT_EQ(record_prompts(rec), (std::vector<std::string>{"q"}));
}

// With a real tokenizer: an Alpaca record and the same conversation as messages encode to the same
// tokens, and only the assistant turn carries loss.
TEST(Records, AlpacaMaskCoversOnlyTheAnswer) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3");
  const std::string dir = test::fixture_path("tokenizers/qwen3");
  auto tok = Tokenizer::load(dir);
  RecordEncoder enc = RecordEncoder::for_model(*tok, dir, "chatml", {});
  EncodedRecord a = enc.encode(json::parse(R"({"instruction":"How many days?","input":"full-time","output":"Fifteen."})"));
  EncodedRecord m = enc.encode(json::parse(R"({"messages":[{"role":"user","content":"How many days?\n\nfull-time"},
                                                          {"role":"assistant","content":"Fifteen."}]})"));
  EXPECT_EQ(a.input_ids, m.input_ids);
  EXPECT_EQ(a.labels, m.labels);
  const size_t first = first_loss_index(a.labels);
  ASSERT_LT(first, a.labels.size());
  std::vector<int32_t> answer;
  for (size_t t = first; t < a.labels.size(); t++)
    if (carries_loss(a.labels[t])) answer.push_back(a.labels[t]);
  const std::string labelled = tok->decode(answer);
  EXPECT_EQ(labelled.rfind("Fifteen.<|im_end|>", 0), 0u) << labelled;
  EXPECT_EQ(labelled.find("How many"), std::string::npos) << labelled;
  EXPECT_NE(tok->decode(std::vector<int32_t>(a.input_ids.begin(), a.input_ids.begin() + long(first))).find("full-time"),
            std::string::npos);
  EXPECT_TRUE(a.ends_with_eos);
  // Errors of encode are RecordErrors too.
  EXPECT_NE(record_error([&] { enc.encode(json::parse(R"({"foo":1})")); }).find("[record] no known record shape"),
            std::string::npos);
}

}  // namespace
}  // namespace lathe

// ---- The one-walk key lookups of detect_record_shape / preference_shape_of and record_text's single
// finds, against the lookups they replace (the code as it was, kept here as the definition) ----
namespace lathe {
namespace {

using nlohmann::json;

PreferenceShape preference_shape_ref(const json& r) {
  auto has = [&](const char* k) { return r.contains(k); };
  if (!r.is_object()) return PreferenceShape::None;
  if (has("chosen_input_ids") || has("rejected_input_ids")) return PreferenceShape::PairedTokenized;
  if (has("completion_input_ids")) return PreferenceShape::UnpairedTokenized;
  if (has("chosen") || has("rejected")) return has("prompt") ? PreferenceShape::Paired : PreferenceShape::PairedImplicit;
  auto label = r.find("label");
  if (has("prompt") && has("completion") && label != r.end() && (label->is_boolean() || label->is_number()))
    return PreferenceShape::Unpaired;
  return PreferenceShape::None;
}

RecordShape record_shape_ref(const json& r) {
  if (!r.is_object()) return RecordShape::Unknown;
  if (preference_shape_ref(r) != PreferenceShape::None) return RecordShape::Preference;
  if (r.contains("input_ids")) return RecordShape::PreTokenized;
  if (r.contains("messages")) return RecordShape::Messages;
  if (r.contains("conversations")) return RecordShape::ShareGPT;
  if (r.contains("instruction") && r.contains("output")) return RecordShape::Alpaca;
  if (r.contains("prompt") && r.contains("completion")) return RecordShape::PromptCompletion;
  if (r.contains("question") && r.contains("answer")) return RecordShape::QuestionAnswer;
  if (r.contains("text")) return RecordShape::Text;
  return RecordShape::Unknown;
}

std::string record_text_ref(const json& rec) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += '\n';
    out += s;
  };
  if (rec.contains("messages") && rec["messages"].is_array())
    for (auto& m : rec["messages"])
      if (m.is_object() && m.contains("content") && m["content"].is_string()) add(m["content"].get_ref<const std::string&>());
  if (rec.contains("text") && rec["text"].is_string()) add(rec["text"].get_ref<const std::string&>());
  for (const char* k : {"prompt", "chosen", "rejected", "completion"}) {
    auto it = rec.find(k);
    if (it == rec.end()) continue;
    if (it->is_string()) add(it->get_ref<const std::string&>());
    else if (it->is_array())
      for (auto& m : *it)
        if (m.is_object() && m.contains("content") && m["content"].is_string()) add(m["content"].get_ref<const std::string&>());
  }
  return out;
}

TEST(RecordShapeKeys, OneWalkMatchesLookups) {
  // Random objects over every key the shapes read, near misses of them (a prefix, a suffix, another
  // case, an embedded NUL) and others, holding strings, numbers, booleans, null, objects and message
  // lists with and without string contents; also values that are not objects.
  const std::vector<std::string> keys = {
      "messages", "text", "prompt", "chosen", "rejected", "completion", "label", "input_ids", "conversations",
      "instruction", "output", "question", "answer", "chosen_input_ids", "rejected_input_ids",
      "completion_input_ids", "prompt_input_ids", "labels", "system", "_id", "_source", "role", "content",
      "messages ", "Text", "tex", "promptx", std::string("text\0", 5), "", "input", "completion_input_id"};
  uint64_t s = 22;
  auto next = [&](uint64_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (s >> 33) % n;
  };
  auto message = [&]() {
    json m = json::object();
    if (next(5)) m["role"] = next(2) ? "assistant" : "user";
    switch (next(5)) {
      case 0: break;
      case 1: m["content"] = 7; break;
      case 2: m["content"] = json::array({"x"}); break;
      default: m["content"] = "c" + std::to_string(next(100)); break;
    }
    return next(9) ? m : json(next(2) ? json("loose") : json(nullptr));
  };
  auto value = [&]() -> json {
    switch (next(8)) {
      case 0: return nullptr;
      case 1: return next(2) == 1;
      case 2: return int(next(3));
      case 3: return 0.5;
      case 4: return json::object({{"content", "inner"}});
      case 5: case 6: {
        json a = json::array();
        for (uint64_t k = next(4); k > 0; k--) a.push_back(message());
        return a;
      }
      default: return "v" + std::to_string(next(1000));
    }
  };
  for (int round = 0; round < 30000; round++) {
    json r = json::object();
    for (uint64_t k = next(6); k > 0; k--) r[keys[next(keys.size())]] = value();
    if (round % 50 == 0) r = value();  // not an object
    ASSERT_EQ(preference_shape_of(r), preference_shape_ref(r)) << r.dump();
    ASSERT_EQ(detect_record_shape(r), record_shape_ref(r)) << r.dump();
    ASSERT_EQ(record_text(r), record_text_ref(r)) << r.dump();
  }
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// for_each_text as it was (contains() then operator[]), the definition the one-lookup walk must match.
template <class F>
void for_each_text_ref(nlohmann::json& rec, F&& f) {
  auto messages = [&](nlohmann::json& list) {
    for (auto& m : list)
      if (m.is_object() && m.contains("content") && m["content"].is_string()) f(m["content"].get_ref<std::string&>());
  };
  if (!rec.is_object()) return;
  if (rec.contains("messages") && rec["messages"].is_array()) messages(rec["messages"]);
  if (rec.contains("text") && rec["text"].is_string()) f(rec["text"].get_ref<std::string&>());
  for (const char* k : {"prompt", "chosen", "rejected", "completion"}) {
    auto it = rec.find(k);
    if (it == rec.end()) continue;
    if (it->is_string()) f(it->get_ref<std::string&>());
    else if (it->is_array()) messages(*it);
  }
}

TEST(RecordShapeKeys, ForEachTextVisitsAndEditsAsBefore) {
  // The same strings in the same order, and edits made through the references land in the same
  // places: each visited string gets its visit number appended, then the records must be equal.
  uint64_t s = 7;
  auto next = [&](uint64_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (s >> 33) % n;
  };
  const char* keys[] = {"messages", "text", "prompt", "chosen", "rejected", "completion", "content", "role", "x"};
  std::function<json(int)> value = [&](int depth) -> json {
    switch (next(depth > 1 ? 4 : 7)) {
      case 0: return nullptr;
      case 1: return int(next(9));
      case 2: case 3: return "s" + std::to_string(next(100));
      case 4: {
        json a = json::array();
        for (uint64_t k = next(4); k > 0; k--) a.push_back(value(depth + 1));
        return a;
      }
      default: {
        json o = json::object();
        for (uint64_t k = next(4); k > 0; k--) o[keys[next(std::size(keys))]] = value(depth + 1);
        return o;
      }
    }
  };
  for (int round = 0; round < 20000; round++) {
    json a = json::object();
    for (uint64_t k = next(5); k > 0; k--) a[keys[next(std::size(keys))]] = value(0);
    if (round % 40 == 0) a = value(0);
    json b = a;
    int na = 0, nb = 0;
    for_each_text(a, [&](std::string& t) { t += "#" + std::to_string(na++); });
    for_each_text_ref(b, [&](std::string& t) { t += "#" + std::to_string(nb++); });
    ASSERT_EQ(na, nb) << b.dump();
    ASSERT_EQ(a, b);
  }
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// RecordEncoder::encode hands the mapped messages over (the rvalue encode_messages) instead of
// copying them; it must encode what encode_messages of the same messages, read as a const value,
// encodes — with and without a configured system prompt, records with and without their own system
// turn, every conversational shape.
TEST(Records, EncodeTakesMessagesOverAsCopying) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3");
  const std::string dir = test::fixture_path("tokenizers/qwen3");
  auto tok = Tokenizer::load(dir);
  const char* recs[] = {
      R"({"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"a1"}]})",
      R"({"messages":[{"role":"system","content":"own"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})",
      R"({"instruction":"How many days?","input":"full-time","output":"Fifteen.","system":"top"})",
      R"({"instruction":"i","output":"o"})",
      R"({"conversations":[{"from":"human","value":"h"},{"from":"gpt","value":"g"}]})",
      R"({"prompt":"p","completion":"c"})",
      R"({"question":"q","answer":"a"})",
      R"({"text":"plain text"})",
      R"({"messages":[{"role":"user","content":"q","name":"x"},{"role":"assistant","content":"a"}],"_id":"1"})",
  };
  for (const char* system : {"", "Be brief."}) {
    RecordFormatOptions o;
    o.system_prompt = system;
    RecordEncoder enc = RecordEncoder::for_model(*tok, dir, "chatml", o);
    for (const char* text : recs) {
      const json rec = json::parse(text);
      const EncodedRecord a = enc.encode(rec);
      json consumed = rec;  // encode(json&&) moves the record's strings into the messages
      const EncodedRecord c = enc.encode(std::move(consumed));
      EXPECT_EQ(c.input_ids, a.input_ids) << system << " " << text;
      EXPECT_EQ(c.labels, a.labels) << system << " " << text;
      EXPECT_EQ(c.text, a.text) << system << " " << text;
      const RecordShape shape = detect_record_shape(rec);
      if (!is_conversation(shape)) continue;
      const ordered_json messages = record_to_messages(rec, shape);
      const EncodedRecord b = enc.encode_messages(messages);
      EXPECT_EQ(a.input_ids, b.input_ids) << system << " " << text;
      EXPECT_EQ(a.labels, b.labels) << system << " " << text;
      EXPECT_EQ(a.text, b.text) << system << " " << text;
      // The configured prompt is there unless the record brings its own system turn.
      EXPECT_TRUE(std::string(system).empty() || a.text.find(system) != std::string::npos ||
                  a.text.find("own") != std::string::npos || a.text.find("top") != std::string::npos)
          << a.text;
    }
  }
}

}  // namespace
}  // namespace lathe
