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
  // DoRA (PEFT use_dora): y = m / ||W + s·B A||_row · (W x + s·B A x) + bias, a magnitude vector m
  // [out] per module (peft/dora.cpp).
  bool use_dora = false;
  // PEFT init_lora_weights="gaussian": A ~ N(0, (1/r)^2) instead of Kaiming-uniform (B = 0 either way).
  bool init_gaussian = false;
  float scaling() const;
  // Whether the projection `id` of a model of config `mc` is adapted (its PEFT module name, or all-linear).
  bool targets(const ModelConfig& mc, LinearId id) const;
};

// N of init_lora_weights "pissa_niter_N" (N: 1-4 digits), else -1.
int pissa_niter(const std::string& method);

// Parses "q_proj,v_proj" / "all-linear"; throws naming an unknown module (a name no family has;
// LoraAdapter checks each against the model's own projections).
std::vector<std::string> parse_target_modules(const std::string& s);

class LoraLinear final : public LinearAdapter {
 public:
  LoraLinear(std::string prefix, int in, int out, const LoraConfig& cfg, int module_index);
  void forward(const float* x, float* y, int T, const AdapterContext& ctx) override;
  void backward(const float* x, const float* dy, float* dx, int T, const AdapterContext& ctx) override;
  Param A, B;  // A [r, in], B [out, r]; names are PEFT's
  Param magnitude;  // DoRA only: lora_magnitude_vector [out]; empty otherwise
  Tensor A0, B0;    // PiSSA / OLoRA: the initial factors (the saved adapter is converted with them)
  float scaling;
  bool dora() const { return !magnitude.name.empty(); }
  // DoRA: ||W + s·B A|| of each of the `out` rows of the base weight W [out, in] (f32, NF4 or a
  // kernel format: the dequantized values), in f32 and cached until A, B or W change.
  const std::vector<float>& dora_row_norms(const Tensor& W);
  // DoRA: keep the current row norms while A and B change (the norm is detached from the graph, so
  // a finite-difference check of A's and B's gradients must hold it fixed).
  void dora_hold_norms(bool hold) { norm_held_ = hold; }
  // DoRA: W' = m / ||W + s·B A|| · (W + s·B A) of an f32 copy of the base weight [out, in].
  void dora_merge(float* W) const;

 private:
  const float* dropped(const float* x, int T, const AdapterContext& ctx);  // x or dropout(x)
  void dora_forward(const float* x, float* y, int T, const AdapterContext& ctx);
  void dora_backward(const float* x, const float* dy, float* dx, int T, const AdapterContext& ctx);
  bool holds_forward_h(const float* x, int T, const AdapterContext& ctx) const;
  void add_dropout_grad(const float* x, const float* xd, const std::vector<float>& dxd, float* dx) const;
  void backward_split(const float* x, const float* xd, const float* dy, float* dx, int T, const AdapterContext& ctx);
  int in_, out_, r_, module_index_;
  float dropout_;
  std::vector<float> xd_, h_, dh_;  // scratch: dropout(x) [T,in], h = xd A^T [T,r], dh [T,r]
  // h_ as the forward of training pass h_pass_ left it for input h_x_ of h_T_ rows: backward of
  // the same pass and input reuses it instead of recomputing x A^T (0: nothing to reuse).
  uint64_t h_pass_ = 0;
  const float* h_x_ = nullptr;
  int h_T_ = 0;
  // DoRA: the row norms and the A, B and W they were computed from (the cache key).
  std::vector<float> norm_, norm_A_, norm_B_;
  const void* norm_W_ = nullptr;
  bool norm_held_ = false;
};

class LoraAdapter {
 public:
  // Fresh adapter: A Kaiming-uniform from `seed`, B zero.
  static std::unique_ptr<LoraAdapter> create(const ModelConfig& mc, const LoraConfig& cfg, uint64_t seed);
  // A PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
  static std::unique_ptr<LoraAdapter> load_peft(const std::string& dir, const ModelConfig& mc);
  void save_peft(const std::string& dir, const std::string& base_model) const;
  // W += scaling · B A on every targeted weight (the model must own f32 copies, not mapped views);
  // DoRA: W = m / ||W + s·B A|| · (W + s·B A).
  void merge_into(Model& m) const;
  // DoRA: m = ||W + s·B A|| per row, as PEFT initialises the magnitude (B = 0: the row norms of W;
  // of the dequantized NF4 weight for QLoRA), so the fresh adapter leaves the model unchanged.
  void init_dora_magnitude(const Model& m);
  // init_lora_weights "pissa" | "pissa_niter_N" | "olora" (peft/lora_init.cpp): A and B from the SVD / QR of each targeted
  // base weight, and W_res = W − s·B A written into `m` (f32 weights). save_peft then writes the adapter
  // converted for the untouched base, as PEFT's path_initial_model_for_weight_conversion does:
  // ΔW = s(B A − B0 A0) as a rank-2r LoRA [A; A0], [B, −B0] with alpha doubled (√2· with rsLoRA).
  // "pissa_niter_N": the randomized SVD with N subspace iterations, its Gaussian sketch from `seed`.
  void init_from_base(Model& m, const std::string& method, uint64_t seed = 0);
  // init_lora_weights "loftq" (PEFT's loftq_init, 4 bits, peft/lora_init.cpp): every targeted f32 weight of
  // `m` becomes Q, the plain-absmax NF4 of W − L R after `iters` alternations of quantizing and an SVD of
  // the quantization error, and with `set_factors` A = R, B = L (PEFT does not divide them by the
  // scaling). Without it only the base is rebuilt (a saved LoftQ adapter over its original model). The
  // other projections are left for quantize_model_nf4. save_peft then records init_lora_weights "loftq"
  // and loftq_config {loftq_bits 4, loftq_iter}: the adapter belongs to Q, which lathe's loaders rebuild.
  void init_loftq(Model& m, int iters, bool set_factors);
  // loftq_iter of a LoftQ adapter (created by init_loftq or loaded with init_lora_weights "loftq"), else 0.
  int loftq_iter() const { return loftq_iter_; }

  const LoraConfig& config() const { return cfg_; }
  const AdapterSet& adapters() const { return set_; }
  ParamList params();

 private:
  void build(const ModelConfig& mc);
  LoraConfig cfg_;
  std::string init_method_;  // "pissa" / "olora" when init_from_base ran
  int loftq_iter_ = 0;
  ModelConfig mc_;  // the model it was built for (module names in save_peft)
  std::vector<std::unique_ptr<LoraLinear>> linears_;
  AdapterSet set_;
};

}  // namespace lathe
