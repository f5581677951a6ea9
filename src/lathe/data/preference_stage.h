// `lathe data prepare` on preference records (record_shape.h: TRL's {"prompt","chosen","rejected"},
// KTO's {"prompt","completion","label"} and their pre-tokenized forms): the pieces that differ from
// SFT records. Mapping (mapping.h) stores them with an explicit prompt; cleaning and personal data
// treat every prompt and answer text like a message; these decide duplicates, split groups and
// token lengths. Output: <split>.records.jsonl of the stored records, no token shards (docs/data.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/data/record.h"

namespace lathe {
class Tokenizer;
}

namespace lathe::data {

struct FormatOptions;

// What dedup compares (before dedup_normalize): the prompt text alone when `prompt_only`
// (dedup.preference_key: prompt), otherwise the prompt, every answer and a KTO label (pair), so
// several different pairs of one prompt are not duplicates. Message lists count by their contents
// joined by '\n'; pre-tokenized records by their ids.
std::string preference_dedup_text(const nlohmann::json& rec, bool prompt_only);

// Puts records that share a prompt (equal after dedup_normalize; pre-tokenized: equal prompt ids)
// into one split group, merged with any near-duplicate cluster a record already has: every record's
// `cluster` becomes the smallest index of its group, as assign_splits reads it. Returns how many
// records share their prompt with an earlier record.
size_t group_by_prompt(std::vector<Record>& recs);

// With a tokenizer: the token length of every sequence a trainer builds from each record (prompt +
// chosen, prompt + rejected, or prompt + completion; conversations rendered with the model's chat
// template, strings as one user and one assistant turn; pre-tokenized: the ids end to end). Records
// whose longest sequence exceeds max_seq_length (truncation: drop) or whose shortest is under
// min_tokens are dropped, as are records the template cannot render. `before`/`after` receive every
// sequence's length before and after truncation to max_seq_length. Without a tokenizer every record
// passes. Records are never encoded for storage.
StageCounts measure_preference_records(std::vector<Record>& recs, const FormatOptions& f, const Tokenizer* tok,
                                       std::vector<size_t>& before, std::vector<size_t>& after);

}  // namespace lathe::data
