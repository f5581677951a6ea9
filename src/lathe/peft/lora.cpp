#include "lathe/peft/lora.h"

#include "lathe/core/strings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/core/strings.h"
#include "lathe/formats/safetensors.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/kernels/cpu/serial_blas.h"

namespace lathe {

namespace {
constexpr int kNumLinear = int(LinearId::kCount);

Param make_param(std::string name, std::vector<int64_t> shape) {
  Param p;
  p.name = std::move(name);
  p.value = Tensor::zeros(DType::F32, shape);
  p.grad = Tensor::zeros(DType::F32, shape);
  return p;
}

// Every module name a supported family gives its projections (Llama-style, Phi-3's fused ones,
// EXAONE 3's GPT-2-style ones).
const char* const kKnownModules[] = {"q_proj",    "k_proj",       "v_proj", "o_proj",   "gate_proj", "up_proj",
                                     "down_proj", "qkv_proj",     "gate_up_proj", "out_proj", "c_fc_0",
                                     "c_fc_1",    "c_proj"};

// Counter-based uniform in [0,1) for dropout masks: the same (seed, layer, module, index) always
// gives the same value, so backward and a checkpointed recompute see the forward's mask.
float hash_uniform(uint64_t seed, uint64_t layer, uint64_t module, uint64_t i) {
  uint64_t z = seed ^ (layer * 0x9e3779b97f4a7c15ull) ^ (module * 0xc2b2ae3d27d4eb4full) ^ (i * 0x165667b19e3779f9ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return float(z >> 40) * (1.0f / 16777216.0f);
}

// The rank-r products of a long input run on blocks of at least kSplitRows rows (columns), at most
// 8; the count depends on the size alone, never on the thread count. Below two blocks one call
// on one thread (serial_blas.h: a fork/join costs what a small product saves).
constexpr int kSplitRows = 128;
int split_parts(int n) { return std::clamp(n / kSplitRows, 1, 8); }
// [begin, end) of block p of n rows in `parts`, begins on multiples of 16 (the kernels' row tiles).
std::pair<int, int> part_range(int n, int parts, int p) {
  auto edge = [&](int q) { return q == parts ? n : int(int64_t(n) * q / parts) & ~15; };
  return {edge(p), edge(p + 1)};
}
}  // namespace

float LoraConfig::scaling() const { return use_rslora ? alpha / std::sqrt(float(r)) : alpha / float(r); }

bool LoraConfig::targets(const ModelConfig& mc, LinearId id) const {
  const std::string name = linear_module_name(mc, id);
  for (auto& t : target_modules)
    if (t == "all-linear" || t == name) return true;
  return false;
}

std::vector<std::string> parse_target_modules(const std::string& s) {
  std::vector<std::string> out;
  for (const std::string& m : split_list(s, ',', /*trim=*/true)) {
    if (!m.empty()) {
      bool known = m == "all-linear";
      for (const char* k : kKnownModules) known |= m == k;
      if (!known)
        fail("lora", "unknown target module '{}' (use the model's projection names, e.g. q_proj,k_proj,v_proj,"
             "o_proj,gate_proj,up_proj,down_proj; qkv_proj,gate_up_proj for Phi-3; or all-linear)", m);
      out.push_back(m);
    }
  }
  if (out.empty()) fail("lora", "lora_target_modules is empty");
  return out;
}

LoraLinear::LoraLinear(std::string prefix, int in, int out, const LoraConfig& cfg, int module_index)
    : A(make_param(prefix + ".lora_A.weight", {cfg.r, in})),
      B(make_param(prefix + ".lora_B.weight", {out, cfg.r})),
      magnitude(cfg.use_dora ? make_param(prefix + ".lora_magnitude_vector", {out}) : Param{}),
      scaling(cfg.scaling()),
      in_(in),
      out_(out),
      r_(cfg.r),
      module_index_(module_index),
      dropout_(cfg.dropout) {}

const float* LoraLinear::dropped(const float* x, int T, const AdapterContext& ctx) {
  if (!ctx.training || dropout_ <= 0.0f) return x;
  xd_.resize(size_t(T) * in_);
  const float keep = 1.0f - dropout_, inv = 1.0f / keep;
  for (size_t i = 0; i < xd_.size(); i++)
    xd_[i] = hash_uniform(ctx.dropout_seed, uint64_t(ctx.layer), uint64_t(module_index_), i) < keep ? x[i] * inv : 0.0f;
  return xd_.data();
}

// h_ is the forward's x A^T for this pass and input (bitwise what recomputing it gives).
bool LoraLinear::holds_forward_h(const float* x, int T, const AdapterContext& ctx) const {
  return ctx.pass != 0 && h_pass_ == ctx.pass && h_x_ == x && h_T_ == T;
}

// dx += d(xd) through the dropout mask: kept elements scaled by 1/(1-p), dropped ones pass nothing.
void LoraLinear::add_dropout_grad(const float* x, const float* xd, const std::vector<float>& dxd, float* dx) const {
  const float inv = 1.0f / (1.0f - dropout_);
  for (size_t i = 0; i < dxd.size(); i++)
    if (xd[i] != 0.0f || x[i] == 0.0f) dx[i] += dxd[i] * (xd[i] != 0.0f ? inv : 0.0f);
}

void LoraLinear::forward(const float* x, float* y, int T, const AdapterContext& ctx) {
  if (dora()) return dora_forward(x, y, T, ctx);
  const float* xd = dropped(x, T, ctx);
  h_.resize(size_t(T) * r_);
  h_pass_ = ctx.training ? ctx.pass : 0, h_x_ = x, h_T_ = T;
  const int parts = split_parts(T);
  if (parts == 1) {
    const SerialBlas serial;  // rank-r products: see serial_blas.h
    matmul_forward(h_.data(), xd, A.value.f32(), nullptr, T, in_, r_);  // h = xd A^T   [T, r]
    // y += scaling · h B^T, straight into y.
    matmul_forward_accumulate(y, h_.data(), B.value.f32(), scaling, T, r_, out_);
    return;
  }
  // The same two products on row blocks, one block at a time per thread (sgemm inside a parallel
  // region runs on its caller's thread alone).
#pragma omp parallel for schedule(static)
  for (int p = 0; p < parts; p++) {
    const auto [t0, t1] = part_range(T, parts, p);
    sgemm_strided(false, true, t1 - t0, r_, in_, 1.0f, xd + size_t(t0) * in_, in_, A.value.f32(), in_, 0.0f,
                  h_.data() + size_t(t0) * r_, r_);
    sgemm_strided(false, true, t1 - t0, out_, r_, scaling, h_.data() + size_t(t0) * r_, r_, B.value.f32(), r_, 1.0f,
                  y + size_t(t0) * out_, out_);
  }
}

void LoraLinear::backward(const float* x, const float* dy, float* dx, int T, const AdapterContext& ctx) {
  if (dora()) return dora_backward(x, dy, dx, T, ctx);
  const float* xd = dropped(x, T, ctx);
  if (split_parts(T) > 1) return backward_split(x, xd, dy, dx, T, ctx);
  const SerialBlas serial;
  // The forward's h when this is its pass and input (bitwise what recomputing it gives).
  if (!holds_forward_h(x, T, ctx)) {
    h_.resize(size_t(T) * r_);
    matmul_forward(h_.data(), xd, A.value.f32(), nullptr, T, in_, r_);
  }
  h_pass_ = 0;  // scaled below: no longer the forward's
  for (auto& v : h_) v *= scaling;  // h = scaling · xd A^T
  dh_.assign(size_t(T) * r_, 0.0f);
  // y += h B^T  =>  dB += dy^T h,  dh = dy B
  matmul_backward(dh_.data(), B.grad.f32(), nullptr, dy, h_.data(), B.value.f32(), T, r_, out_);
  for (auto& v : dh_) v *= scaling;
  // h' = xd A^T  =>  dA += dh'^T xd,  dxd = dh' A
  if (xd == x) {
    matmul_backward(dx, A.grad.f32(), nullptr, dh_.data(), xd, A.value.f32(), T, in_, r_);
  } else {
    std::vector<float> dxd(size_t(T) * in_, 0.0f);
    matmul_backward(dx ? dxd.data() : nullptr, A.grad.f32(), nullptr, dh_.data(), xd, A.value.f32(), T, in_, r_);
    if (dx) add_dropout_grad(x, xd, dxd, dx);
  }
}

// backward on row blocks (and dB, dA on blocks of their rows / columns), in one parallel region with
// one barrier: dA needs all of dh. Each output element is one product over the same K as the
// unsplit call, and the blocks depend on the shapes alone, so the thread count never changes a bit.
void LoraLinear::backward_split(const float* x, const float* xd, const float* dy, float* dx, int T,
                                const AdapterContext& ctx) {
  const bool reuse = holds_forward_h(x, T, ctx);
  h_pass_ = 0;  // scaled below: no longer the forward's
  h_.resize(size_t(T) * r_);
  dh_.resize(size_t(T) * r_);
  std::vector<float> dxd;  // dropout: d(xd), masked into dx afterwards
  if (dx && xd != x) dxd.assign(size_t(T) * in_, 0.0f);
  float* dxt = xd == x ? dx : (dx ? dxd.data() : nullptr);
  const int tp = split_parts(T), op = split_parts(out_), ip = split_parts(in_);
  const float *a = A.value.f32(), *b = B.value.f32();
  float *da = A.grad.f32(), *db = B.grad.f32(), *h = h_.data(), *dh = dh_.data();
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int p = 0; p < tp; p++) {
      const auto [t0, t1] = part_range(T, tp, p);
      const int n = t1 - t0;
      float* hp = h + size_t(t0) * r_;
      float* dhp = dh + size_t(t0) * r_;
      if (!reuse) sgemm_strided(false, true, n, r_, in_, 1.0f, xd + size_t(t0) * in_, in_, a, in_, 0.0f, hp, r_);
      for (size_t i = 0; i < size_t(n) * r_; i++) hp[i] *= scaling;  // h = scaling · xd A^T
      // y += h B^T  =>  dh = dy B (then scaled: h' = xd A^T)
      sgemm_strided(false, false, n, r_, out_, 1.0f, dy + size_t(t0) * out_, out_, b, r_, 0.0f, dhp, r_);
      for (size_t i = 0; i < size_t(n) * r_; i++) dhp[i] *= scaling;
    }  // barrier: dB and dA read all rows of h and dh
#pragma omp for schedule(static) nowait
    for (int p = 0; p < op; p++) {  // dB[o0:o1] += dy[:, o0:o1]^T h
      const auto [o0, o1] = part_range(out_, op, p);
      sgemm_strided(true, false, o1 - o0, r_, T, 1.0f, dy + o0, out_, h, r_, 1.0f, db + size_t(o0) * r_, r_);
    }
#pragma omp for schedule(static) nowait
    for (int p = 0; p < ip; p++) {  // dA[:, i0:i1] += dh'^T xd[:, i0:i1]
      const auto [i0, i1] = part_range(in_, ip, p);
      sgemm_strided(true, false, r_, i1 - i0, T, 1.0f, dh, r_, xd + i0, in_, 1.0f, da + i0, in_);
    }
    if (dxt) {
#pragma omp for schedule(static) nowait
      for (int p = 0; p < tp; p++) {  // dxd[t0:t1] += dh'[t0:t1] A
        const auto [t0, t1] = part_range(T, tp, p);
        sgemm_strided(false, false, t1 - t0, in_, r_, 1.0f, dh + size_t(t0) * r_, r_, a, in_, 1.0f,
                      dxt + size_t(t0) * in_, in_);
      }
    }
  }
  if (dx && xd != x) add_dropout_grad(x, xd, dxd, dx);
}

