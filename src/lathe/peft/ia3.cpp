#include "lathe/peft/ia3.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/formats/safetensors.h"
#include "lathe/peft/lora.h"  // parse_target_modules: the same module names

namespace lathe {

namespace {
bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end() || std::find(v.begin(), v.end(), "all-linear") != v.end();
}

std::vector<std::string> modules_of(const nlohmann::json& j, const char* key, const std::string& path) {
  std::vector<std::string> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  if (j[key].is_string()) return parse_target_modules(j[key].get<std::string>());
  if (!j[key].is_array()) fail("ia3", "{}: {} must be a list or a string", path, key);
  std::string csv;
  for (auto& m : j[key]) {
    if (!m.is_string()) fail("ia3", "{}: {} must hold module names", path, key);
    csv += m.get<std::string>() + ",";
  }
  return csv.empty() ? out : parse_target_modules(csv);
}
}  // namespace

bool IA3Config::targets(const ModelConfig& mc, LinearId id) const { return has(target_modules, linear_module_name(mc, id)); }

bool IA3Config::feedforward(const ModelConfig& mc, LinearId id) const {
  return has(feedforward_modules, linear_module_name(mc, id));
}

IA3Linear::IA3Linear(std::string name, int size, bool feedforward) : feedforward_(feedforward) {
  l.name = std::move(name);
  const std::vector<int64_t> shape = feedforward ? std::vector<int64_t>{1, size} : std::vector<int64_t>{size, 1};
  l.value = Tensor::zeros(DType::F32, shape);
  l.grad = Tensor::zeros(DType::F32, shape);
}

void IA3Adapter::build(const ModelConfig& mc) {
  mc_ = mc;
  const std::vector<LinearId> ids = linear_ids(mc);
  std::string have;
  for (LinearId id : ids) have += (have.empty() ? "" : ",") + linear_module_name(mc, id);
  for (const std::string& t : cfg_.target_modules) {
    bool found = t == "all-linear";
    for (LinearId id : ids) found |= t == linear_module_name(mc, id);
    if (!found) fail("ia3", "target module '{}' is not a projection of {} (its projections: {})", t, arch_hf_name(mc.arch), have);
  }
  // PEFT: feedforward_modules must be a subset of target_modules.
  for (const std::string& f : cfg_.feedforward_modules)
    if (!has(cfg_.target_modules, f))
      fail("ia3", "feedforward module '{}' is not among the target modules (feedforward_modules must be a subset of "
           "target_modules)", f);
  set_.linears.assign(mc.num_hidden_layers, {});
  for (int l = 0; l < mc.num_hidden_layers; l++)
    for (LinearId id : ids) {
      if (!cfg_.targets(mc, id)) continue;
      auto [out, in] = linear_shape(mc, id);
      const bool ff = cfg_.feedforward(mc, id);
      linears_.push_back(std::make_unique<IA3Linear>("base_model.model." + linear_module_path(mc, l, id) + ".ia3_l",
                                                     int(ff ? in : out), ff));
      set_.linears[l][int(id)] = linears_.back().get();
    }
}

std::unique_ptr<IA3Adapter> IA3Adapter::create(const ModelConfig& mc, const IA3Config& cfg) {
  auto a = std::make_unique<IA3Adapter>();
  a->cfg_ = cfg;
  a->build(mc);
  for (auto& lin : a->linears_) {
    float* p = lin->l.value.f32();
    std::fill(p, p + lin->l.value.numel(), 1.0f);  // PEFT's init_ia3_weights=True
  }
  return a;
}

ParamList IA3Adapter::params() {
  ParamList out;
  for (auto& l : linears_) out.push_back(&l->l);
  return out;
}

