// What varies between families' attention beyond shapes: the score scale (Gemma's
// query_pre_attn_scalar), logit soft-capping (Gemma 2) and a sliding window (Mistral, Gemma,
// Phi-3, EXAONE 4 local layers), and whether it is causal at all (decoders) or bidirectional
// (BERT-family encoders). The defaults are plain causal attention with 1/sqrt(D).
#pragma once

namespace lathe {

struct AttentionOpts {
  float scale = 0.0f;    // scores = scale * q.k; 0: 1/sqrt(D)
  float softcap = 0.0f;  // scores -> softcap * tanh(scores / softcap) before the softmax; 0: off
  int window = 0;        // query at position p sees keys p - window + 1 .. p; 0: all earlier keys
  bool causal = true;    // false: every query sees all S keys (encoders; forward only, window must be 0)
};

// First key a query at position `pos` sees.
inline int attention_first_key(const AttentionOpts& o, int pos) {
  return o.window > 0 && pos - o.window + 1 > 0 ? pos - o.window + 1 : 0;
}

}  // namespace lathe
