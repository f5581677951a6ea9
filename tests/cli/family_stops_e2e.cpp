// Each family stops where its turn ends, with its own chat template and the eos ids its files declare
// as the real models ship them: Gemma 3 (generation_config [<eos>, <end_of_turn>]), Gemma 2 without a
// generation_config (the template's <end_of_turn> alone), Phi-4-mini ([<|end|>, <|endoftext|>]),
// SmolLM3 (<|im_end|>) and EXAONE 3.5 / 4.0 ([|endofturn|]).
//
// A tiny random model of the family (init-model) first generates freely; the tokenizer built for it
// then puts the family's end-of-turn token at an id that free run produced, so `lathe generate`
// (text prompt and, where the files declare it, prompt ids) must stop right there. The same model
// directory gives serve's stops and the training loss mask: the assistant's content plus the
// end-of-turn token, nothing else.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lathe/chat/chat_template.h"
#include "lathe/core/file_io.h"
#include "lathe/records/record_format.h"
#include "lathe/serve/chat_stops.h"
#include "lathe/tokenizer/stop_tokens.h"
#include "lathe/tokenizer/tokenizer.h"
#include "test_util.h"

namespace {

using json = nlohmann::ordered_json;
using lathe::test::run_lathe;

struct FamilyStop {
  const char* arch;
  const char* flags;     // init-model keys of the family
  const char* tmpl;      // its chat template in tests/data/chat_templates/templates.json
  const char* bos;       // tokenizer_config bos_token ("" = none)
  const char* eos;       // tokenizer_config eos_token
  const char* eot;       // the token that ends an assistant turn (may be the eos)
  const char* gen_eos;   // generation_config.json eos_token_id: "", "eos,eot" or "eot,eos"
};

const FamilyStop kFamilies[] = {
    {"gemma3", "--sliding-window 4 --sliding-window-pattern 2", "gemma3", "<bos>", "<eos>", "<end_of_turn>", "eos,eot"},
    {"gemma2", "--sliding-window 4", "gemma2", "<bos>", "<eos>", "<end_of_turn>", ""},
    {"phi3", "--partial-rotary-factor 0.5", "phi4-mini", "", "<|endoftext|>", "<|end|>", "eot,eos"},
    {"smollm3", "--no-rope-layer-interval 2", "smollm3", "", "<|im_end|>", "<|im_end|>", "eot"},
    {"exaone", "", "exaone3.5", "[BOS]", "[|endofturn|]", "[|endofturn|]", "eot"},
    {"exaone4", "--sliding-window 4 --sliding-window-pattern 2", "exaone4", "[BOS]", "[|endofturn|]", "[|endofturn|]", ""},
};

void PrintTo(const FamilyStop& f, std::ostream* os) { *os << f.arch << " (" << f.tmpl << ")"; }

constexpr int kVocab = 96;

// A plain character of the test vocabulary: id k is U+4E00 + k (one CJK character, three bytes).
std::string cjk(int id) {
  char32_t c = 0x4E00 + char32_t(id);
  std::string s;
  s += char(0xE0 | (c >> 12));
  s += char(0x80 | ((c >> 6) & 0x3F));
  s += char(0x80 | (c & 0x3F));
  return s;
}

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

class FamilyStops : public ::testing::TestWithParam<FamilyStop> {};

TEST_P(FamilyStops, GenerateServeAndLossMaskEndAtTheFamilysEndOfTurn) {
  const FamilyStop& f = GetParam();
  lathe::test::TempDir dir;
  const std::string base = dir / "model";
  std::string out;
  ASSERT_EQ(run_lathe(std::string("init-model --arch ") + f.arch + " " + f.flags +
                          " --hidden-size 64 --intermediate-size 96 --num-hidden-layers 2 --num-attention-heads 4"
                          " --num-key-value-heads 2 --head-dim 16 --initializer-range 1.0 --seed 3 --vocab-size " +
                          std::to_string(kVocab) + " --output " + base,
                      &out, true),
            0)
      << out;
  const std::vector<int> prompt = {40, 41, 42};
  const std::string gen = " --max-new-tokens 12 --json --threads 1";
  ASSERT_EQ(run_lathe("generate --model " + base + " --prompt-ids 40,41,42 --stop-ids 1000000" + gen, &out), 0) << out;
  const std::vector<int> free_run = json::parse(out)["ids"];
  ASSERT_EQ(free_run.size(), 12u);

  // The end-of-turn token goes where the free run first produced a token it had not produced before
  // (after the first step when it can), so stopping there is visible against the 12 free tokens.
  size_t s = 0;
  for (size_t i = 1; i < free_run.size() && s == 0; i++)
    if (!contains(std::vector<int>(free_run.begin(), free_run.begin() + long(i)), free_run[i])) s = i;
  const int eot = free_run[s];
  const std::vector<int> want(free_run.begin(), free_run.begin() + long(s) + 1);
  std::vector<int> spare;  // ids neither the prompt nor the free run uses
  for (int id = 3; id < kVocab && spare.size() < 6; id++)
    if (!contains(free_run, id) && !contains(prompt, id)) spare.push_back(id);
  ASSERT_EQ(spare.size(), 6u);
  const bool eot_is_eos = std::string(f.eos) == f.eot;
  const int unk = spare[0], bos = spare[1], eos = eot_is_eos ? eot : spare[2];
  const int user_char = spare[3], answer1 = spare[4], answer2 = spare[5];

  // tokenizer.json: BPE over single characters (no merges); the family's specials at their ids,
  // template text outside the vocabulary becomes <unk>.
  std::map<int, std::string> special = {{unk, "<unk>"}, {eos, f.eos}, {eot, f.eot}};
  if (*f.bos) special[bos] = f.bos;
  auto piece = [&](int id) { return special.count(id) ? special[id] : cjk(id); };
  json vocab = json::object(), added = json::array();
  for (int id = 0; id < kVocab; id++) vocab[piece(id)] = id;
  for (auto& [id, content] : special)
    added.push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  json tj = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
             {"normalizer", nullptr}, {"pre_tokenizer", nullptr}, {"post_processor", nullptr}, {"decoder", nullptr},
             {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"},
                        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", true},
                        {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", vocab},
                        {"merges", json::array()}}}};
  std::ofstream(dir / "model/tokenizer.json") << tj.dump(1);
  std::ifstream tf(lathe::test::source_path("tests/data/chat_templates/templates.json"));
  const json templates = json::parse(tf);
  json tc = {{"eos_token", f.eos}, {"unk_token", "<unk>"}, {"add_bos_token", false},
             {"chat_template", templates[f.tmpl]["template"]}};
  if (*f.bos) tc["bos_token"] = f.bos;
  std::ofstream(dir / "model/tokenizer_config.json") << tc.dump(1);
  // config.json: the family's eos (Gemma 3 lists both, as its config does); generation_config as shipped.
  json cfg = json::parse(lathe::read_file(base + "/config.json"));
  cfg["eos_token_id"] = std::string(f.arch) == "gemma3" ? json::array({eos, eot}) : json(eos);
  cfg["bos_token_id"] = bos;
  std::ofstream(dir / "model/config.json") << cfg.dump(1);
  const std::string gen_eos = f.gen_eos;
  if (!gen_eos.empty()) {
    json ids = gen_eos == "eos,eot" ? json::array({eos, eot}) : gen_eos == "eot,eos" ? json::array({eot, eos}) : json(eot);
    std::ofstream(dir / "model/generation_config.json") << json{{"bos_token_id", bos}, {"eos_token_id", ids}}.dump(1);
  }

