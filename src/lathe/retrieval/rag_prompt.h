// The one prompt layout for retrieval-augmented answers, shared by `lathe eval` (rag variants),
// training records with retrieved context, and `lathe serve` with an index, so a model is trained,
// judged and served on the same text. The retrieved passages go into the user's turn (every chat
// template has one; not all have a system turn), numbered for citation:
//
//   Answer the question using the passages below. Cite passages as [1], [2].
//
//   [1] docs/02-leave-ko.md:6
//   ## 연차 휴가 ...
//
//   [2] ...
//
//   Question: 연차 휴가는 며칠인가요?
//
// A user template replaces it: any text with {context} and {question}; {context} is the numbered
// passages as above. docs/retrieval.md documents both.
#pragma once
#include <string>
#include <vector>

#include "lathe/retrieval/index.h"

namespace lathe::retrieval {

struct RagPrompt {
  std::string template_text;  // empty: the default layout; else must contain {context} and {question}
  static RagPrompt from_file(const std::string& path);  // reads and validates a template file
  void validate(const std::string& origin) const;       // throws "[retrieval] ORIGIN: ..." naming the missing placeholder
};

// "[1] SOURCE\nTEXT\n\n[2] ..." (no trailing blank line).
std::string format_context(const std::vector<Hit>& hits);
// The user message for `question` with `hits` as context; with no hits the question alone (a
// retrieval that found nothing must not look like an empty context block).
std::string rag_user_message(const std::string& question, const std::vector<Hit>& hits, const RagPrompt& p = {});

}  // namespace lathe::retrieval
