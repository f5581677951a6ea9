#include "lathe/peft/prompt_tuning.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/core/rng.h"
#include "lathe/formats/safetensors.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/peft/new_param.h"
#include "lathe/model/block.h"
#include "lathe/model/forward.h"

namespace lathe {

void PromptAdapter::init_layout(const ModelConfig& mc, bool encoder) {
  P_ = cfg_.num_virtual_tokens;
  C_ = mc.hidden_size;
  layers_ = mc.num_hidden_layers;
  heads_ = mc.num_attention_heads;
  H_ = cfg_.encoder_hidden_size > 0 ? cfg_.encoder_hidden_size : C_;
  encoder_ = encoder;
  if (P_ <= 0) fail("prompt", "num_virtual_tokens must be positive, got {}", P_);
  if (cfg_.p_tuning() && cfg_.encoder_reparameterization_type != "MLP" && cfg_.encoder_reparameterization_type != "LSTM")
    fail("prompt", "encoder_reparameterization_type '{}' is not supported (MLP, LSTM)", cfg_.encoder_reparameterization_type);
  params_.clear();
  lstm_params_.clear();
  linears_.clear();
  lstm_.reset();
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    params_.push_back(new_param(name, std::move(shape), name.find("bias") == std::string::npos));
    return params_.back().get();
  };
  auto linear = [&](int i, int64_t in, int64_t out) {
    const std::string n = "prompt_encoder.mlp_head." + std::to_string(i);
    Param* w = add(n + ".weight", {out, in});
    linears_.push_back({w, add(n + ".bias", {out})});
  };
  if (!encoder) {
    add("prompt_embeddings", {P_, C_});
  } else if (cfg_.encoder_reparameterization_type == "MLP") {
    add("prompt_encoder.embedding.weight", {P_, C_});
    linear(0, C_, H_), linear(2, H_, H_), linear(4, H_, C_);
  } else {  // LSTM: torch.nn.LSTM's parameter names, forward direction then _reverse, per layer
    if (cfg_.encoder_num_layers <= 0) fail("prompt", "encoder_num_layers must be positive, got {}", cfg_.encoder_num_layers);
    add("prompt_encoder.embedding.weight", {P_, C_});
    for (int l = 0; l < cfg_.encoder_num_layers; l++)
      for (const char* sfx : {"", "_reverse"}) {
        const std::string k = "_l" + std::to_string(l) + sfx, n = "prompt_encoder.lstm_head.";
        lstm_params_.push_back(add(n + "weight_ih" + k, {4 * H_, l == 0 ? C_ : 2 * H_}));
        lstm_params_.push_back(add(n + "weight_hh" + k, {4 * H_, H_}));
        lstm_params_.push_back(add(n + "bias_ih" + k, {4 * H_}));
        lstm_params_.push_back(add(n + "bias_hh" + k, {4 * H_}));
      }
    lstm_ = std::make_unique<BiLstm>(C_, H_, cfg_.encoder_num_layers);
    linear(0, 2 * H_, 2 * H_), linear(2, 2 * H_, C_);
  }
  V_.assign(size_t(P_) * C_, 0.0f);
  dV_ = V_;
  train_set_ = AdapterSet{};
  train_set_.prompt_len = P_;
  train_set_.prompt_embeds = V_.data();
  train_set_.prompt_dembeds = dV_.data();
}

Param* PromptAdapter::param(const std::string& name) {
  for (auto& p : params_)
    if (p->name == name) return p.get();
  return nullptr;
}

ParamList PromptAdapter::params() {
  ParamList out;
  for (auto& p : params_) out.push_back(p.get());
  return out;
}

