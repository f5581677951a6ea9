// libFuzzer target for model config parsing and validation (security review items 1, 5, 14).
// The input is config.json text, parsed as Model::load_hf_dir does, then config_from_hf_json (which
// runs config_validate). Any input must either be refused with lathe::Error or give a config that
// (a) satisfies the documented caps, (b) survives the arithmetic the loaders do with it, and
// (c) round-trips through config_to_hf_json unchanged. Inputs starting with 'T' are tokenizer.json
// text instead (the rest of the input), for the tokenizer's validation step.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lathe/core/error.h"
#include "lathe/model/config.h"
#include "lathe/model/generate.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "model_config fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

void fuzz_config(std::string_view text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {  // the loader reports these as invalid JSON
    return;
  }
  lathe::ModelConfig c;
  try {
    c = lathe::config_from_hf_json(j, "fuzz/config.json");
  } catch (const lathe::Error&) {
    return;
  }
  check(c.vocab_size >= 1 && c.vocab_size <= lathe::kMaxVocabSize, "vocab_size in range");
  check(c.hidden_size >= 1 && c.hidden_size <= lathe::kMaxHiddenSize, "hidden_size in range");
  check(c.num_hidden_layers >= 1 && c.num_hidden_layers <= lathe::kMaxLayers, "layers in range");
  check(c.num_attention_heads % c.num_key_value_heads == 0, "kv heads divide heads");
  check(c.max_position_embeddings >= 1 && c.max_position_embeddings <= lathe::kMaxContextLength, "context in range");
  check(c.eos_token_id < c.vocab_size && c.bos_token_id < c.vocab_size, "special ids in vocab");
  check(c.rms_norm_eps > 0 && c.rope_theta > 0, "eps and theta positive");
  (void)lathe::config_weight_bytes_f32(c, "fuzz");
  // The generation bound must never exceed the context, whatever is asked.
  try {
    lathe::GenerationBudget b = lathe::bounded_generation_length(c, 1, int64_t(1) << 40);
    check(int64_t(b.max_new_tokens) + 1 <= c.max_position_embeddings, "generation bounded by context");
  } catch (const lathe::Error&) {
  }
  // What lathe writes back (export, fine-tuned models) must read back as the same config.
  nlohmann::json out = lathe::config_to_hf_json(c);
  lathe::ModelConfig again = lathe::config_from_hf_json(nlohmann::json::parse(out.dump()), "fuzz/roundtrip.json");
  check(lathe::config_to_hf_json(again) == out, "config round-trips");
}

void fuzz_tokenizer(std::string_view text) {
  try {
    auto tok = lathe::Tokenizer::from_json(text, "fuzz/tokenizer.json");
    check(tok->vocab_size() >= 1, "tokenizer vocabulary not empty");
    auto ids = tok->encode("Hello world <s> 123", true);
    for (int32_t id : ids) check(id >= 0 && id < tok->vocab_size(), "encoded id inside the vocabulary");
    tok->decode(ids);
  } catch (const lathe::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  if (!s.empty() && s[0] == 'T')
    fuzz_tokenizer(s.substr(1));
  else
    fuzz_config(s);
  return 0;
}
