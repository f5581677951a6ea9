// Where generation stops for a model, decided once for `generate`, `serve` and `eval`: the EOS ids
// the model declares (tokenizer_config's eos_token, generation_config.json's eos_token_id list, the
// config's eos_token_id, which may be a list too) plus the end-of-turn marker of its chat template.
// Families differ in which of these carries the end of a turn: Gemma's eos is <eos> and its turns end
// with <end_of_turn> (generation_config [1, 106] in Gemma 3), Phi-4-mini's eos is <|endoftext|> and its
// turns end with <|end|>, SmolLM3 and EXAONE make the end-of-turn token (<|im_end|>, [|endofturn|])
// the eos itself. A directory that lost its generation_config (an export, a hand-made copy) still
// stops at the turn's end because the template's marker is looked up in the vocabulary.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lathe {

class Tokenizer;

// End-of-turn markers of the chat template families lathe knows: ChatML/Qwen/SmolLM (<|im_end|>),
// Llama 3 (<|eot_id|>), Phi-3/Phi-4 (<|end|>), Gemma (<end_of_turn>), EXAONE ([|endofturn|]),
// GPT-style and Llama 3 base (<|endoftext|>, <|end_of_text|>), Llama 2/Mistral (</s>), Command R.
std::span<const char* const> end_of_turn_markers();

struct StopTokens {
  std::vector<int32_t> ids;        // sorted, unique
  std::vector<std::string> texts;  // markers the template writes that are not one special token
};

// tok.eos_ids(), the ids of `declared_eos` (a model's config/generation_config ids, -1 entries
// ignored), and every end-of-turn marker `template_source` writes: its id when the vocabulary has it
// as one special token, else the marker as a stop string.
StopTokens stop_tokens(const Tokenizer& tok, const std::string& template_source,
                       std::span<const int32_t> declared_eos = {});

// The EOS ids a model directory declares without its tokenizer, as transformers' generate() reads
// them: generation_config.json's eos_token_id, then config.json's (each an id or a list), without
// duplicates. Empty for a file (GGUF) or when neither says. Throws lathe::Error naming the file and
// field for a malformed entry.
std::vector<int32_t> declared_eos_ids(const std::string& model_path);

}  // namespace lathe
