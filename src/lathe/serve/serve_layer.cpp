// The serve layer: the OpenAI-compatible HTTP server, its scheduler, and the feedback store.
