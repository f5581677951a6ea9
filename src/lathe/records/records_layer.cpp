// The records layer: what a training record means. Shapes, the mapping to messages, rendering with
// the chat template, loss masks and validation, used by data, train, eval and serve alike. Depends
// on the tokenizer and chat layers.