std::unique_ptr<IA3Adapter> IA3Adapter::load_peft(const std::string& dir, const ModelConfig& mc) {
  const std::string cfg_path = dir + "/adapter_config.json";
  if (!file_exists(cfg_path)) fail("ia3", "{}: no adapter_config.json (not a PEFT adapter directory)", dir);
  nlohmann::json j = read_json_file_bounded(cfg_path, "ia3");
  if (j.value("peft_type", "") != "IA3") fail("ia3", "{}: peft_type is '{}', expected IA3", cfg_path, j.value("peft_type", ""));
  IA3Config c;
  c.target_modules = modules_of(j, "target_modules", cfg_path);
  if (c.target_modules.empty()) fail("ia3", "{}: target_modules is missing or empty", cfg_path);
  c.feedforward_modules = modules_of(j, "feedforward_modules", cfg_path);
  auto a = std::make_unique<IA3Adapter>();
  a->cfg_ = c;
  a->build(mc);
  const std::string st_path = dir + "/adapter_model.safetensors";
  SafetensorsFile st = SafetensorsFile::open(st_path);
  for (auto& lin : a->linears_) {
    if (!st.has(lin->l.name)) fail("ia3", "{}: missing tensor '{}'", st_path, lin->l.name);
    Tensor t = to_f32(st.tensor(lin->l.name));
    if (t.shape != lin->l.value.shape)
      fail("ia3", "{}: tensor '{}' has shape {}, expected {} ({} module: [1, in] scales the input, [out, 1] the output)",
           st_path, lin->l.name, t.shape_str(), lin->l.value.shape_str(), lin->feedforward() ? "a feed-forward" : "an attention");
    std::memcpy(lin->l.value.data, t.data, lin->l.value.nbytes());
  }
  for (auto& e : st.entries()) {
    bool known = false;
    for (auto& lin : a->linears_) known |= e.name == lin->l.name;
    if (!known) fail("ia3", "{}: unexpected tensor '{}' (modules_to_save is not supported)", st_path, e.name);
  }
  return a;
}

void IA3Adapter::save_peft(const std::string& dir, const std::string& base_model) const {
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& lin : linears_) tensors.emplace_back(lin->l.name, lin->l.value);
  safetensors_write(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
  std::vector<std::string> targets, ff;
  for (LinearId id : linear_ids(mc_)) {
    if (cfg_.targets(mc_, id)) targets.push_back(linear_module_name(mc_, id));
    if (cfg_.targets(mc_, id) && cfg_.feedforward(mc_, id)) ff.push_back(linear_module_name(mc_, id));
  }
  nlohmann::json j;
  j["peft_type"] = "IA3";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["target_modules"] = targets;
  j["feedforward_modules"] = ff;
  j["fan_in_fan_out"] = false;
  j["init_ia3_weights"] = true;
  j["modules_to_save"] = nullptr;
  j["inference_mode"] = true;
  write_file_atomic(dir + "/adapter_config.json", j.dump(2) + "\n");
}

void IA3Adapter::merge_into(Model& m) const {
  const ModelConfig& mc = m.config;
  for (int l = 0; l < mc.num_hidden_layers; l++)
    for (LinearId id : linear_ids(mc)) {
      auto* lin = static_cast<IA3Linear*>(set_.linears[l][int(id)]);
      if (!lin) continue;
      LayerWeights& lw = m.weights.layers[l];
      Tensor& W = linear_weight(lw, id);
      if (W.dtype != DType::F32)
        fail("ia3", "merge: weight '{}' is {}; merging needs the f32 weights", linear_ref_name(l, id), dtype_name(W.dtype));
      Tensor copy = Tensor::empty(DType::F32, W.shape);  // never write through a read-only mapping
      std::memcpy(copy.data, W.data, W.nbytes());
      const int out = int(W.dim(0)), in = int(W.dim(1));
      const float* s = lin->l.value.f32();
      float* w = copy.f32();
      // y = W (x ⊙ s) = (W diag(s)) x: columns scale. y = (W x + b) ⊙ s: rows and bias scale.
      for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) w[size_t(o) * in + i] *= lin->feedforward() ? s[i] : s[o];
      W = copy;
      if (!lin->feedforward() && mc.attention_bias && (id == LinearId::Q || id == LinearId::K || id == LinearId::V)) {
        Tensor& b = id == LinearId::Q ? lw.bq : id == LinearId::K ? lw.bk : lw.bv;
        Tensor bc = to_f32(b);
        Tensor own = Tensor::empty(DType::F32, bc.shape);
        std::memcpy(own.data, bc.data, bc.nbytes());
        for (int o = 0; o < out; o++) own.f32()[o] *= s[o];
        b = own;
      }
    }
}

}  // namespace lathe
