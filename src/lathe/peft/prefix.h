// Prefix tuning with PEFT's PrefixTuningConfig semantics (REFERENCE.md §2.2). The trained object
// is a matrix M [P, L·2·token_dim] (token_dim = head_dim · num_key_value_heads, so prefixes fit
// grouped-query attention): either a plain embedding, or, with prefix_projection, the output of
// Embedding[P, token_dim] → Linear(token_dim, E) → tanh → Linear(E, L·2·token_dim). Viewed as
// [P, L·2, Hkv, D], layer l takes index 2l as its key prefix and 2l+1 as its value prefix. PEFT
// saves M itself (post-MLP) as `prompt_embeddings`; so do we.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lathe/core/param.h"
#include "lathe/model/linear.h"
#include "lathe/model/model.h"

namespace lathe {

struct PrefixConfig {
  int num_virtual_tokens = 20;
  bool prefix_projection = false;
  int encoder_hidden_size = 0;  // 0 = token_dim
};

class PrefixAdapter {
 public:
  static std::unique_ptr<PrefixAdapter> create(const ModelConfig& mc, const PrefixConfig& cfg, uint64_t seed);
  static std::unique_ptr<PrefixAdapter> load_peft(const std::string& dir, const ModelConfig& mc);
  void save_peft(const std::string& dir, const std::string& base_model);

  // Recomputes M and the per-layer key/value prefixes from the parameters (call after each update).
  void refresh();
  // Zeroes the per-layer prefix gradients (call before a step's micro-batches).
  void zero_prefix_grads();
  // Turns the accumulated per-layer prefix gradients into parameter gradients (call after backward).
  void backward();

  const AdapterSet& adapters() const { return set_; }
  ParamList params();
  const PrefixConfig& config() const { return cfg_; }
  int token_dim() const { return token_dim_; }
  Param* param(const std::string& name);

 private:
  void init_layout(const ModelConfig& mc);
  PrefixConfig cfg_;
  int layers_ = 0, token_dim_ = 0, P_ = 0, E_ = 0, kv_heads_ = 0;
  // Without projection: prompt_embeddings [P, L*2*TD]. With projection: embedding [P, TD],
  // transform.0 (W1 [E, TD], b1 [E]), transform.2 (W2 [L*2*TD, E], b2 [L*2*TD]).
  std::vector<std::unique_ptr<Param>> params_;
  std::vector<float> M_, hidden_;     // M [P, L*2*TD]; tanh activations [P, E] (projection)
  std::vector<std::vector<float>> k_, v_, dk_, dv_;  // per layer [P, TD]
  AdapterSet set_;
};

}  // namespace lathe