std::unique_ptr<PromptAdapter> PromptAdapter::create(const Model& m, const PromptConfig& cfg, uint64_t seed,
                                                     const std::vector<int32_t>& init_ids) {
  auto a = std::make_unique<PromptAdapter>();
  a->cfg_ = cfg;
  a->init_layout(m.config, cfg.p_tuning());
  Rng rng(seed);
  for (auto& p : a->params_) {
    float* x = p->value.f32();
    const int64_t n = p->value.numel();
    if (p->name.find("mlp_head") != std::string::npos) {  // nn.Linear's U(-1/√fan_in, 1/√fan_in), weight and bias
      int64_t fan_in = 0;
      for (auto& [w, b] : a->linears_)
        if (w == p.get() || b == p.get()) fan_in = w->value.dim(1);
      const float bound = 1.0f / std::sqrt(float(fan_in));
      for (int64_t i = 0; i < n; i++) x[i] = rng.uniform(-bound, bound);
    } else if (p->name.find("lstm_head") != std::string::npos) {  // nn.LSTM: every tensor U(-1/√H, 1/√H)
      const float bound = 1.0f / std::sqrt(float(a->H_));
      for (int64_t i = 0; i < n; i++) x[i] = rng.uniform(-bound, bound);
    } else {
      for (int64_t i = 0; i < n; i++) x[i] = rng.normal();  // nn.Embedding's N(0, 1)
    }
  }
  if (!cfg.p_tuning() && cfg.prompt_tuning_init == "TEXT") {
    // PEFT: the text's token ids, repeated until there are P, then cut to P; their embeddings.
    if (init_ids.empty()) fail("prompt", "prompt_tuning_init TEXT needs a non-empty prompt_tuning_init_text");
    const Tensor& table = m.weights.embed;
    if (table.dtype != DType::F32) fail("prompt", "TEXT init reads the embedding table, which is {} (needs f32)", dtype_name(table.dtype));
    float* v = a->params_[0]->value.f32();
    // PEFT calls the embedding module: Gemma3's scales its rows (model/block.h).
    const float scale = embedding_module_scale(m.config);
    for (int p = 0; p < a->P_; p++) {
      const int32_t id = init_ids[size_t(p) % init_ids.size()];
      if (id < 0 || id >= m.config.vocab_size) fail("prompt", "init text token id {} outside the vocabulary", id);
      float* row = v + size_t(p) * a->C_;
      std::memcpy(row, table.f32() + size_t(id) * a->C_, sizeof(float) * a->C_);
      if (scale != 1.0f)
        for (int64_t i = 0; i < a->C_; i++) row[i] *= scale;
    }
  } else if (!cfg.p_tuning() && cfg.prompt_tuning_init != "RANDOM") {
    fail("prompt", "prompt_tuning_init '{}' is not supported (RANDOM, TEXT)", cfg.prompt_tuning_init);
  }
  a->refresh();
  return a;
}

void PromptAdapter::refresh() {
  baked_ = false;
  if (!encoder_) {
    std::memcpy(V_.data(), params_[0]->value.data, V_.size() * sizeof(float));
    return;
  }
  // V = mlp_head(E) or mlp_head(lstm(E)): linears with ReLU between them, none after the last.
  const float* E = params_[0]->value.f32();
  lin_in_.assign(linears_.size(), {});
  if (lstm_) {
    lin_in_[0].resize(size_t(P_) * 2 * H_);
    lstm_->forward(lstm_params_, E, P_, lin_in_[0].data());
  } else {
    lin_in_[0].assign(E, E + size_t(P_) * C_);
  }
  for (size_t k = 0; k < linears_.size(); k++) {
    const Param *W = linears_[k].first, *b = linears_[k].second;
    const int in = int(W->value.dim(1)), out = int(W->value.dim(0));
    const bool last = k + 1 == linears_.size();
    float* y = last ? V_.data() : (lin_in_[k + 1].resize(size_t(P_) * out), lin_in_[k + 1].data());
    matmul_forward(y, lin_in_[k].data(), W->value.f32(), b->value.f32(), P_, in, out);
    if (!last)
      for (int64_t i = 0; i < int64_t(P_) * out; i++) y[i] = std::max(y[i], 0.0f);
  }
}