  // generate with a text prompt: the tokenizer's eos, the declared ids and the template's marker.
  std::string text;
  for (int id : prompt) text += piece(id);
  ASSERT_EQ(run_lathe("generate --model " + base + " --prompt '" + text + "'" + gen, &out, true), 0) << out;
  EXPECT_EQ(json::parse(out)["ids"].get<std::vector<int>>(), want) << f.arch << ": end-of-turn id " << eot;
  // generate with prompt ids: what generation_config / config declare (transformers' generate()).
  if (!gen_eos.empty() || eot_is_eos) {
    ASSERT_EQ(run_lathe("generate --model " + base + " --prompt-ids 40,41,42" + gen, &out), 0) << out;
    EXPECT_EQ(json::parse(out)["ids"].get<std::vector<int>>(), want) << f.arch << ": end-of-turn id " << eot;
  }

  // serve's stops: the end-of-turn id, also where only the template names it (Gemma 2 here).
  auto tok = lathe::Tokenizer::load(base);
  lathe::serve::ChatStops stops = lathe::serve::chat_stops(*tok, lathe::chat_template_config_load(base).source,
                                                            lathe::declared_eos_ids(base));
  EXPECT_TRUE(std::binary_search(stops.ids.begin(), stops.ids.end(), eot)) << f.arch;
  EXPECT_TRUE(stops.texts.empty()) << f.arch;
  if (gen_eos.empty() && !eot_is_eos) {
    const auto eos_ids = tok->eos_ids();
    EXPECT_FALSE(std::find(eos_ids.begin(), eos_ids.end(), eot) != eos_ids.end()) << "the template alone names it";
  }

  // The loss mask of a conversation: the assistant's content and the end-of-turn token, nothing else
  // (not the user's turn, not the headers, not Phi's trailing eos or EXAONE 4's empty think block).
  lathe::RecordEncoder enc = lathe::RecordEncoder::for_model(*tok, base, "", {});
  json msgs = json::array({{{"role", "user"}, {"content", cjk(user_char)}},
                           {{"role", "assistant"}, {"content", cjk(answer1) + cjk(answer2)}}});
  lathe::EncodedRecord e = enc.encode_messages(msgs);
  std::vector<int32_t> loss;
  for (int32_t l : e.labels)
    if (l != lathe::kIgnoreIndex) loss.push_back(l);
  EXPECT_EQ(loss, (std::vector<int32_t>{answer1, answer2, eot})) << f.arch << ": " << e.text;
  EXPECT_TRUE(e.ends_with_eos) << f.arch;
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyStops, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) { return std::string(info.param.arch); });

}  // namespace
