// The chat layer: conversations rendered to text. A Jinja interpreter (lexer, parser, evaluator,
// the builtins chat templates use) and ChatTemplate (HF / GGUF templates, the built-in ones, stop
// strings). Depends on core and formats only; it never tokenizes.
