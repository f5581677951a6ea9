// IA³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
// In-Context Learning") with PEFT's IA3Config semantics: one learned vector `ia3_l` per targeted
// projection, initialised to ones. A feed-forward module (feedforward_modules, a subset of
// target_modules) scales its input, y = W (x ⊙ l), with ia3_l of shape [1, in]; any other module
// scales its output, bias included, y = (W x + b) ⊙ l, with ia3_l of shape [out, 1]. The scaling
// itself happens in linear_forward / linear_backward (the projection hook); this file holds the
// vectors, their PEFT layout and the merge.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lathe/core/param.h"
#include "lathe/model/linear.h"
#include "lathe/model/model.h"

namespace lathe {

struct IA3Config {
  // PEFT's defaults for Llama-style models (TRANSFORMERS_MODELS_TO_IA3_*_MODULES_MAPPING).
  std::vector<std::string> target_modules = {"k_proj", "v_proj", "down_proj"};
  std::vector<std::string> feedforward_modules = {"down_proj"};
  bool targets(const ModelConfig& mc, LinearId id) const;
  bool feedforward(const ModelConfig& mc, LinearId id) const;
};

class IA3Linear final : public LinearAdapter {
 public:
  IA3Linear(std::string name, int size, bool feedforward);
  void forward(const float*, float*, int, const AdapterContext&) override {}  // all in the scale
  void backward(const float*, const float*, float*, int, const AdapterContext&) override {}
  const float* input_scale() const override { return feedforward_ ? l.value.f32() : nullptr; }
  const float* output_scale() const override { return feedforward_ ? nullptr : l.value.f32(); }
  float* scale_grad() override { return l.grad.f32(); }
  bool feedforward() const { return feedforward_; }
  Param l;  // ia3_l: [1, in] (feed-forward) or [out, 1]

 private:
  bool feedforward_;
};

class IA3Adapter {
 public:
  // Fresh adapter: every vector ones (the base model's outputs unchanged).
  static std::unique_ptr<IA3Adapter> create(const ModelConfig& mc, const IA3Config& cfg);
  static std::unique_ptr<IA3Adapter> load_peft(const std::string& dir, const ModelConfig& mc);
  void save_peft(const std::string& dir, const std::string& base_model) const;
  // Exact merge: W columns *= l (feed-forward) or W rows and bias *= l (the model must own f32 weights).
  void merge_into(Model& m) const;

  const IA3Config& config() const { return cfg_; }
  const AdapterSet& adapters() const { return set_; }
  ParamList params();

 private:
  void build(const ModelConfig& mc);
  IA3Config cfg_;
  ModelConfig mc_;
  std::vector<std::unique_ptr<IA3Linear>> linears_;
  AdapterSet set_;
};

}  // namespace lathe
