#include "lathe/peft/prefix.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/safetensors.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/peft/new_param.h"

namespace lathe {

void PrefixAdapter::init_layout(const ModelConfig& mc) {
  layers_ = mc.num_hidden_layers;
  kv_heads_ = mc.num_key_value_heads;
  token_dim_ = mc.head_dim * mc.num_key_value_heads;
  P_ = cfg_.num_virtual_tokens;
  E_ = cfg_.encoder_hidden_size > 0 ? cfg_.encoder_hidden_size : token_dim_;
  if (P_ <= 0) fail("prefix", "num_virtual_tokens must be positive, got {}", P_);
  const int64_t W = int64_t(layers_) * 2 * token_dim_;
  params_.clear();
  if (cfg_.prefix_projection) {
    params_.push_back(new_param("prompt_encoder.embedding.weight", {P_, token_dim_}));
    params_.push_back(new_param("prompt_encoder.transform.0.weight", {E_, token_dim_}));
    params_.push_back(new_param("prompt_encoder.transform.0.bias", {E_}, false));
    params_.push_back(new_param("prompt_encoder.transform.2.weight", {W, E_}));
    params_.push_back(new_param("prompt_encoder.transform.2.bias", {W}, false));
  } else {
    params_.push_back(new_param("prompt_embeddings", {P_, W}));
  }
  M_.assign(size_t(P_) * W, 0.0f);
  k_.assign(layers_, std::vector<float>(size_t(P_) * token_dim_));
  v_ = k_, dk_ = k_, dv_ = k_;
  set_ = AdapterSet{};
  set_.prefix_len = P_;
  for (int l = 0; l < layers_; l++) {
    set_.prefix_k.push_back(k_[l].data());
    set_.prefix_v.push_back(v_[l].data());
    set_.prefix_dk.push_back(dk_[l].data());
    set_.prefix_dv.push_back(dv_[l].data());
  }
}

Param* PrefixAdapter::param(const std::string& name) {
  for (auto& p : params_)
    if (p->name == name) return p.get();
  return nullptr;
}

ParamList PrefixAdapter::params() {
  ParamList out;
  for (auto& p : params_) out.push_back(p.get());
  return out;
}

std::unique_ptr<PrefixAdapter> PrefixAdapter::create(const ModelConfig& mc, const PrefixConfig& cfg, uint64_t seed) {
  auto a = std::make_unique<PrefixAdapter>();
  a->cfg_ = cfg;
  a->init_layout(mc);
  Rng rng(seed);
  for (auto& p : a->params_) {
    float* x = p->value.f32();
    const int64_t n = p->value.numel();
    if (p->name.find("embedding") != std::string::npos || p->name == "prompt_embeddings") {
      for (int64_t i = 0; i < n; i++) x[i] = rng.normal();  // nn.Embedding default init N(0, 1)
    } else {  // nn.Linear default: U(-1/√fan_in, 1/√fan_in) for weight and bias
      const int64_t fan_in = p->name.find("transform.0") != std::string::npos ? a->token_dim_ : a->E_;
      const float bound = 1.0f / std::sqrt(float(fan_in));
      for (int64_t i = 0; i < n; i++) x[i] = rng.uniform(-bound, bound);
    }
  }
  a->refresh();
  return a;
}

void PrefixAdapter::refresh() {
  const int W = layers_ * 2 * token_dim_;
  if (cfg_.prefix_projection) {
    hidden_.resize(size_t(P_) * E_);
    matmul_forward(hidden_.data(), params_[0]->value.f32(), params_[1]->value.f32(), params_[2]->value.f32(), P_,
                   token_dim_, E_);
    for (auto& h : hidden_) h = std::tanh(h);
    matmul_forward(M_.data(), hidden_.data(), params_[3]->value.f32(), params_[4]->value.f32(), P_, E_, W);
  } else {
    std::memcpy(M_.data(), params_[0]->value.data, M_.size() * sizeof(float));
  }
  for (int l = 0; l < layers_; l++)
    for (int p = 0; p < P_; p++) {
      const float* row = M_.data() + size_t(p) * W;
      std::memcpy(k_[l].data() + size_t(p) * token_dim_, row + size_t(2 * l) * token_dim_, sizeof(float) * token_dim_);
      std::memcpy(v_[l].data() + size_t(p) * token_dim_, row + size_t(2 * l + 1) * token_dim_,
                  sizeof(float) * token_dim_);
    }
}

void PrefixAdapter::zero_prefix_grads() {
  for (int l = 0; l < layers_; l++) {
    std::fill(dk_[l].begin(), dk_[l].end(), 0.0f);
    std::fill(dv_[l].begin(), dv_[l].end(), 0.0f);
  }
}

void PrefixAdapter::backward() {
  const int W = layers_ * 2 * token_dim_;
  std::vector<float> dM(size_t(P_) * W);
  for (int l = 0; l < layers_; l++)
    for (int p = 0; p < P_; p++) {
      float* row = dM.data() + size_t(p) * W;
      std::memcpy(row + size_t(2 * l) * token_dim_, dk_[l].data() + size_t(p) * token_dim_, sizeof(float) * token_dim_);
      std::memcpy(row + size_t(2 * l + 1) * token_dim_, dv_[l].data() + size_t(p) * token_dim_,
                  sizeof(float) * token_dim_);
    }
  if (!cfg_.prefix_projection) {
    float* g = params_[0]->grad.f32();
    for (size_t i = 0; i < dM.size(); i++) g[i] += dM[i];
    return;
  }
  // M = tanh(emb W1^T + b1) W2^T + b2
  std::vector<float> dh(size_t(P_) * E_, 0.0f);
  matmul_backward(dh.data(), params_[3]->grad.f32(), params_[4]->grad.f32(), dM.data(), hidden_.data(),
                  params_[3]->value.f32(), P_, E_, W);
  for (size_t i = 0; i < dh.size(); i++) dh[i] *= 1.0f - hidden_[i] * hidden_[i];
  matmul_backward(nullptr, params_[1]->grad.f32(), params_[2]->grad.f32(), dh.data(), params_[0]->value.f32(),
                  params_[1]->value.f32(), P_, token_dim_, E_);
  // d embedding = dh W1 (every virtual token is its own embedding row)
  matmul_backward(params_[0]->grad.f32(), nullptr, nullptr, dh.data(), params_[0]->value.f32(),
                  params_[1]->value.f32(), P_, token_dim_, E_);
}

std::unique_ptr<PrefixAdapter> PrefixAdapter::load_peft(const std::string& dir, const ModelConfig& mc) {
  std::string cfg_path = dir + "/adapter_config.json";
  if (!file_exists(cfg_path)) fail("prefix", "{}: no adapter_config.json", dir);
  nlohmann::json j = read_json_file_bounded(cfg_path, "prefix");
  if (j.value("peft_type", "") != "PREFIX_TUNING")
    fail("prefix", "{}: peft_type is '{}', expected PREFIX_TUNING", cfg_path, j.value("peft_type", ""));
  PrefixConfig c;
  c.num_virtual_tokens = j.value("num_virtual_tokens", 20);
  c.prefix_projection = false;  // the saved matrix is post-MLP: load as a plain embedding (PEFT inference mode)
  auto a = std::make_unique<PrefixAdapter>();
  a->cfg_ = c;
  a->init_layout(mc);
  int td = j.value("token_dim", a->token_dim_);
  if (td != a->token_dim_ || j.value("num_layers", a->layers_) != a->layers_)
    fail("prefix", "{}: token_dim {} / num_layers {} do not match the base model (head_dim*kv_heads = {}, {} layers)",
         cfg_path, td, j.value("num_layers", -1), a->token_dim_, a->layers_);
  SafetensorsFile st = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  Tensor t = to_f32(st.tensor("prompt_embeddings"));
  if (t.shape != a->params_[0]->value.shape)
    fail("prefix", "{}/adapter_model.safetensors: prompt_embeddings has shape {}, expected {}", dir, t.shape_str(),
         a->params_[0]->value.shape_str());
  std::memcpy(a->params_[0]->value.data, t.data, t.nbytes());
  a->refresh();
  return a;
}

void PrefixAdapter::save_peft(const std::string& dir, const std::string& base_model) {
  refresh();
  std::filesystem::create_directories(dir);
  const int64_t W = int64_t(layers_) * 2 * token_dim_;
  Tensor m = Tensor::empty(DType::F32, {P_, W});
  std::memcpy(m.data, M_.data(), M_.size() * sizeof(float));
  safetensors_write(dir + "/adapter_model.safetensors", {{"prompt_embeddings", m}}, {{"format", "pt"}});
  nlohmann::json j;
  j["peft_type"] = "PREFIX_TUNING";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["num_virtual_tokens"] = P_;
  j["token_dim"] = token_dim_;
  j["num_layers"] = layers_;
  j["num_transformer_submodules"] = 1;
  j["num_attention_heads"] = kv_heads_;  // PEFT sets it to num_key_value_heads for GQA
  j["encoder_hidden_size"] = E_;
  j["prefix_projection"] = cfg_.prefix_projection;
  j["inference_mode"] = true;
  write_file_atomic(dir + "/adapter_config.json", j.dump(2) + "\n");
}

}  // namespace lathe
