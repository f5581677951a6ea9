// The records layer: what a training record means. Shapes, the mapping to messages, prompt
// extraction and record texts (record_shape.h); token ids, labels and their validation
// (token_labels.h); rendering with the chat template and loss masks (record_format.h). Used by data,
// train, eval and serve alike. Depends on the tokenizer and chat layers.