void LoraAdapter::build(const ModelConfig& mc) {
  mc_ = mc;
  // Each requested module must be one of this model's projections (PEFT refuses a target it
  // cannot find, too).
  const std::vector<LinearId> ids = linear_ids(mc);
  for (const std::string& t : cfg_.target_modules) {
    if (t == "all-linear") continue;
    bool found = false;
    std::string have;
    for (LinearId id : ids) {
      found |= t == linear_module_name(mc, id);
      have += (have.empty() ? "" : ",") + linear_module_name(mc, id);
    }
    if (!found)
      fail("lora", "target module '{}' is not a projection of {} (its projections: {})", t, arch_hf_name(mc.arch),
           have);
  }
  set_.linears.assign(mc.num_hidden_layers, {});
  for (int l = 0; l < mc.num_hidden_layers; l++)
    for (LinearId id : ids) {
      if (!cfg_.targets(mc, id)) continue;
      auto [out, in] = linear_shape(mc, id);
      std::string prefix = "base_model.model." + linear_module_path(mc, l, id);
      linears_.push_back(std::make_unique<LoraLinear>(prefix, int(in), int(out), cfg_, int(id)));
      set_.linears[l][int(id)] = linears_.back().get();
    }
}

std::unique_ptr<LoraAdapter> LoraAdapter::create(const ModelConfig& mc, const LoraConfig& cfg, uint64_t seed) {
  if (cfg.r <= 0) fail("lora", "lora_r must be positive, got {}", cfg.r);
  auto a = std::make_unique<LoraAdapter>();
  a->cfg_ = cfg;
  a->build(mc);
  Rng rng(seed);
  for (auto& lin : a->linears_) {
    // PEFT: kaiming_uniform_(A, a=√5) => bound = √(6 / ((1 + 5) · fan_in)) = 1/√in; gaussian: normal_(std=1/r).
    const float bound = 1.0f / std::sqrt(float(lin->A.value.dim(1)));
    float* p = lin->A.value.f32();
    for (int64_t i = 0; i < lin->A.value.numel(); i++)
      p[i] = cfg.init_gaussian ? rng.normal() / float(cfg.r) : rng.uniform(-bound, bound);
  }
  return a;
}

