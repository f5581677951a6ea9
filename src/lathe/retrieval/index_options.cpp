#include "lathe/retrieval/index_options.h"

namespace lathe::retrieval {

const OptionTable<BuildOptions>& index_build_options_table() {
  using C = BuildOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("index");
    t.add("inputs", &C::inputs, "Documents: files, directories or globs (MD/TXT/HTML/PDF/JSONL/CSV; repeatable)")
        .with_flag("--input").one_or_list().path().needed();
    t.add("output", &C::output, "Index directory (index.sqlite inside; rebuilt incrementally)").path().needed();
    t.add("chunk_tokens", &C::chunk_tokens, "Passage budget in tokens (overlap included)").min(8);
    t.add("overlap", &C::overlap, "Tokens of the previous passage repeated at the start of a continuing one").min(0);
    t.add("model", &C::model, "Model directory or tokenizer.json whose tokenizer counts tokens (else 3 characters = 1 token)")
        .path();
    t.add("encoder", &C::encoder, "Encoder model directory for dense search (BERT / XLM-RoBERTa); empty: BM25 only").path();
    t.add("query_prefix", &C::query_prefix,
          "Text put before each query for the encoder (e5: 'query: '); auto: the encoder's "
          "config_sentence_transformers.json prompts, else none");
    t.add("passage_prefix", &C::passage_prefix,
          "Text put before each passage for the encoder (e5: 'passage: '); auto: as for query_prefix");
    t.add("pooling", &C::pooling, "Encoder pooling: auto (the encoder's sentence-transformers Pooling, else mean), cls, mean")
        .one_of({"auto", "cls", "mean"});
    t.add("analyzer", &C::analyzer, "Lexical terms: bigram (words + Hangul/CJK bigrams), words, trigram")
        .one_of({"bigram", "words", "trigram"});
    t.add("progress", &C::progress, "A line per indexed file on stderr");
    return t;
  }();
  return table;
}

const OptionTable<SearchCommandOptions>& index_search_options_table() {
  using C = SearchCommandOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("index");
    t.add("index", &C::index, "Index directory (from lathe index build)").path().needed();
    t.add("query", &C::query, "Search text").needed();
    t.add("k", &C::k, "Passages to return").min(1).max(1000);
    t.add("mode", &C::mode, "Ranking: auto (hybrid when the index has vectors), bm25, dense, hybrid")
        .one_of({"auto", "bm25", "dense", "hybrid"});
    t.add("json", &C::json, "Print {\"hits\":[{text, source, score}]} as JSON");
    t.add("encoder", &C::encoder, "Encoder directory for the query (default: the one the index was built with)").path();
    return t;
  }();
  return table;
}

}  // namespace lathe::retrieval
