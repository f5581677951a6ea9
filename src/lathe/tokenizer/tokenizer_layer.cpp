// The tokenizer layer: HF tokenizer.json and GGUF vocabularies, BPE training. Depends on core,
// formats and chat (a trained tokenizer carries a chat template); model and tokenizer never include
// each other.