ParamList LoraAdapter::params() {
  ParamList out;
  for (auto& l : linears_) {
    out.push_back(&l->A), out.push_back(&l->B);
    if (l->dora()) out.push_back(&l->magnitude);
  }
  return out;
}

std::unique_ptr<LoraAdapter> LoraAdapter::load_peft(const std::string& dir, const ModelConfig& mc) {
  std::string cfg_path = dir + "/adapter_config.json";
  if (!file_exists(cfg_path)) fail("lora", "{}: no adapter_config.json (not a PEFT adapter directory)", dir);
  nlohmann::json j;
  JsonError err;
  if (!try_parse_json_bounded(read_file(cfg_path), j, &err)) fail("lora", "{}: invalid JSON: {}", cfg_path, err.message);
  std::string type = j.value("peft_type", "");
  if (type != "LORA") fail("lora", "{}: peft_type is '{}', expected LORA", cfg_path, type);
  LoraConfig c;
  c.use_dora = j.value("use_dora", false);
  // PiSSA / OLoRA / LoftQ adapters saved without PEFT's conversion (path_initial_model_for_weight_conversion)
  // belong to a base with the principal components taken out, which is not the model given here.
  // A LoftQ adapter ("loftq", 4 bits) belongs to the NF4 base LoftQ made of the original model: PEFT's
  // from_pretrained reruns loftq_init on the original weights, and lathe's loaders rebuild that base
  // (load_adapter_for, export, eval), so it is no warning.
  int loftq_iter = 0;
  if (j.value("init_lora_weights", nlohmann::json(true)) == "loftq") {
    const nlohmann::json lc = j.value("loftq_config", nlohmann::json::object());
    const int bits = lc.value("loftq_bits", 4);
    loftq_iter = lc.value("loftq_iter", 1);
    if (bits != 4)
      fail("lora", "{}: loftq_config.loftq_bits {}: lathe rebuilds LoftQ's base as 4-bit NF4 only", cfg_path, bits);
    if (loftq_iter < 1) fail("lora", "{}: loftq_config.loftq_iter must be >= 1 (got {})", cfg_path, loftq_iter);
  } else if (const auto& iw = j["init_lora_weights"]; iw.is_string() && iw != "gaussian")
    std::fprintf(stderr, "lathe: warning: %s: init_lora_weights '%s' changed the base weights during training; "
                 "this adapter applies to that modified base, not to the original model (convert it in PEFT with "
                 "path_initial_model_for_weight_conversion)\n", cfg_path.c_str(), iw.get<std::string>().c_str());
  c.r = j.value("r", 8);
  c.alpha = j.value("lora_alpha", 8.0f);
  c.dropout = j.value("lora_dropout", 0.0f);
  c.use_rslora = j.value("use_rslora", false);
  const auto& tm = j["target_modules"];
  c.target_modules.clear();
  if (tm.is_string()) {
    c.target_modules = parse_target_modules(tm.get<std::string>());
  } else if (tm.is_array()) {
    for (auto& m : tm) c.target_modules.push_back(m.get<std::string>());
    parse_target_modules([&] {
      std::string s;
      for (auto& m : c.target_modules) s += m + ",";
      return s;
    }());
  } else {
    fail("lora", "{}: target_modules must be a list or a string", cfg_path);
  }
  auto a = std::make_unique<LoraAdapter>();
  a->cfg_ = c;
  a->loftq_iter_ = loftq_iter;
  a->build(mc);
  SafetensorsFile st = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  size_t used = 0;
  for (auto& lin : a->linears_)
    for (Param* p : {&lin->A, &lin->B, &lin->magnitude}) {
      if (p->name.empty()) continue;  // no magnitude without DoRA
      if (!st.has(p->name))
        fail("lora", "{}/adapter_model.safetensors: missing tensor '{}'{}", dir, p->name,
             p == &lin->magnitude ? " (adapter_config.json says use_dora: true)" : "");
      Tensor t = to_f32(st.tensor(p->name));
      if (t.shape != p->value.shape)
        fail("lora", "{}/adapter_model.safetensors: tensor '{}' has shape {}, expected {} (r={} and the base "
             "model's dimensions)", dir, p->name, t.shape_str(), p->value.shape_str(), c.r);
      std::memcpy(p->value.data, t.data, p->value.nbytes());
      used++;
    }
  if (used != st.entries().size())
    for (auto& e : st.entries()) {
      bool known = false;
      for (auto& lin : a->linears_) known |= e.name == lin->A.name || e.name == lin->B.name;
      if (!known && !c.use_dora && e.name.ends_with(".lora_magnitude_vector"))
        fail("lora", "{}/adapter_model.safetensors: tensor '{}' is a DoRA magnitude but adapter_config.json does "
             "not say use_dora: true", dir, e.name);
      for (auto& lin : a->linears_) known |= lin->dora() && e.name == lin->magnitude.name;
      if (!known)
        fail("lora", "{}/adapter_model.safetensors: unexpected tensor '{}' (modules_to_save and embedding "
             "LoRA are not supported yet)", dir, e.name);
    }
  return a;
}

