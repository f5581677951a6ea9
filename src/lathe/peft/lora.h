// LoRA with PEFT semantics: y = W x + scaling · B(A(dropout(x))), scaling = alpha / r (or
// alpha / √r with use_rslora); A [r, in] Kaiming-uniform (bound 1/√in), B [out, r] zero.
// Adapters load from and save to PEFT's directory layout (REFERENCE.md §2.1), so an adapter
// trained here loads in PEFT / vLLM / llama.cpp's converter and one trained there loads here.
// QLoRA is the same adapter over an NF4 base (the base weight's dtype decides, in linear.cpp).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lathe/model/linear.h"
#include "lathe/model/model.h"
#include "lathe/core/param.h"

namespace lathe {

struct LoraConfig {
  int r = 8;
  float alpha = 16.0f;
  float dropout = 0.0f;
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};  // or {"all-linear"}
  bool use_rslora = false;
  float scaling() const;
  // Whether the projection `id` of a model of config `mc` is adapted (its PEFT module name, or all-linear).
  bool targets(const ModelConfig& mc, LinearId id) const;
};

// Parses "q_proj,v_proj" / "all-linear"; throws naming an unknown module (a name no family has;
// LoraAdapter checks each against the model's own projections).
std::vector<std::string> parse_target_modules(const std::string& s);

class LoraLinear final : public LinearAdapter {
 public:
  LoraLinear(std::string prefix, int in, int out, const LoraConfig& cfg, int module_index);
  void forward(const float* x, float* y, int T, const AdapterContext& ctx) override;
  void backward(const float* x, const float* dy, float* dx, int T, const AdapterContext& ctx) override;
  Param A, B;  // A [r, in], B [out, r]; names are PEFT's
  float scaling;

 private:
  const float* dropped(const float* x, int T, const AdapterContext& ctx);  // x or dropout(x)
  int in_, out_, r_, module_index_;
  float dropout_;
  std::vector<float> xd_, h_, dh_;  // scratch: dropout(x) [T,in], h = xd A^T [T,r], dh [T,r]
};

class LoraAdapter {
 public:
  // Fresh adapter: A Kaiming-uniform from `seed`, B zero.
  static std::unique_ptr<LoraAdapter> create(const ModelConfig& mc, const LoraConfig& cfg, uint64_t seed);
  // A PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
  static std::unique_ptr<LoraAdapter> load_peft(const std::string& dir, const ModelConfig& mc);
  void save_peft(const std::string& dir, const std::string& base_model) const;
  // W += scaling · B A on every targeted weight (the model must own f32 copies, not mapped views).
  void merge_into(Model& m) const;

  const LoraConfig& config() const { return cfg_; }
  const AdapterSet& adapters() const { return set_; }
  ParamList params();

 private:
  void build(const ModelConfig& mc);
  LoraConfig cfg_;
  ModelConfig mc_;  // the model it was built for (module names in save_peft)
  std::vector<std::unique_ptr<LoraLinear>> linears_;
  AdapterSet set_;
};

}  // namespace lathe