void PromptAdapter::zero_prompt_grads() { std::fill(dV_.begin(), dV_.end(), 0.0f); }

void PromptAdapter::backward() {
  if (!encoder_) {
    float* g = params_[0]->grad.f32();
    for (size_t i = 0; i < dV_.size(); i++) g[i] += dV_[i];
    return;
  }
  std::vector<float> d(dV_);  // d (the current linear's output)
  for (size_t k = linears_.size(); k-- > 0;) {
    Param *W = linears_[k].first, *b = linears_[k].second;
    const int in = int(W->value.dim(1)), out = int(W->value.dim(0));
    std::vector<float> din(size_t(P_) * in, 0.0f);
    matmul_backward(din.data(), W->grad.f32(), b->grad.f32(), d.data(), lin_in_[k].data(), W->value.f32(), P_, in, out);
    if (k > 0)  // through the ReLU that made this input
      for (size_t i = 0; i < din.size(); i++) din[i] = lin_in_[k][i] > 0.0f ? din[i] : 0.0f;
    d.swap(din);
  }
  float* gE = params_[0]->grad.f32();
  if (lstm_) {
    lstm_->backward(lstm_params_, d.data(), gE);
  } else {
    for (size_t i = 0; i < d.size(); i++) gE[i] += d[i];
  }
}

void PromptAdapter::bake(const Model& m) {
  const ModelConfig& c = m.config;
  LATHE_CHECK(c.hidden_size == C_ && c.num_hidden_layers == layers_, "bake: another model than the adapter's");
  // The virtual rows alone through the base model, at positions 0..P-1, into a cache of P rows:
  // exactly the keys/values a real sequence after them attends to.
  KVCache kv = KVCache::create(c, P_);
  BlockRows rows;
  rows.N = P_;
  rows.seqs.push_back({0, P_, 0, &kv, nullptr});
  rows.set_rope(RopeFreqs::of(c));
  BlockActs acts;
  acts.resize(c, P_, /*saved=*/false);
  BlockScratch s;
  s.xn.resize(size_t(P_) * C_);
  std::vector<float> x(V_);
  const float scale = inputs_embeds_scale(c);  // as the training graph feeds them (model/block.h)
  if (scale != 1.0f)
    for (float& e : x) e *= scale;
  const BlockContext bc{m, nullptr, nullptr, AdapterContext{}};
  for (int l = 0; l < layers_; l++) block_forward(bc, l, rows, acts, s, x.data(), x.data());
  const size_t KD = size_t(c.kv_dim());
  k_.assign(layers_, {});
  v_.assign(layers_, {});
  infer_set_ = AdapterSet{};
  infer_set_.prefix_len = P_;
  for (int l = 0; l < layers_; l++) {
    k_[l].assign(kv.k[l].f32(), kv.k[l].f32() + size_t(P_) * KD);
    v_[l].assign(kv.v[l].f32(), kv.v[l].f32() + size_t(P_) * KD);
    infer_set_.prefix_k.push_back(k_[l].data());
    infer_set_.prefix_v.push_back(v_[l].data());
  }
  baked_ = true;
}

const AdapterSet& PromptAdapter::adapters() const {
  LATHE_CHECK(baked_, "a {} adapter is used for inference before bake()", cfg_.peft_type);
  return infer_set_;
}