// PiSSA / OLoRA saved for the untouched base: ΔW = s(B A − B0 A0) = s [B, −B0] [A; A0].
static Tensor converted_a(const LoraLinear& l) {  // [2r, in]
  Tensor t = Tensor::empty(DType::F32, {2 * l.A.value.dim(0), l.A.value.dim(1)});
  std::memcpy(t.f32(), l.A.value.data, l.A.value.nbytes());
  std::memcpy(t.f32() + l.A.value.numel(), l.A0.data, l.A0.nbytes());
  return t;
}
static Tensor converted_b(const LoraLinear& l) {  // [out, 2r]
  const int64_t out = l.B.value.dim(0), r = l.B.value.dim(1);
  Tensor t = Tensor::empty(DType::F32, {out, 2 * r});
  for (int64_t o = 0; o < out; o++)
    for (int64_t j = 0; j < r; j++) {
      t.f32()[o * 2 * r + j] = l.B.value.f32()[o * r + j];
      t.f32()[o * 2 * r + r + j] = -l.B0.f32()[o * r + j];
    }
  return t;
}

void LoraAdapter::save_peft(const std::string& dir, const std::string& base_model) const {
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  const bool convert = !init_method_.empty();
  for (auto& lin : linears_) {
    if (convert) {
      tensors.emplace_back(lin->A.name, converted_a(*lin)), tensors.emplace_back(lin->B.name, converted_b(*lin));
      continue;
    }
    tensors.emplace_back(lin->A.name, lin->A.value), tensors.emplace_back(lin->B.name, lin->B.value);
    if (lin->dora()) tensors.emplace_back(lin->magnitude.name, lin->magnitude.value);
  }
  safetensors_write(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
  nlohmann::json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["r"] = convert ? 2 * cfg_.r : cfg_.r;
  // The converted rank-2r adapter keeps the scaling: alpha/r -> 2alpha/2r, alpha/√r -> √2·alpha/√(2r).
  j["lora_alpha"] = !convert ? cfg_.alpha : cfg_.use_rslora ? cfg_.alpha * std::sqrt(2.0f) : 2 * cfg_.alpha;
  if (convert) j["lathe_converted_from"] = init_method_;  // not a PEFT key; says what the adapter was
  j["lora_dropout"] = cfg_.dropout;
  j["use_rslora"] = cfg_.use_rslora;
  j["use_dora"] = cfg_.use_dora;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  // What a fresh adapter started from; either way the base is untouched, so the adapter applies to it
  // (LoftQ excepted: its base is rebuilt from the original model, see below).
  j["init_lora_weights"] = cfg_.init_gaussian ? nlohmann::json("gaussian") : nlohmann::json(true);
  if (loftq_iter_ > 0) {  // PEFT's keys: the adapter belongs to the LoftQ base of the original model
    j["init_lora_weights"] = "loftq";
    j["loftq_config"] = {{"loftq_bits", 4}, {"loftq_iter", loftq_iter_}};
  }
  j["modules_to_save"] = nullptr;
  std::vector<std::string> targets;
  for (LinearId id : linear_ids(mc_))
    if (cfg_.targets(mc_, id)) targets.push_back(linear_module_name(mc_, id));
  j["target_modules"] = targets;
  write_file_atomic(dir + "/adapter_config.json", j.dump(2) + "\n");
}

void LoraAdapter::merge_into(Model& m) const {
  const ModelConfig& mc = m.config;
  for (int l = 0; l < mc.num_hidden_layers; l++)
    for (int k = 0; k < kNumLinear; k++) {
      auto* lin = static_cast<LoraLinear*>(set_.linears[l][k]);
      if (!lin) continue;
      Tensor& W = linear_weight(m.weights.layers[l], LinearId(k));
      Tensor copy = Tensor::empty(DType::F32, W.shape);  // never write through a read-only mapping
      std::memcpy(copy.data, W.data, W.nbytes());
      W = copy;
      if (lin->dora()) {  // W' = m / ||W + s B A|| · (W + s B A)
        lin->dora_merge(copy.f32());
        continue;
      }
      const int out = int(W.dim(0)), in = int(W.dim(1)), r = cfg_.r;
      // W[out,in] += scaling · B[out,r] · A[r,in]
      const float *A = lin->A.value.f32(), *B = lin->B.value.f32();
      float* dst = copy.f32();
      for (int o = 0; o < out; o++)
        for (int j = 0; j < r; j++) {
          float b = lin->scaling * B[size_t(o) * r + j];
          for (int i = 0; i < in; i++) dst[size_t(o) * in + i] += b * A[size_t(j) * in + i];
        }
      W = copy;
    }
}

}  // namespace lathe
