// RecordEncoder: every record shape becomes the same conversation, and the loss mask covers exactly
// the assistant turns (content + end-of-turn) of the rendered text, for byte-level BPE (Qwen3, Llama 3)
// and SentencePiece-style (Mistral) tokenizers. The expectations come from the template text itself:
// the decoded labelled tokens must be the assistant turns, and all tokens must decode to the render.
#include "lathe/core/error.h"
#include "lathe/records/record_format.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace lathe {
namespace {

using nlohmann::json;

std::string labelled_text(const Tokenizer& tok, const EncodedRecord& e) {
  // Decode each maximal run of labelled tokens, joined by '|'.
  std::string out;
  std::vector<int32_t> run;
  for (size_t t = 0; t <= e.labels.size(); t++) {
    if (t < e.labels.size() && e.labels[t] != -100) {
      run.push_back(e.labels[t]);
    } else if (!run.empty()) {
      if (!out.empty()) out += "|";
      out += tok.decode(run);
      run.clear();
    }
  }
  return out;
}

TEST(RecordShape, DetectsEveryShape) {
  EXPECT_EQ(detect_record_shape(json::parse(R"({"messages":[]})")), RecordShape::Messages);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"conversations":[]})")), RecordShape::ShareGPT);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"instruction":"a","input":"","output":"b"})")), RecordShape::Alpaca);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"prompt":"a","completion":"b"})")), RecordShape::PromptCompletion);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"question":"a","answer":"b"})")), RecordShape::QuestionAnswer);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"text":"a"})")), RecordShape::Text);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"input_ids":[1]})")), RecordShape::PreTokenized);
  EXPECT_EQ(detect_record_shape(json::parse(R"({"foo":1})")), RecordShape::Unknown);
  EXPECT_EQ(detect_record_shape(json::parse(R"([1,2])")), RecordShape::Unknown);
}

TEST(RecordShape, AllConversationalShapesMeanTheSameConversation) {
  auto want = json::parse(R"([{"role":"user","content":"연차는 며칠?\n\n정규직 기준"},{"role":"assistant","content":"15일입니다."}])");
  auto conv = [](const char* s) {
    json r = json::parse(s);
    return json::parse(record_to_messages(r, detect_record_shape(r)).dump());
  };
  EXPECT_EQ(conv(R"({"messages":[{"role":"user","content":"연차는 며칠?\n\n정규직 기준"},{"role":"assistant","content":"15일입니다."}]})"), want);
  EXPECT_EQ(conv(R"({"conversations":[{"from":"human","value":"연차는 며칠?\n\n정규직 기준"},{"from":"gpt","value":"15일입니다."}]})"), want);
  EXPECT_EQ(conv(R"({"instruction":"연차는 며칠?","input":"정규직 기준","output":"15일입니다."})"), want);
  EXPECT_EQ(conv(R"({"prompt":"연차는 며칠?\n\n정규직 기준","completion":"15일입니다."})"), want);
  EXPECT_EQ(conv(R"({"question":"연차는 며칠?\n\n정규직 기준","answer":"15일입니다."})"), want);
  // A top-level system string leads the conversation.
  auto sys = conv(R"({"system":"간결하게","question":"q","answer":"a"})");
  EXPECT_EQ(sys[0]["role"], "system");
  EXPECT_EQ(sys.size(), 3u);
}

