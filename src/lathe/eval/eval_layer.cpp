// The eval layer: test cases and assertions, variant runs, perplexity/forgetting, the report and the gate.
