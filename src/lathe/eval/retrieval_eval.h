// Retrieval in an evaluation: the passages each case's question retrieves (the same for every rag
// variant) and whether they hold the answer. A case's answer key is the value of its first
// `contains` / `icontains` assertion, or any value of its first `contains-any` (a case may also name
// the document the answer lives in with `source:`); a retrieval hit at rank r means the r-th passage
// is the first to contain a key value (Unicode-lowercased for icontains) or to come from that
// document. Cases with neither a key nor a source count as "no key" and stay out of hit@k.
#pragma once
#include <string>
#include <vector>

#include "lathe/eval/test_suite.h"
#include "lathe/retrieval/index.h"

namespace lathe::eval {

struct RetrievalKey {
  std::vector<std::string> values;  // any of them in a passage is a hit
  bool ignore_case = false;
  std::string source;               // a hit's file ending with this is a hit
  bool empty() const { return values.empty() && source.empty(); }
};

RetrievalKey retrieval_key(const EvalCase& c);
// 1-based rank of the first passage that holds the key; 0 when none does (or the key is empty).
int retrieval_hit_rank(const RetrievalKey& key, const std::vector<retrieval::Hit>& hits);

struct CaseRetrieval {
  std::string query;
  std::vector<retrieval::Hit> hits;
  bool has_key = false;
  int hit_rank = 0;  // 0: the key is in none of the passages
  double seconds = 0;
};

// The question a case retrieves with: its last user turn.
std::string retrieval_query(const EvalCase& c);
std::vector<CaseRetrieval> retrieve_cases(const retrieval::Index& index, const std::vector<EvalCase>& cases, int k);

// hit@j for j = 1..k over the cases with a key: fraction whose hit_rank is in [1, j].
std::vector<double> hit_at_k(const std::vector<CaseRetrieval>& r, int k);

}  // namespace lathe::eval