std::unique_ptr<PromptAdapter> PromptAdapter::load_peft(const std::string& dir, const ModelConfig& mc) {
  const std::string cfg_path = dir + "/adapter_config.json";
  if (!file_exists(cfg_path)) fail("prompt", "{}: no adapter_config.json", dir);
  nlohmann::json j = read_json_file_bounded(cfg_path, "prompt");
  PromptConfig c;
  c.peft_type = j.value("peft_type", "");
  if (c.peft_type != "PROMPT_TUNING" && c.peft_type != "P_TUNING")
    fail("prompt", "{}: peft_type is '{}', expected PROMPT_TUNING or P_TUNING", cfg_path, c.peft_type);
  c.num_virtual_tokens = j.value("num_virtual_tokens", 20);
  auto str = [&](const char* k, const std::string& def) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : def; };
  c.prompt_tuning_init = str("prompt_tuning_init", "RANDOM");
  c.prompt_tuning_init_text = str("prompt_tuning_init_text", "");
  c.encoder_reparameterization_type = str("encoder_reparameterization_type", "MLP");
  c.encoder_num_layers = j.contains("encoder_num_layers") && j["encoder_num_layers"].is_number_integer()
                             ? j["encoder_num_layers"].get<int>() : 2;
  c.encoder_hidden_size = j.contains("encoder_hidden_size") && j["encoder_hidden_size"].is_number_integer()
                              ? j["encoder_hidden_size"].get<int>() : 0;
  if (j.value("num_transformer_submodules", 1) != 1)
    fail("prompt", "{}: num_transformer_submodules {} (encoder-decoder models are not supported)", cfg_path,
         j.value("num_transformer_submodules", 1));
  const int td = j.value("token_dim", mc.hidden_size);
  if (td != mc.hidden_size)
    fail("prompt", "{}: token_dim {} does not match the base model's hidden_size {}", cfg_path, td, mc.hidden_size);
  auto a = std::make_unique<PromptAdapter>();
  a->cfg_ = c;
  // The file holds V (for P-tuning the encoder's output; PEFT's inference mode has no encoder).
  a->init_layout(mc, /*encoder=*/false);
  SafetensorsFile st = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  if (!st.has("prompt_embeddings")) fail("prompt", "{}/adapter_model.safetensors: no tensor 'prompt_embeddings'", dir);
  Tensor t = to_f32(st.tensor("prompt_embeddings"));
  if (t.shape != a->params_[0]->value.shape)
    fail("prompt", "{}/adapter_model.safetensors: prompt_embeddings has shape {}, expected {} (num_virtual_tokens, "
         "hidden_size)", dir, t.shape_str(), a->params_[0]->value.shape_str());
  std::memcpy(a->params_[0]->value.data, t.data, t.nbytes());
  a->refresh();
  return a;
}

void PromptAdapter::save_peft(const std::string& dir, const std::string& base_model) {
  refresh();
  std::filesystem::create_directories(dir);
  Tensor v = Tensor::empty(DType::F32, {P_, C_});
  std::memcpy(v.data, V_.data(), V_.size() * sizeof(float));
  safetensors_write(dir + "/adapter_model.safetensors", {{"prompt_embeddings", v}}, {{"format", "pt"}});
  nlohmann::json j;
  j["peft_type"] = cfg_.peft_type;
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["num_virtual_tokens"] = P_;
  j["token_dim"] = C_;
  j["num_transformer_submodules"] = 1;
  j["num_layers"] = layers_;
  j["num_attention_heads"] = heads_;
  j["inference_mode"] = true;
  if (cfg_.p_tuning()) {
    j["encoder_reparameterization_type"] = cfg_.encoder_reparameterization_type;
    j["encoder_hidden_size"] = H_;
    j["encoder_num_layers"] = cfg_.encoder_num_layers;
    j["encoder_dropout"] = 0.0;
  } else {
    j["prompt_tuning_init"] = cfg_.prompt_tuning_init;
    j["prompt_tuning_init_text"] = cfg_.prompt_tuning_init == "TEXT" ? nlohmann::json(cfg_.prompt_tuning_init_text) : nlohmann::json();
    j["tokenizer_name_or_path"] = cfg_.prompt_tuning_init == "TEXT" ? nlohmann::json(base_model) : nlohmann::json();
  }
  write_file_atomic(dir + "/adapter_config.json", j.dump(2) + "\n");
}

}  // namespace lathe