TEST(RecordShape, MalformedRecordsNameTheField) {
  auto err = [](const char* s) {
    json r = json::parse(s);
    try {
      record_to_messages(r, detect_record_shape(r));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(err(R"({"messages":[{"role":"user"}]})").find("\"messages\"[0]"), std::string::npos);
  EXPECT_NE(err(R"({"conversations":[{"from":"alien","value":"x"}]})").find("alien"), std::string::npos);
  EXPECT_NE(err(R"({"instruction":5,"output":"x"})").find("\"instruction\""), std::string::npos);
  EXPECT_NE(err(R"({"question":"q","answer":null})").find("\"answer\""), std::string::npos);
}

struct Case {
  const char* tokenizer;
  const char* end_of_turn;  // what the template writes after an assistant message
  bool own_template = false;
};

const char* kInstTemplate =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}";

class RecordEncoding : public ::testing::TestWithParam<Case> {};

TEST_P(RecordEncoding, MasksExactlyTheAssistantTurns) {
  const std::string dir = std::string("tokenizers/") + GetParam().tokenizer;
  LATHE_REQUIRE_FIXTURE(dir);
  auto tok = Tokenizer::load(test::fixture_path(dir));
  // Mistral's fixture ships no chat template: use one in its [INST] style, written here.
  auto make = [&](RecordFormatOptions o) {
    if (!GetParam().own_template) return RecordEncoder::for_model(*tok, test::fixture_path(dir), "", o);
    ChatRenderOptions ro;
    ro.bos_token = tok->bos_token();
    ro.eos_token = tok->eos_token();
    return RecordEncoder(*tok, ChatTemplate::parse(kInstTemplate), ro, o);
  };
  RecordEncoder enc = make({});
  json rec = json::parse(R"({"messages":[
    {"role":"user","content":"What is the leave policy?"},
    {"role":"assistant","content":"Fifteen days a year."},
    {"role":"user","content":"휴가 신청은 어디서 하나요?"},
    {"role":"assistant","content":"인사 포털에서 신청합니다."}]})");
  EncodedRecord e = enc.encode(rec);
  ASSERT_EQ(e.input_ids.size(), e.labels.size());
  // The tokens are the encoding of the whole render (what inference sees).
  EXPECT_EQ(e.input_ids, tok->encode(e.text, false));
  const std::string eot = GetParam().end_of_turn;
  const std::string got = labelled_text(*tok, e);
  EXPECT_NE(got.find("Fifteen days a year." + eot), std::string::npos) << got;
  EXPECT_NE(got.find("인사 포털에서 신청합니다." + eot), std::string::npos) << got;
  EXPECT_EQ(got.find("leave policy"), std::string::npos) << got;
  EXPECT_EQ(got.find("휴가 신청"), std::string::npos) << got;
  EXPECT_TRUE(e.ends_with_eos);
  EXPECT_FALSE(e.truncated);

  // train_on_inputs: every token carries loss.
  RecordFormatOptions all;
  all.train_on_inputs = true;
  EncodedRecord f = make(all).encode(rec);
  EXPECT_EQ(f.labels, f.input_ids);

  // Truncation on the right, flagged, with the original length kept.
  RecordFormatOptions cut;
  cut.max_seq_length = 8;
  EncodedRecord g = make(cut).encode(rec);
  EXPECT_TRUE(g.truncated);
  EXPECT_EQ(g.input_ids.size(), 8u);
  EXPECT_EQ(g.full_length, e.input_ids.size());
  EXPECT_EQ(std::vector<int32_t>(e.input_ids.begin(), e.input_ids.begin() + 8), g.input_ids);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, RecordEncoding,
                         ::testing::Values(Case{"qwen3", "<|im_end|>"}, Case{"llama3", "<|eot_id|>"},
                                           Case{"mistral-v0.1", "</s>", true}),
                         [](const auto& info) {
                           std::string n = info.param.tokenizer;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(RecordEncoding, TextRecordsCarryLossEverywhereAndEndWithEos) {
  LATHE_REQUIRE_FIXTURE("tokenizers/llama3");
  const std::string dir = test::fixture_path("tokenizers/llama3");
  auto tok = Tokenizer::load(dir);
  RecordEncoder enc = RecordEncoder::for_model(*tok, dir, "", {});
  EncodedRecord e = enc.encode(json::parse(R"({"text":"사내 규정 제1조. The policy applies to all staff."})"));
  EXPECT_EQ(e.labels, e.input_ids);
  // The tokenizer's own special tokens (this tokenizer.json's post-processor adds none), then EOS.
  std::vector<int32_t> want = tok->encode(e.text, true);
  want.push_back(tok->eos_id());
  EXPECT_EQ(e.input_ids, want);
}

TEST(RecordEncoding, BuiltinTemplateAndPreTokenized) {
  LATHE_REQUIRE_FIXTURE("tokenizers/qwen3");
  const std::string dir = test::fixture_path("tokenizers/qwen3");
  auto tok = Tokenizer::load(dir);
  RecordEncoder enc = RecordEncoder::for_model(*tok, dir, "alpaca", {});
  EncodedRecord e = enc.encode(json::parse(R"({"question":"2+2?","answer":"4"})"));
  EXPECT_NE(e.text.find("### Response:"), std::string::npos) << e.text;
  EXPECT_NE(labelled_text(*tok, e).find("4"), std::string::npos);
  EncodedRecord p = enc.encode(json::parse(R"({"input_ids":[5,6,7],"labels":[-100,6,7]})"));
  EXPECT_EQ(p.labels, (std::vector<int32_t>{-100, 6, 7}));
  EXPECT_THROW(enc.encode(json::parse(R"({"input_ids":[5,6],"labels":[1]})")), Error);
  EXPECT_THROW(enc.encode(json::parse(R"({"nothing":1})")), Error);
  EXPECT_THROW(RecordEncoder::for_model(*tok, dir, "no-such-template", {}), Error);
}

}  // namespace
}  // namespace lathe
