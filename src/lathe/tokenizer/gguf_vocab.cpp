// GGUF vocabularies (llama.cpp's tokenizer.ggml.* keys) turned into the same pipeline as tokenizer.json:
//   gpt2  -> the pre-tokenizer regexes named by tokenizer.ggml.pre, byte-level mapping, BPE over merges
//   llama -> SentencePiece: ' ' -> '▁' (+ leading '▁' when add_space_prefix), score-based merges,
//            <0xNN> byte fallback
// Control (3) and user-defined (4) tokens are added tokens, split out of the text first as HF does.
#include <map>

#include "lathe/core/error.h"
#include "lathe/formats/gguf.h"
#include "lathe/tokenizer/loader_internal.h"

namespace lathe {
namespace {

// Regexes of llama.cpp's pre-tokenizer types; a list is applied in order, each split Isolated.
const char* kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kCjkHangul = "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";

}  // namespace

std::vector<std::string> gguf_pre_regexes(const std::string& pre, bool* ignore_merges) {
  *ignore_merges = false;
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "smaug-bpe" || pre == "dbrx") {
    *ignore_merges = true;
    return {kLlama3};
  }
  if (pre == "qwen2" || pre == "qwen3") return {kQwen2};
  // DeepSeek LLM: cased letters (Lu/Ll/Lt ranges) as code points, so no editor NFC can fold a range end.
  if (pre == "deepseek-llm")
    return {"[\\r\\n]",
            "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"
            "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"
            "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}"
            "\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}"
            "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"
            "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"
            "\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
            "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
            "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
            "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-"
            "\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
            "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"
            "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
            "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-"
            "\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
            "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$", kCjkHangul, "\\p{N}+"};
  if (pre == "deepseek-coder") return {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkHangul, "\\p{N}"};
  if (pre == "falcon") return {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"};
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell")
    return {"\\p{N}", kGpt2};
  if (pre == "gpt-2" || pre == "gpt2" || pre == "phi-2" || pre == "mpt" || pre == "olmo" || pre == "gpt-neox" ||
      pre == "jina-es" || pre == "jina-de" || pre == "stablelm2" || pre == "poro-chat" || pre == "viking")
    return {kGpt2};
  if (pre == "default" || pre.empty())
    return {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"};
  return {};
}

void build_spm_model(tok::Pipeline& p, const std::vector<std::string>& tokens, std::vector<float> scores,
                     const std::vector<int64_t>& types, int32_t* unk, bool space_prefix) {
  if (*unk < 0)
    for (size_t i = 0; i < types.size(); i++)
      if (types[i] == 2) *unk = int32_t(i);
  // Byte tokens, control and unknown tokens never come out of merges; hide them from the model's map
  // except bytes (byte fallback looks them up by name).
  std::vector<std::string> model_vocab = tokens;
  for (size_t i = 0; i < types.size(); i++)
    if (types[i] == 3 || types[i] == 2 || types[i] == 5) model_vocab[i].clear();
  p.model = tok::make_spm_scores(std::move(model_vocab), std::move(scores), *unk);
  p.model->vocab = tokens;  // id -> text for decoding keeps every entry
  p.normalizer = tok::make_spm_normalizer(space_prefix);
  p.decoder = tok::make_spm_decoder(space_prefix);
}

void add_typed_tokens(tok::Pipeline& p, const std::vector<std::string>& tokens, const std::vector<int64_t>& types) {
  for (size_t i = 0; i < tokens.size(); i++) {
    if (types[i] != 3 && types[i] != 4) continue;  // control and user-defined tokens match as added tokens
    tok::AddedToken a;
    a.id = int32_t(i);
    a.content = tokens[i];
    a.special = types[i] == 3;
    a.normalized = false;
    p.added.push_back(std::move(a));
  }
  p.index_added_tokens();
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  std::string model = g.get_string("tokenizer.ggml.model", "");
  if (model.empty()) fail("tokenizer", "{}: no vocabulary (key 'tokenizer.ggml.model' missing)", path);
  std::vector<std::string> tokens = g.get_string_array("tokenizer.ggml.tokens");
  std::vector<int64_t> types;
  if (g.has("tokenizer.ggml.token_type")) types = g.get_int_array("tokenizer.ggml.token_type");
  types.resize(tokens.size(), 1);

  auto t = TokenizerLoader::make();
  tok::Pipeline& p = TokenizerLoader::pipeline(*t);
  // 64-bit reads range-checked before narrowing (-1 = none), so a huge id cannot wrap into the vocabulary.
  auto special_id = [&](const char* key) {
    int64_t v = g.get_int(key, -1);
    if (v == 0xFFFFFFFF) v = -1;  // llama.cpp writes "no token" (-1) as a u32
    if (v < -1 || v > tok::kMaxTokenId) fail("tokenizer", "{}: {} = {} is not a token id", path, key, v);
    return int32_t(v);
  };
  int32_t bos = special_id("tokenizer.ggml.bos_token_id");
  int32_t eos = special_id("tokenizer.ggml.eos_token_id");
  int32_t unk = special_id("tokenizer.ggml.unknown_token_id");
  int32_t pad = special_id("tokenizer.ggml.padding_token_id");

  if (model == "gpt2") {
    std::string pre = g.get_string("tokenizer.ggml.pre", "default");
    bool ignore_merges = false;
    auto regexes = gguf_pre_regexes(pre, &ignore_merges);
    if (regexes.empty())
      fail("tokenizer", "{}: tokenizer.ggml.pre '{}' is not a pre-tokenizer lathe knows", path, pre);
    std::vector<std::pair<std::string, std::string>> merges;
    for (auto& m : g.get_string_array("tokenizer.ggml.merges")) {
      size_t sp = m.find(' ');
      if (sp == std::string::npos) fail("tokenizer", "{}: tokenizer.ggml.merges: '{}' is not 'a b'", path, m);
      merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    tok::BpeOptions opt;
    opt.ignore_merges = ignore_merges;
    p.model = tok::make_bpe(tokens, merges, opt, path);
    p.pre_tokenizer = tok::make_regex_byte_level(regexes);
    p.decoder = tok::make_byte_level_decoder();
    if (unk < 0) unk = -1;
  } else if (model == "llama") {
    std::vector<float> scores;
    if (g.has("tokenizer.ggml.scores")) scores = g.get_float_array("tokenizer.ggml.scores");
    build_spm_model(p, tokens, std::move(scores), types, &unk, g.get_int("tokenizer.ggml.add_space_prefix", 1) != 0);
  } else {
    fail("tokenizer", "{}: tokenizer.ggml.model '{}' is not supported (gpt2 or llama)", path, model);
  }

  add_typed_tokens(p, tokens, types);
  p.vocab_size = int(tokens.size());
  bool add_bos = g.get_int("tokenizer.ggml.add_bos_token", model == "llama" ? 1 : 0) != 0;
  bool add_eos = g.get_int("tokenizer.ggml.add_eos_token", 0) != 0;
  if (add_bos && bos >= 0) p.prefix_ids = {bos};
  if (add_eos && eos >= 0) p.suffix_ids = {eos};
  p.has_post_processor = true;
  TokenizerLoader::set_special(*t, bos, eos, pad, unk);
  TokenizerLoader::set_chat_template(*t, g.get_string("tokenizer.chat_template", ""));
  if (g.has("tokenizer.ggml.eot_token_id") && special_id("tokenizer.ggml.eot_token_id") >= 0)
    TokenizerLoader::add_eos_ids(*t, {special_id("tokenizer.ggml.eot_token_id")});
  validate_tokenizer(*t, path);
  return t;
}

}  // namespace lathe
