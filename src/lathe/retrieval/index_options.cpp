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
    t.add("analyzer", &C::analyzer, "Lexical terms: bigram (words + Hangul/CJK bigrams), words, trigram")
        .one_of({"bigram", "words", "trigram"});
    t.add("progress", &C::progress, "A line per indexed file on stderr");
    return t;
  }();
  return table;
}

const OptionTable<AugmentCommandOptions>& index_augment_options_table() {
  using C = AugmentCommandOptions;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("index");
    t.add("index", &C::index, "Index directory (from lathe index build)").path().needed();
    t.add("data", &C::data, "Training records: a .jsonl, or a prepared dataset directory (its train split)").path().needed();
    t.add("output", &C::output, "Augmented records .jsonl").path().needed();
    t.add("k", &C::k, "Passages in each augmented prompt").range(1, 50);
    t.add("distractor_fraction", &C::distractor_fraction,
          "Share of augmented records whose passages are the ones ranked below the top k (context without the answer)")
        .range(0, 1);
    t.add("keep_plain", &C::keep_plain, "Keep each original record too, so the adapter also answers without retrieval");
    t.add("seed", &C::seed, "Seed of the top-k / distractor draw").min(0);
    t.add("rag_template", &C::rag_template, "Prompt template file with {context} and {question} (default layout: docs/retrieval.md)")
        .path();
    return t;
  }();
  return table;
}

const OptionTable<RetrievalSection>& retrieval_section_table() {
  using C = RetrievalSection;
  static const OptionTable<C> table = [] {
    OptionTable<C> t("retrieval");
    const auto& b = index_build_options_table();
    t.add_like(*b.find("inputs"), "inputs", [](C& c) -> auto& { return c.build.inputs; });
    t.add_like(*b.find("chunk_tokens"), "chunk_tokens", [](C& c) -> auto& { return c.build.chunk_tokens; });
    t.add_like(*b.find("overlap"), "overlap", [](C& c) -> auto& { return c.build.overlap; });
    t.add_like(*b.find("encoder"), "encoder", [](C& c) -> auto& { return c.build.encoder; });
    t.add_like(*b.find("analyzer"), "analyzer", [](C& c) -> auto& { return c.build.analyzer; });
    const auto& a = index_augment_options_table();
    t.add_like(*a.find("k"), "k", [](C& c) -> auto& { return c.k; });
    t.add_like(*a.find("rag_template"), "rag_template", [](C& c) -> auto& { return c.rag_template; });
    t.add("train", &C::train, "Train on records with retrieved context (retrieval-augmented fine-tuning)");
    t.add_like(*a.find("distractor_fraction"), "distractor_fraction", [](C& c) -> auto& { return c.distractor_fraction; });
    t.add_like(*a.find("keep_plain"), "keep_plain", [](C& c) -> auto& { return c.keep_plain; });
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
    return t;
  }();
  return table;
}

}  // namespace lathe::retrieval
