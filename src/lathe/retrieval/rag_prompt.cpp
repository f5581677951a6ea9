#include "lathe/retrieval/rag_prompt.h"

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"

namespace lathe::retrieval {

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

}  // namespace

RagPrompt RagPrompt::from_file(const std::string& path) {
  RagPrompt p;
  p.template_text = read_file(path);
  p.validate(path);
  return p;
}

void RagPrompt::validate(const std::string& origin) const {
  if (template_text.empty()) return;
  for (const char* ph : {"{context}", "{question}"})
    if (template_text.find(ph) == std::string::npos)
      fail("retrieval", "{}: the RAG prompt template has no {} placeholder", origin, ph);
}

std::string format_context(const std::vector<Hit>& hits) {
  std::string c;
  for (size_t i = 0; i < hits.size(); i++) {
    if (i) c += "\n\n";
    c += fmt::format("[{}] {}\n{}", i + 1, hits[i].source, hits[i].text);
  }
  return c;
}

std::string rag_user_message(const std::string& question, const std::vector<Hit>& hits, const RagPrompt& p) {
  if (hits.empty()) return question;
  std::string context = format_context(hits);
  if (p.template_text.empty())
    return "Answer the question using the passages below. Cite passages as [1], [2].\n\n" + context +
           "\n\nQuestion: " + question;
  // {question} first: a question that itself contains "{context}" must stay as typed.
  std::string out = p.template_text;
  const std::string mark = "\x01lathe-context\x01";
  replace_all(out, "{context}", mark);
  replace_all(out, "{question}", question);
  replace_all(out, mark, context);
  return out;
}

}  // namespace lathe::retrieval
