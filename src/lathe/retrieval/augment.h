// Retrieval-augmented fine-tuning records: a model served with retrieved passages in its prompt is
// best trained on prompts of that shape. Each conversational record's last user turn retrieves from
// the index and is rewritten with rag_prompt.h's layout (the one eval and serve use). Most records
// get the question's top-k passages (the context that usually holds the answer); a fraction gets
// only passages ranked below them ("distractors", the context that usually does not), so the model
// learns to use the passages when they help and to answer from what it learned when they do not. With
// keep_plain the original record is kept too, so the same adapter also answers without retrieval.
// Text and pre-tokenized records pass through unchanged, counted.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/retrieval/index.h"
#include "lathe/retrieval/rag_prompt.h"

namespace lathe::retrieval {

struct AugmentOptions {
  int k = 3;
  double distractor_fraction = 0.2;
  bool keep_plain = true;
  uint64_t seed = 0;
  RagPrompt prompt;
};

struct AugmentReport {
  size_t records_in = 0, conversational = 0, with_top_passages = 0, with_distractors = 0, without_hits = 0,
         passed_through = 0, written = 0;
  nlohmann::ordered_json to_json() const;
};

// `records`: JSON objects in any record shape; `wheres` names them for errors ("file:line").
// Output order: for each input record, the plain copy (keep_plain) then the augmented one.
std::vector<nlohmann::json> augment_records(const Index& index, const std::vector<nlohmann::json>& records,
                                            const std::vector<std::string>& wheres, const AugmentOptions& o,
                                            AugmentReport& report);

// Reads a records .jsonl (or a dataset directory's train split), writes the augmented .jsonl atomically.
AugmentReport augment_file(const Index& index, const std::string& input, const std::string& output,
                           const AugmentOptions& o);

}  // namespace lathe::retrieval
