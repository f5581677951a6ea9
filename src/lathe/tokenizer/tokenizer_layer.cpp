// The tokenizer layer: HF tokenizer.json and GGUF vocabularies, chat templates. Depends on core and
// formats only; model and tokenizer never include each other.
